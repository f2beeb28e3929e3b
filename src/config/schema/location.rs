//! The `[[location]]` list: its shape, each location's keys (a location serves files from
//! `root`, or proxies to the `[upstreams.NAME]` it names), prefixes unique across it, the
//! upstreams it names existing, and whether the configuration serves anything at all.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::walker::{ListShape, Table, Walker};
use crate::config::{ContentCoding, DEFAULT_INDEX, Location, Upstream};

/// The keys of this section, in the order config/ferry.toml documents them.
pub(super) const LOCATION_KEYS: [&str; 9] = [
    "prefix",
    "upstream",
    "root",
    "index",
    "expires",
    "internal",
    "directio_threshold",
    "precompressed",
    "add_header",
];

/// How many `[[location]]` sections the value holds: 0 when absent, `None` when it is not a
/// list at all (an error already reported by [`Walker::locations`]).
pub(super) fn count(value: Option<&Value>) -> Option<usize> {
    match value.map(|value| &value.kind) {
        None => Some(0),
        Some(ValueKind::Array(items)) => Some(items.len()),
        Some(_) => None,
    }
}

impl Walker<'_> {
    /// The list; absent or empty is no error here (an upstream may serve everything), see
    /// [`Self::something_to_serve`].
    /// Each valid location comes with its index in the list.
    pub(super) fn locations(&mut self, value: Option<&Value>) -> Vec<(usize, Location)> {
        let items = match value.map(|value| (value, &value.kind)) {
            None => return Vec::new(),
            Some((_, ValueKind::Array(items))) => items,
            Some((value, ValueKind::Table(_))) => {
                let message = "expected [[location]] sections (an array of tables), \
                               found a single [location] table";
                self.fail("location", Some(value), message);
                return Vec::new();
            }
            Some((value, _)) => {
                self.wrong_type("location", value, "[[location]] sections");
                return Vec::new();
            }
        };
        let mut seen = HashMap::new();
        let mut locations = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(location) = self.location(index, item, &mut seen) {
                locations.push((index, location));
            }
        }
        locations
    }

    /// With no upstream, something must be served by a location clients can reach.
    /// `locations` is the complete list; `upstream_given` says whether `[upstream]` names an
    /// address (valid or not: an invalid one is already reported).
    pub(super) fn something_to_serve(&mut self, locations: &[Location], upstream_given: bool) {
        if upstream_given {
            return;
        }
        if locations.is_empty() {
            let message = "nothing to serve: add a [[location]] or an [upstream]";
            self.fail("config", None, message);
        } else if locations.iter().all(|location| location.internal) {
            let message = "nothing to serve: every [[location]] is internal, reachable only \
                           through X-Accel-Redirect from an [upstream]; add an [upstream] or \
                           a location without internal = true";
            self.fail("config", None, message);
        }
    }

    /// One `[[location]]`; `seen` maps each prefix to the index of its first location.
    fn location(
        &mut self,
        index: usize,
        value: &Value,
        seen: &mut HashMap<String, usize>,
    ) -> Option<Location> {
        let key = format!("location[{index}]");
        let table = self.table(&key, value)?;
        self.unknown_keys(&key, table, &LOCATION_KEYS);
        let prefix = self.required(table, &key, "prefix", Self::prefix);
        let upstream = self.field(table, &key, "upstream", Self::upstream_name);
        let add_header = self.field(table, &key, "add_header", Self::add_headers);
        if table.contains_key("upstream") {
            let prefix = prefix?;
            self.proxied_only(&key, table);
            let upstream = upstream?;
            if let Some(first) = seen.get(&prefix) {
                let message =
                    format!("duplicate prefix {prefix:?} (also location[{first}].prefix)");
                self.fail(&format!("{key}.prefix"), None, message);
                return None;
            }
            seen.insert(prefix.clone(), index);
            return Some(Location {
                prefix,
                root: PathBuf::new(),
                index: None,
                expires: None,
                internal: false,
                directio_threshold: None,
                precompressed: Vec::new(),
                upstream: Some(upstream),
                add_header: add_header.unwrap_or_default(),
            });
        }
        let root = self.required(table, &key, "root", Self::root);
        // Absent: index.html, as nginx's `index` default.
        let index_file = match table.get("index") {
            None => Some(DEFAULT_INDEX.to_string()),
            Some(_) => self.field(table, &key, "index", Self::index_file),
        };
        let expires = self.field(table, &key, "expires", Self::duration);
        let internal = self.field(table, &key, "internal", Self::boolean);
        let directio_threshold = self.field(table, &key, "directio_threshold", Self::threshold);
        let precompressed = self.field(table, &key, "precompressed", Self::precompressed);
        let prefix = prefix?;
        if let Some(first) = seen.get(&prefix) {
            let message = format!("duplicate prefix {prefix:?} (also location[{first}].prefix)");
            self.fail(&format!("{key}.prefix"), None, message);
            return None;
        }
        seen.insert(prefix.clone(), index);
        let internal = match (internal, table.get("internal")) {
            (Some(internal), _) => internal,
            (None, None) => false,
            // Reported: a location whose reachability is unknown takes no part in the
            // cross-section checks.
            (None, Some(_)) => return None,
        };
        if internal && prefix == "/" {
            let message = "an internal location cannot have prefix \"/\": it would swallow \
                           every request no other location matches (clients would get 404 \
                           instead of the upstream's answer); give it its own prefix, e.g. \
                           \"/protected/\"";
            self.fail(&format!("{key}.internal"), table.get("internal"), message);
            return None;
        }
        Some(Location {
            prefix,
            root: root?,
            index: index_file,
            expires,
            internal,
            directio_threshold,
            precompressed: precompressed.unwrap_or_default(),
            upstream: None,
            add_header: add_header.unwrap_or_default(),
        })
    }

    /// A location that proxies serves no files: the keys about files are errors there.
    fn proxied_only(&mut self, key: &str, table: &Table) {
        // `add_header` (the last key) applies to proxied responses too.
        for name in LOCATION_KEYS
            .into_iter()
            .skip(2)
            .filter(|&k| k != "add_header")
        {
            if let Some(value) = table.get(name) {
                let message = "a location with `upstream` serves no files; remove this key \
                               (or `upstream`)";
                self.fail(&format!("{key}.{name}"), Some(value), message);
            }
        }
    }

    fn upstream_name(&mut self, key: &str, value: &Value) -> Option<String> {
        let text = self.string(key, value, "the name of an [upstreams.NAME] section")?;
        Some(text.to_owned())
    }

    /// Every `upstream` a location names is an `[upstreams.NAME]` (one that is itself in
    /// error is reported there, not again here). `locations` is the complete list.
    pub(super) fn location_upstreams_exist(
        &mut self,
        locations: &[Location],
        upstreams: &BTreeMap<String, Upstream>,
    ) {
        for (i, location) in locations.iter().enumerate() {
            let Some(name) = &location.upstream else {
                continue;
            };
            let section = format!("upstreams.{name}");
            let in_error = self.errors.iter().any(|error| {
                (error.key.strip_prefix(&section))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            });
            if upstreams.contains_key(name) || in_error {
                continue;
            }
            let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            let message = if known.is_empty() {
                format!("no [upstreams.{name}] section (there are no named upstreams)")
            } else {
                format!(
                    "no [upstreams.{name}] section (named upstreams: {})",
                    known.join(", ")
                )
            };
            self.fail(&format!("location[{i}].upstream"), None, message);
        }
    }

    fn prefix(&mut self, key: &str, value: &Value) -> Option<String> {
        let text = self.string(key, value, "a string starting with '/'")?;
        if !text.starts_with('/') {
            let message = format!("invalid prefix {text:?}: must start with '/'");
            self.fail(key, Some(value), message);
            return None;
        }
        Some(text.to_owned())
    }

    fn root(&mut self, key: &str, value: &Value) -> Option<PathBuf> {
        let text = self.string(key, value, "a directory path string")?;
        if text.is_empty() {
            self.fail(key, Some(value), "must not be empty");
            return None;
        }
        Some(PathBuf::from(text))
    }

    fn index_file(&mut self, key: &str, value: &Value) -> Option<String> {
        let text = self.string(key, value, "a file name string")?;
        let problem = if text.is_empty() {
            Some("must not be empty")
        } else if text.contains(['/', '\0']) || text == "." || text == ".." {
            Some("must be a single file name (no '/', not \".\" or \"..\")")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.fail(
                key,
                Some(value),
                format!("invalid index {text:?}: {problem}"),
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// The codings served pre-compressed, in the order given (the server's preference on
    /// equal q); an empty array is the default (off), not an error.
    fn precompressed(&mut self, key: &str, value: &Value) -> Option<Vec<ContentCoding>> {
        if matches!(&value.kind, ValueKind::Array(items) if items.is_empty()) {
            return Some(Vec::new());
        }
        let shape = ListShape {
            expected: "an array of content codings, e.g. [\"br\", \"gzip\"]",
            // Never reported: an empty array is the default, taken above.
            empty: "at least one coding is required",
            same: |a: &ContentCoding, b: &ContentCoding| a == b,
            describe: |coding: &ContentCoding| format!("coding {:?}", coding.token()),
        };
        self.list(key, value, &shape, Self::coding)
    }

    /// One of [`ContentCoding::ALL`], spelled as its content-coding token.
    fn coding(&mut self, key: &str, value: &Value) -> Option<ContentCoding> {
        let options = ContentCoding::ALL.map(|coding| (coding.token(), coding));
        self.choice(key, value, &options)
    }
}
