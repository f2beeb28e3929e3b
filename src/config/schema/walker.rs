//! The walker every section parser works with: it records each problem with its full key
//! (naming the environment variable when the value came from one), reports unknown keys,
//! and parses the value kinds shared by several sections (strings, booleans, integers,
//! durations, sizes, addresses, lists, one-of choices). Section parsers (`schema.rs` for
//! server, admin and io; one file per other section) add their own `impl Walker` blocks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use ::config::{Map, Value, ValueKind};

use crate::config::env::ENV_ORIGIN;
use crate::config::position::{Part, Spans};
use crate::config::units::{parse_duration, parse_size};
use crate::config::{ConfigError, MAX_CHUNK, MIN_CHUNK};

pub(super) type Table = Map<String, Value>;

/// The value of `section.key` in the top table, if both are there.
pub(super) fn raw<'v>(top: &'v Table, section: &str, key: &str) -> Option<&'v Value> {
    match &top.get(section)?.kind {
        ValueKind::Table(table) => table.get(key),
        _ => None,
    }
}

pub(super) struct Walker<'a> {
    pub(super) env_names: &'a BTreeMap<String, String>,
    pub(super) errors: &'a mut Vec<ConfigError>,
    /// The file's spans, when the text came from a file: errors get its line and column.
    pub(super) spans: Option<&'a Spans<'a>>,
}

impl Walker<'_> {
    /// Records a problem with `key`; names the environment variable if `value` came from one,
    /// else gives its place in the file (the value's; the key's when there is no value).
    pub(super) fn fail(&mut self, key: &str, value: Option<&Value>, message: impl Into<String>) {
        let mut message = message.into();
        let from_env = value.is_some_and(|value| value.origin() == Some(ENV_ORIGIN));
        if from_env {
            let base = key.split('[').next().unwrap_or(key);
            if let Some(name) = self.env_names.get(base) {
                message.push_str(&format!(" (from environment variable {name})"));
            }
        }
        let part = if value.is_some() {
            Part::Value
        } else {
            Part::Key
        };
        let position = match self.spans {
            Some(spans) if !from_env => spans.locate(key, part),
            _ => None,
        };
        self.errors
            .push(ConfigError::new(key, message).at(position));
    }

    pub(super) fn wrong_type(&mut self, key: &str, value: &Value, expected: &str) {
        self.fail(
            key,
            Some(value),
            format!("expected {expected}, found {}", describe(value)),
        );
    }

    /// Parses `section.name` with `parse` if the key is present.
    pub(super) fn field<T>(
        &mut self,
        table: &Table,
        section: &str,
        name: &str,
        parse: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        let value = table.get(name)?;
        parse(self, &format!("{section}.{name}"), value)
    }

    /// Like [`Self::field`], but a missing key is an error.
    pub(super) fn required<T>(
        &mut self,
        table: &Table,
        section: &str,
        name: &str,
        parse: impl FnOnce(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<T> {
        if !table.contains_key(name) {
            self.fail(&format!("{section}.{name}"), None, "missing required key");
        }
        self.field(table, section, name, parse)
    }

    pub(super) fn table<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v Table> {
        match &value.kind {
            ValueKind::Table(table) => Some(table),
            _ => {
                self.wrong_type(key, value, "a table");
                None
            }
        }
    }

    /// Whether a problem with `key` or one of its elements (`key[i]`) is already recorded.
    pub(super) fn reported(&self, key: &str) -> bool {
        self.errors.iter().any(|error| {
            error
                .key
                .strip_prefix(key)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
        })
    }

    /// Reports the keys of `table` that are not in `known`, as `prefix.key` (sorted).
    pub(super) fn unknown_keys(&mut self, prefix: &str, table: &Table, known: &[&str]) {
        let mut unknown: Vec<&String> = table
            .keys()
            .filter(|key| !known.contains(&key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            let full = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            self.fail(&full, None, "unknown key");
        }
    }

    /// A `directio_threshold`: a size, where 0 (`"0"`) means off.
    pub(super) fn threshold(&mut self, key: &str, value: &Value) -> Option<Option<NonZeroU64>> {
        let bytes = self.size(key, value)?;
        Some(NonZeroU64::new(bytes))
    }

    /// A directory path: any non-empty string (whether it exists is the server's business).
    pub(super) fn dir_path(&mut self, key: &str, value: &Value) -> Option<std::path::PathBuf> {
        let text = self.string(key, value, "a directory path string")?;
        if text.is_empty() {
            self.fail(key, Some(value), "must not be empty");
            return None;
        }
        Some(std::path::PathBuf::from(text))
    }

    /// A file path, or the empty string for none (`server.pid_file`, `server.upgrade_socket`).
    pub(super) fn optional_path(
        &mut self,
        key: &str,
        value: &Value,
    ) -> Option<Option<std::path::PathBuf>> {
        let text = self.string(key, value, "a file path string (\"\" for none)")?;
        if text.contains('\0') {
            self.fail(key, Some(value), "must not contain a NUL byte");
            return None;
        }
        Some((!text.is_empty()).then(|| std::path::PathBuf::from(text)))
    }

    pub(super) fn string<'v>(
        &mut self,
        key: &str,
        value: &'v Value,
        expected: &str,
    ) -> Option<&'v str> {
        match &value.kind {
            ValueKind::String(s) => Some(s),
            _ => {
                self.wrong_type(key, value, expected);
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, key: &str, value: &Value) -> Option<bool> {
        match value.kind {
            ValueKind::Boolean(b) => Some(b),
            _ => {
                self.wrong_type(key, value, "true or false");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, key: &str, value: &Value, expected: &str) -> Option<i128> {
        let int = as_integer(value);
        if int.is_none() {
            self.wrong_type(key, value, expected);
        }
        int
    }

    pub(super) fn duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        if let Some(n) = as_integer(value) {
            let message = format!("invalid duration {n}: add a unit, e.g. \"{n}s\"");
            self.fail(key, Some(value), message);
            return None;
        }
        let text = self.string(key, value, "a duration string, e.g. \"10s\"")?;
        parse_duration(text)
            .map_err(|message| self.fail(key, Some(value), message))
            .ok()
    }

    pub(super) fn positive_duration(&mut self, key: &str, value: &Value) -> Option<Duration> {
        let duration = self.duration(key, value)?;
        if duration.is_zero() {
            self.fail(key, Some(value), "must be greater than 0s");
            return None;
        }
        Some(duration)
    }

    pub(super) fn addr(&mut self, key: &str, value: &Value) -> Option<SocketAddr> {
        let text = self.string(key, value, "an \"ip:port\" string, e.g. \"127.0.0.1:8080\"")?;
        let trimmed = text.trim();
        trimmed.parse().ok().or_else(|| {
            let message = format!(
                "invalid address {trimmed:?}: expected \"ip:port\" with a numeric ip, \
                 e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
            );
            self.fail(key, Some(value), message);
            None
        })
    }

    pub(super) fn listen(&mut self, key: &str, value: &Value) -> Option<Vec<SocketAddr>> {
        let shape = ListShape {
            expected: "an array of \"ip:port\" strings, e.g. [\"127.0.0.1:8080\"]",
            empty: "at least one address is required",
            // Port 0 asks the kernel for a free port each time: listing it twice is fine.
            same: |a: &SocketAddr, b: &SocketAddr| a == b && a.port() != 0,
            describe: |addr: &SocketAddr| format!("address {addr}"),
        };
        self.list(key, value, &shape, Self::addr)
    }

    /// A non-empty array of items of which none is the `same` as an earlier one. From the
    /// environment, lists are comma-separated (see `config::env`) and a lone scalar is one
    /// item. Every bad item is reported with its index.
    pub(super) fn list<T>(
        &mut self,
        key: &str,
        value: &Value,
        shape: &ListShape<T>,
        mut item: impl FnMut(&mut Self, &str, &Value) -> Option<T>,
    ) -> Option<Vec<T>> {
        let single;
        let items: &[Value] = match &value.kind {
            ValueKind::Array(items) => items,
            // The environment gives a scalar where try_parsing saw a number or a boolean.
            _ if value.origin() == Some(ENV_ORIGIN) => {
                single = [value.clone()];
                &single
            }
            _ => {
                self.wrong_type(key, value, shape.expected);
                return None;
            }
        };
        if items.is_empty() {
            self.fail(key, Some(value), shape.empty);
            return None;
        }
        let mut found: Vec<(usize, T)> = Vec::new();
        let mut all_valid = true;
        for (index, value) in items.iter().enumerate() {
            let item_key = format!("{key}[{index}]");
            let Some(parsed) = item(self, &item_key, value) else {
                all_valid = false;
                continue;
            };
            if let Some((first, _)) = found.iter().find(|(_, seen)| (shape.same)(seen, &parsed)) {
                let message = format!(
                    "duplicate {} (also {key}[{first}])",
                    (shape.describe)(&parsed)
                );
                self.fail(&item_key, Some(value), message);
                all_valid = false;
            }
            found.push((index, parsed));
        }
        all_valid.then(|| found.into_iter().map(|(_, parsed)| parsed).collect())
    }

    pub(super) fn max_connections(&mut self, key: &str, value: &Value) -> Option<NonZeroUsize> {
        let n = self.integer(key, value, "a positive integer")?;
        if n < 1 {
            self.fail(key, Some(value), format!("must be at least 1, got {n}"));
            return None;
        }
        let n = usize::try_from(n).ok().and_then(NonZeroUsize::new);
        if n.is_none() {
            self.fail(key, Some(value), "too large");
        }
        n
    }

    pub(super) fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &Value,
        options: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<String> = options
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        let names = names.join(", ");
        let text = self.string(key, value, &format!("one of {names}"))?;
        let found = options.iter().find(|(name, _)| *name == text);
        if found.is_none() {
            let message = format!("unknown value {text:?}; expected one of {names}");
            self.fail(key, Some(value), message);
        }
        found.map(|(_, option)| *option)
    }

    pub(super) fn chunk(&mut self, key: &str, value: &Value) -> Option<NonZeroUsize> {
        let bytes = self.size(key, value)?;
        let chunk = usize::try_from(bytes)
            .ok()
            .filter(|n| (MIN_CHUNK..=MAX_CHUNK).contains(n))
            .and_then(NonZeroUsize::new);
        if chunk.is_none() {
            let message = format!("must be between 4KiB and 1GiB, got {bytes} bytes");
            self.fail(key, Some(value), message);
        }
        chunk
    }

    /// A size: a string with a unit ("2MiB") or a plain number of bytes.
    pub(super) fn size(&mut self, key: &str, value: &Value) -> Option<u64> {
        let bytes = match (&value.kind, as_integer(value)) {
            (_, Some(n)) => match u64::try_from(n) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.fail(
                        key,
                        Some(value),
                        format!("invalid size {n}: must not be negative"),
                    );
                    return None;
                }
            },
            (ValueKind::String(text), None) => match parse_size(text) {
                Ok(bytes) => bytes,
                Err(message) => {
                    self.fail(key, Some(value), message);
                    return None;
                }
            },
            _ => {
                let expected = "a size string, e.g. \"2MiB\", or a number of bytes";
                self.wrong_type(key, value, expected);
                return None;
            }
        };
        Some(bytes)
    }
}

/// What [`Walker::list`] needs to know of a list's items.
pub(super) struct ListShape<T> {
    /// The wrong-type message: what the key should hold.
    pub(super) expected: &'static str,
    /// The message for an empty array.
    pub(super) empty: &'static str,
    /// Whether an item repeats an earlier one.
    pub(super) same: fn(&T, &T) -> bool,
    /// An item, as a duplicate's message names it.
    pub(super) describe: fn(&T) -> String,
}

pub(super) fn as_integer(value: &Value) -> Option<i128> {
    match value.kind {
        ValueKind::I64(n) => Some(n.into()),
        ValueKind::I128(n) => Some(n),
        ValueKind::U64(n) => Some(n.into()),
        ValueKind::U128(n) => i128::try_from(n).ok(),
        _ => None,
    }
}

/// What a value is, for "expected …, found …" messages.
pub(super) fn describe(value: &Value) -> String {
    match &value.kind {
        ValueKind::Nil => "nothing".into(),
        ValueKind::Boolean(b) => format!("boolean {b}"),
        ValueKind::I64(n) => format!("integer {n}"),
        ValueKind::I128(n) => format!("integer {n}"),
        ValueKind::U64(n) => format!("integer {n}"),
        ValueKind::U128(n) => format!("integer {n}"),
        ValueKind::Float(x) => format!("float {x}"),
        ValueKind::String(s) => format!("string {s:?}"),
        ValueKind::Table(_) => "a table".into(),
        ValueKind::Array(_) => "an array".into(),
    }
}
