//! Loading: the TOML text and the `FERRY__*` environment merged by the `config` crate, then
//! walked by `schema` into a [`Config`] or every problem found ([`Checked`] keeps both, for
//! `ferry check`). The types loaded live in `mod.rs`; this file only reads and merges.

use std::path::Path;

use super::position::{Part, Spans};
use super::schema;
use super::{Config, ConfigError, ConfigErrors, DEFAULT_TOML, env};

impl Config {
    /// The embedded default ([`DEFAULT_TOML`], the text of `config/ferry.toml`) with the
    /// process's `FERRY__*` environment overrides applied.
    pub fn embedded_default() -> Result<Config, ConfigErrors> {
        Checked::read(None).into_result()
    }

    /// Loads a TOML file, then applies the process's `FERRY__SECTION__KEY` overrides. Errors
    /// about the file's values carry their line and column.
    ///
    /// A missing or unreadable file is a single error with key `config` naming the path.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Checked::read(Some(path)).into_result()
    }

    /// The testable core: TOML text plus explicit environment variables as `(name, value)`
    /// pairs (only those starting with `FERRY__`, in any case, are looked at). The process
    /// environment is not read.
    pub fn from_toml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        Checked::from_text(text, Origin::Text, env, Vec::new()).into_result()
    }
}

/// Where the text came from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// A file: named in errors, and its positions given.
    File(&'a str),
    /// The embedded default: named in a syntax error, no positions (its values cannot be
    /// wrong; what goes wrong comes from the environment).
    Embedded,
    /// Text handed to [`Config::from_toml`].
    Text,
}

/// Everything one load found, for `ferry check`, which goes on to the file system with what
/// is valid instead of stopping at the first problem: the configuration as far as it is valid
/// (sections with an error left at their defaults or out, only the valid locations), and
/// every error with its position.
pub struct Checked {
    /// What was read: the path as given, or `embedded default`.
    pub source: String,
    /// `None` when the text could not be read or is not TOML.
    pub config: Option<Config>,
    /// For each of `config.locations`, its index among the file's `[[location]]` sections
    /// (they differ when an earlier location is invalid and left out).
    pub location_index: Vec<usize>,
    /// Every problem found, in the order [`Config::load`] reports them.
    pub errors: Vec<ConfigError>,
    /// The file's text, when read from a file, to place later errors.
    text: Option<String>,
    /// Keys set from the environment: no place in the file.
    env_keys: Vec<String>,
}

impl Checked {
    /// Reads `path` (or the embedded default) and the process environment.
    pub fn read(path: Option<&Path>) -> Checked {
        let (vars, env_errors) = env::process_vars();
        let Some(path) = path else {
            return Checked::from_text(DEFAULT_TOML, Origin::Embedded, &vars, env_errors);
        };
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut checked = Checked::from_text(&text, Origin::File(&name), &vars, env_errors);
                checked.text = Some(text);
                checked
            }
            Err(e) => Checked {
                errors: vec![ConfigError::new(
                    "config",
                    format!("cannot read {name}: {e}"),
                )],
                source: name,
                config: None,
                location_index: Vec::new(),
                text: None,
                env_keys: Vec::new(),
            },
        }
    }

    /// Merges `text` with `env`, then validates. `env_errors` holds problems already found
    /// with the process environment (non-UTF-8 values).
    fn from_text(
        text: &str,
        origin: Origin<'_>,
        env: &[(String, String)],
        env_errors: Vec<ConfigError>,
    ) -> Checked {
        let source = match origin {
            Origin::File(name) => name.to_string(),
            Origin::Embedded => "embedded default".to_string(),
            Origin::Text => "text".to_string(),
        };
        let screened = env::screen(env);
        let env_keys = screened.names.keys().cloned().collect();
        let spans = match origin {
            Origin::File(name) => Some(Spans::parse(name, text)),
            Origin::Embedded | Origin::Text => None,
        };
        let merged = ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .add_source(env::source(screened.accepted))
            .build();
        let mut errors = Vec::new();
        let (config, location_index) = match merged {
            Ok(merged) => {
                let validated =
                    schema::validate(&merged.cache, &screened.names, spans.as_ref(), &mut errors);
                (Some(validated.0), validated.1)
            }
            // Text that is not TOML is the one error: nothing else can be said of it.
            Err(e) => {
                return Checked {
                    source,
                    config: None,
                    location_index: Vec::new(),
                    errors: vec![syntax_error(origin, text, &e)],
                    text: None,
                    env_keys,
                };
            }
        };
        errors.extend(env_errors);
        errors.extend(screened.errors);
        Checked {
            source,
            config,
            location_index,
            errors,
            text: None,
            env_keys,
        }
    }

    /// The configuration, or every error.
    fn into_result(self) -> Result<Config, ConfigErrors> {
        match self.config {
            Some(config) if self.errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(self.errors)),
        }
    }

    /// An error found later about `key` (`location[0].root: ...`, as `ferry check` gets them
    /// from the file system checks), placed in the file like the loading errors.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let base = key.split('[').next().unwrap_or(key);
        let from_env = self.env_keys.iter().any(|k| k == base);
        let position = match &self.text {
            Some(text) if !from_env => Spans::parse(&self.source, text).locate(key, Part::Value),
            _ => None,
        };
        ConfigError::new(key, message).at(position)
    }
}

/// The one error for text that is not TOML, condensed to one line: the parser's position and
/// message without the source snippet it draws under them.
fn syntax_error(origin: Origin<'_>, text: &str, error: &::config::ConfigError) -> ConfigError {
    if let Origin::File(name) = origin
        && let Err(toml_error) = toml::de::DeTable::parse(text)
        && let Some(span) = toml_error.span()
    {
        let position = Spans::parse(name, text).position(span.start);
        let message = toml_error.message().trim().replace('\n', "; ");
        return ConfigError::new("config", format!("invalid TOML: {message}")).at(Some(position));
    }
    let raw = match error {
        ::config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    let mut lines = raw
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_snippet_line(line));
    let mut message = String::from("invalid TOML");
    if let Some(first) = lines.next() {
        match first.strip_prefix("TOML parse error") {
            Some(position) => message.push_str(position),
            None => {
                message.push_str(": ");
                message.push_str(first);
            }
        }
    }
    let rest: Vec<&str> = lines.collect();
    if !rest.is_empty() {
        message.push_str(": ");
        message.push_str(&rest.join("; "));
    }
    match origin {
        Origin::File(name) => message = format!("{name}: {message}"),
        Origin::Embedded => message = format!("embedded default config: {message}"),
        Origin::Text => {}
    }
    ConfigError::new("config", message)
}

/// Whether `line` is part of the `3 | x = 1` / `| ^` snippet in a TOML parser message.
fn is_snippet_line(line: &str) -> bool {
    line.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .starts_with('|')
}
