//! The `[[location]]` list: its shape, each location's keys, and prefixes unique across it.

use std::collections::HashMap;
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::{LOCATION_KEYS, Walker};
use crate::config::Location;

impl Walker<'_> {
    pub(super) fn locations(&mut self, value: Option<&Value>) -> Vec<Location> {
        let items = match value.map(|value| (value, &value.kind)) {
            Some((_, ValueKind::Array(items))) if !items.is_empty() => items,
            None | Some((_, ValueKind::Array(_))) => {
                self.fail("location", None, "at least one [[location]] is required");
                return Vec::new();
            }
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
                locations.push(location);
            }
        }
        locations
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
        let root = self.required(table, &key, "root", Self::root);
        let index_file = self.field(table, &key, "index", Self::index_file);
        let expires = self.field(table, &key, "expires", Self::duration);
        let prefix = prefix?;
        if let Some(first) = seen.get(&prefix) {
            let message = format!("duplicate prefix {prefix:?} (also location[{first}].prefix)");
            self.fail(&format!("{key}.prefix"), None, message);
            return None;
        }
        seen.insert(prefix.clone(), index);
        Some(Location {
            prefix,
            root: root?,
            index: index_file,
            expires,
        })
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
}
