//! `[offload]`: which file-offload headers from the upstream ferry honours (X-Accel-Redirect,
//! X-Sendfile under listed roots) and what it tells the application (`X-Sendfile-Type`,
//! `X-Accel-Mapping`). The keys are checked against each other here; the mapping's URI prefix
//! is checked against the locations once they are known ([`Walker::mapping_reaches_internal`]).

use std::path::{Component, Path, PathBuf};

use ::config::{Value, ValueKind};

use super::walker::{Table, Walker};
use crate::config::env::ENV_ORIGIN;
use crate::config::{Location, Offload, SendfileType};

/// The keys of this section, in the order config/ferry.toml documents them.
pub(super) const OFFLOAD_KEYS: [&str; 4] = [
    "x_accel_redirect",
    "x_sendfile_roots",
    "advertise",
    "accel_mapping",
];

const SENDFILE_TYPES: [SendfileType; 2] = [SendfileType::XAccelRedirect, SendfileType::XSendfile];

impl Walker<'_> {
    pub(super) fn offload(&mut self, value: Option<&Value>) -> Offload {
        let defaults = Offload::default();
        let Some(table) = value.and_then(|value| self.table("offload", value)) else {
            return defaults;
        };
        self.unknown_keys("offload", table, &OFFLOAD_KEYS);
        let o = "offload";
        let accel = self.field(table, o, "x_accel_redirect", Self::boolean);
        let roots = self.field(table, o, "x_sendfile_roots", Self::sendfile_roots);
        let advertise = self.field(table, o, "advertise", Self::sendfile_type);
        let mapping = self.field(table, o, "accel_mapping", Self::accel_mapping);
        let accel = or_default(accel, table, "x_accel_redirect", defaults.x_accel_redirect);
        let roots = or_default(roots, table, "x_sendfile_roots", defaults.x_sendfile_roots);

        let advertised = table.get("advertise");
        match (advertise, accel, &roots) {
            (Some(SendfileType::XSendfile), _, Some(roots)) if roots.is_empty() => {
                let message = "\"X-Sendfile\" has the app answer with X-Sendfile headers, but \
                               offload.x_sendfile_roots is empty, which turns X-Sendfile off; \
                               list the directories the app may send files from there";
                self.fail("offload.advertise", advertised, message);
            }
            (Some(SendfileType::XAccelRedirect), Some(false), _) => {
                let message = "\"X-Accel-Redirect\" has the app answer with X-Accel-Redirect \
                               headers, but offload.x_accel_redirect is false, so ferry would \
                               not honour them";
                self.fail("offload.advertise", advertised, message);
            }
            _ => {}
        }
        if mapping.is_some() && accel == Some(false) {
            let message = "the mapping is for X-Accel-Redirect, but offload.x_accel_redirect is \
                           false";
            self.fail("offload.accel_mapping", table.get("accel_mapping"), message);
        }
        Offload {
            x_accel_redirect: accel.unwrap_or(defaults.x_accel_redirect),
            x_sendfile_roots: roots.unwrap_or_default(),
            advertise,
            accel_mapping: mapping,
        }
    }

    /// An array of absolute directories; from the environment a comma-separated list, where
    /// an empty value is the empty list.
    fn sendfile_roots(&mut self, key: &str, value: &Value) -> Option<Vec<PathBuf>> {
        let single;
        let items: &[Value] = match &value.kind {
            ValueKind::Array(items) if value.origin() == Some(ENV_ORIGIN) => {
                match items.as_slice() {
                    [only] if matches!(&only.kind, ValueKind::String(s) if s.is_empty()) => &[],
                    items => items,
                }
            }
            ValueKind::Array(items) => items,
            // The environment gives a scalar where try_parsing saw a number or a boolean.
            _ if value.origin() == Some(ENV_ORIGIN) => {
                single = [value.clone()];
                &single
            }
            _ => {
                let expected = "an array of absolute directory paths, e.g. [\"/srv/files\"]";
                self.wrong_type(key, value, expected);
                return None;
            }
        };
        let mut roots: Vec<PathBuf> = Vec::new();
        let mut all_valid = true;
        for (index, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let Some(root) = self.sendfile_root(&item_key, item) else {
                all_valid = false;
                continue;
            };
            // Path equality compares components: "/srv/files/" is "/srv/files".
            if let Some(first) = roots.iter().position(|seen| *seen == root) {
                let message = format!("duplicate root {:?} (also {key}[{first}])", root.display());
                self.fail(&item_key, Some(item), message);
                all_valid = false;
            }
            roots.push(root);
        }
        all_valid.then_some(roots)
    }

    fn sendfile_root(&mut self, key: &str, value: &Value) -> Option<PathBuf> {
        let text = self.string(key, value, "an absolute directory path string")?;
        let problem = if text.is_empty() {
            "must not be empty".to_string()
        } else {
            match absolute_path_problem(text) {
                Some(problem) => format!("invalid root {text:?}: {problem}"),
                None => return Some(PathBuf::from(text)),
            }
        };
        self.fail(key, Some(value), problem);
        None
    }

    /// One of [`SENDFILE_TYPES`], ignoring ASCII case like header names.
    fn sendfile_type(&mut self, key: &str, value: &Value) -> Option<SendfileType> {
        let names: Vec<String> = SENDFILE_TYPES
            .iter()
            .map(|kind| format!("{:?}", kind.as_str()))
            .collect();
        let names = names.join(", ");
        let text = self.string(key, value, &format!("one of {names}"))?;
        let found = SENDFILE_TYPES
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text.trim()));
        if found.is_none() {
            let message = format!("unknown value {text:?}; expected one of {names} (any case)");
            self.fail(key, Some(value), message);
        }
        found
    }

    fn accel_mapping(&mut self, key: &str, value: &Value) -> Option<(PathBuf, String)> {
        let expected = "a \"FS_PREFIX=URI_PREFIX\" string, e.g. \"/srv/files/=/protected/\"";
        let text = self.string(key, value, expected)?;
        parse_accel_mapping(text)
            .map_err(|why| self.fail(key, Some(value), format!("invalid mapping {text:?}: {why}")))
            .ok()
    }

    /// The mapping's URI prefix must lead to an internal location: the app rewrites a file
    /// path under the file-system prefix into a URI under the URI prefix and sends it in
    /// X-Accel-Redirect, and the location with the longest prefix of that URI serves it.
    /// `locations` is the complete list.
    pub(super) fn mapping_reaches_internal(
        &mut self,
        (_, uri): &(PathBuf, String),
        locations: &[Location],
        value: Option<&Value>,
    ) {
        let probe = if uri.ends_with('/') {
            uri.clone()
        } else {
            format!("{uri}/")
        };
        let serving = locations
            .iter()
            .enumerate()
            .filter(|(_, location)| probe.starts_with(&location.prefix))
            .max_by_key(|(_, location)| location.prefix.len());
        let add = format!("add a [[location]] with prefix = {probe:?} and internal = true");
        let message = match serving {
            Some((_, location)) if location.internal => return,
            Some((index, location)) => format!(
                "URI prefix {uri:?} is served by location[{index}] (prefix {:?}), which is not \
                 internal; {add}",
                location.prefix
            ),
            None => format!("URI prefix {uri:?} is served by no location; {add}"),
        };
        self.fail("offload.accel_mapping", value, message);
    }
}

/// The parsed value, or `default` if the key is absent; `None` if it is present but invalid
/// (already reported).
fn or_default<T>(parsed: Option<T>, table: &Table, key: &str, default: T) -> Option<T> {
    match parsed {
        Some(parsed) => Some(parsed),
        None if table.contains_key(key) => None,
        None => Some(default),
    }
}

/// Why `text` is not an absolute path without `..`, if it is not.
fn absolute_path_problem(text: &str) -> Option<&'static str> {
    let path = Path::new(text);
    if !path.is_absolute() {
        Some("must be an absolute path")
    } else if path.components().any(|c| c == Component::ParentDir) {
        Some("must not contain \"..\"")
    } else {
        None
    }
}

/// `"/srv/files/=/protected/"` into the file-system prefix and the URI prefix; the error says
/// why not, without the value (the caller puts `invalid mapping "…"` in front).
pub(super) fn parse_accel_mapping(text: &str) -> Result<(PathBuf, String), String> {
    let Some((fs, uri)) = text.split_once('=') else {
        return Err("expected \"FS_PREFIX=URI_PREFIX\", e.g. \"/srv/files/=/protected/\"".into());
    };
    if text.contains(',') {
        return Err("one mapping only: the app splits X-Accel-Mapping at ','".into());
    }
    let (fs, uri) = (fs.trim(), uri.trim());
    if fs.is_empty() {
        return Err("the file-system prefix before '=' is empty".into());
    }
    if let Some(problem) = absolute_path_problem(fs) {
        return Err(format!("the file-system prefix {fs:?} {problem}"));
    }
    if !uri.starts_with('/') {
        return Err(format!("the URI prefix {uri:?} must start with '/'"));
    }
    // The app replaces the one prefix with the other as plain text.
    if fs.ends_with('/') != uri.ends_with('/') {
        let file = format!("{}/a.pdf", fs.trim_end_matches('/'));
        let mapped = format!("{uri}{}", &file[fs.len()..]);
        return Err(format!(
            "end both prefixes with '/' or neither: the app would turn {file:?} into {mapped:?}"
        ));
    }
    Ok((PathBuf::from(fs), uri.to_owned()))
}
