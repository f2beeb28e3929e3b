//! Loading: the TOML text and the `FERRY__*` environment merged by the `config` crate, then
//! walked by `schema` into a [`Config`] or every problem found. The types loaded live in
//! `mod.rs`; this file only reads and merges.

use std::path::Path;

use super::schema;
use super::{Config, ConfigError, ConfigErrors, DEFAULT_TOML, env};

impl Config {
    /// The embedded default ([`DEFAULT_TOML`], the text of `config/ferry.toml`) with the
    /// process's `FERRY__*` environment overrides applied.
    pub fn embedded_default() -> Result<Config, ConfigErrors> {
        let (vars, errors) = env::process_vars();
        load_text(DEFAULT_TOML, Some("embedded default config"), &vars, errors)
    }

    /// Loads a TOML file, then applies the process's `FERRY__SECTION__KEY` overrides.
    ///
    /// A missing or unreadable file is a single error with key `config` naming the path.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        let (vars, errors) = env::process_vars();
        let origin = path.display().to_string();
        load_text(&text, Some(&origin), &vars, errors)
    }

    /// The testable core: TOML text plus explicit environment variables as `(name, value)`
    /// pairs (only those starting with `FERRY__`, in any case, are looked at). The process
    /// environment is not read.
    pub fn from_toml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        load_text(text, None, env, Vec::new())
    }
}

/// Merges `text` (named `origin` in a syntax error) with `env`, then validates. `env_errors`
/// holds problems already found with the process environment (non-UTF-8 values).
fn load_text(
    text: &str,
    origin: Option<&str>,
    env: &[(String, String)],
    env_errors: Vec<ConfigError>,
) -> Result<Config, ConfigErrors> {
    let screened = env::screen(env);
    let merged = ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .add_source(env::source(screened.accepted))
        .build()
        .map_err(|e| syntax_error(origin, &e))?;
    let mut errors = Vec::new();
    let config = schema::validate(&merged.cache, &screened.names, &mut errors);
    errors.extend(env_errors);
    errors.extend(screened.errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The one error for text that is not TOML, condensed to one line: the parser's position and
/// message without the source snippet it draws under them.
fn syntax_error(origin: Option<&str>, error: &::config::ConfigError) -> ConfigErrors {
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
    if let Some(origin) = origin {
        message = format!("{origin}: {message}");
    }
    ConfigError::new("config", message).into()
}

/// Whether `line` is part of the `3 | x = 1` / `| ^` snippet in a TOML parser message.
fn is_snippet_line(line: &str) -> bool {
    line.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .starts_with('|')
}
