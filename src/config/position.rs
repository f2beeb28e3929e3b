//! Where a key sits in the configuration file, so that an error can say `file:line:column`.
//!
//! The `config` crate's value tree keeps no positions, so the file's text is parsed a second
//! time here, by the `toml` crate's span-keeping parser (already built for `config`), and a
//! full key (`server.listen[1]`, `location[2].root`, `upstreams.app.servers[0]`) is looked up
//! in that document. Values point at the value, unknown keys at the key; a key the file does
//! not have (a missing required key) points at the nearest enclosing table it does have.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A place in a configuration file: the file as named, line and column from 1 (columns
/// count characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file as given to `--config`.
    pub file: Arc<str>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The file's text and its parsed document.
pub(super) struct Spans<'t> {
    file: Arc<str>,
    text: &'t str,
    /// `None` when the text is not TOML (then the syntax error is the only error anyway).
    document: Option<Spanned<DeTable<'t>>>,
}

/// What an error is about: the key itself, or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Key,
    Value,
}

impl<'t> Spans<'t> {
    pub(super) fn parse(file: &str, text: &'t str) -> Self {
        Spans {
            file: file.into(),
            text,
            document: DeTable::parse(text).ok(),
        }
    }

    /// The position of `key` (its `part`), or of the nearest enclosing table the file has;
    /// `None` when not even the first segment is in the file.
    pub(super) fn locate(&self, key: &str, part: Part) -> Option<Position> {
        let document = self.document.as_ref()?;
        let mut table = document.get_ref();
        let mut found: Option<Range<usize>> = None;
        let segments = segments(key)?;
        let last = segments.len() - 1;
        for (i, (name, indices)) in segments.into_iter().enumerate() {
            let Some((key_span, mut value)) = table.get_key_value(name) else {
                break;
            };
            let indexed = !indices.is_empty();
            let mut complete = true;
            for index in indices {
                match value.get_ref() {
                    DeValue::Array(items) if index < items.len() => value = &items[index],
                    _ => {
                        complete = false;
                        break;
                    }
                }
            }
            // An array element has no key of its own: its value stands for it.
            let key_itself = i == last && complete && part == Part::Key && !indexed;
            found = Some(if key_itself {
                key_span.span()
            } else {
                value.span()
            });
            match (complete, value.get_ref()) {
                (true, DeValue::Table(inner)) => table = inner,
                _ => break,
            }
        }
        found.map(|span| self.position(span.start))
    }

    /// Line and column of byte `offset`.
    pub(super) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            file: Arc::clone(&self.file),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// `location[2].root` → `[("location", [2]), ("root", [])]`; `None` for the file-level key
/// `config` or a key this cannot read.
fn segments(key: &str) -> Option<Vec<(&str, Vec<usize>)>> {
    if key == "config" || key.is_empty() {
        return None;
    }
    key.split('.')
        .map(|segment| {
            let (name, rest) = segment.split_once('[').unwrap_or((segment, ""));
            let indices = if rest.is_empty() {
                Vec::new()
            } else {
                rest.trim_end_matches(']')
                    .split("][")
                    .map(|n| n.parse().ok())
                    .collect::<Option<Vec<usize>>>()?
            };
            (!name.is_empty()).then_some((name, indices))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[server]
listen = [\"127.0.0.1:0\", \"bad\"]
header_timeout = \"ten\"
listn = 1

[[location]]
prefix = \"/\"
root = \"public\"

[[location]]
prefix = \"/é/\"
root = \"x\"

[upstreams.app]
servers = [\"a:1\"]
";

    fn at(key: &str, part: Part) -> Option<(usize, usize)> {
        let spans = Spans::parse("f.toml", TEXT);
        spans.locate(key, part).map(|p| (p.line, p.column))
    }

    #[test]
    fn values_keys_and_array_items_are_found() {
        assert_eq!(at("server.header_timeout", Part::Value), Some((3, 18)));
        assert_eq!(at("server.listn", Part::Key), Some((4, 1)));
        assert_eq!(at("server.listen[1]", Part::Value), Some((2, 26)));
        assert_eq!(at("server.listen[1]", Part::Key), Some((2, 26)));
        assert_eq!(at("location[1].root", Part::Value), Some((12, 8)));
        assert_eq!(at("location[1].prefix", Part::Key), Some((11, 1)));
        assert_eq!(at("upstreams.app.servers[0]", Part::Value), Some((15, 12)));
    }

    #[test]
    fn a_key_the_file_lacks_points_at_its_table_or_nowhere() {
        // [[location]] index 1 has no `expires`: its table.
        let table = at("location[1].expires", Part::Key).expect("a position");
        assert!(table.0 >= 10 && table.0 <= 12, "{table:?}");
        assert_eq!(at("tls.cert", Part::Key), None);
        assert_eq!(at("config", Part::Key), None);
        assert_eq!(at("server.listen[7]", Part::Value), Some((2, 10)));
    }

    #[test]
    fn columns_count_characters_and_bad_text_locates_nothing() {
        let spans = Spans::parse("f.toml", "a = \"é\"\nb = 1");
        assert_eq!(spans.position(11).column, 3);
        assert_eq!(spans.position(6).column, 6);
        assert_eq!(Spans::parse("f", "[x\n").locate("x", Part::Key), None);
    }
}
