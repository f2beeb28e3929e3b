//! `ferry check`: everything that can be known about a configuration without binding a
//! socket, in one run. The loading errors (every key, with its line and column) come first;
//! then, for the parts that did validate, what only the file system can say: location roots
//! and X-Sendfile roots that cannot be opened, a TLS certificate and key that do not load or
//! do not fit, a cache directory that cannot be used or created, a spool directory where no
//! file can be made. Host names that do not resolve and a kTLS requirement this machine cannot
//! meet are warnings: they may well hold where ferry runs.
//!
//! Nothing here creates, binds or connects: the checks open and inspect.

use crate::config::load::Checked;
use crate::config::{Config, ConfigError, KtlsMode};

/// What a check found.
pub struct Report {
    /// Every error, the loading ones first; empty: the configuration is good.
    pub errors: Vec<ConfigError>,
    /// Things that may fail where ferry runs but need not.
    pub warnings: Vec<String>,
}

/// Checks what `checked` holds: its loading errors, then the file system behind the valid
/// parts of its configuration.
pub fn run(checked: &Checked) -> Report {
    let mut report = Report {
        errors: checked.errors.clone(),
        warnings: Vec::new(),
    };
    let Some(config) = &checked.config else {
        return report;
    };
    let found = file_system(config, &checked.location_index, &mut report.warnings);
    for (key, message) in found {
        report.errors.push(checked.error(&key, message));
    }
    report
}

/// `(key, message)` for each problem on the file system. `location_index` maps each of
/// `config.locations` to its index in the file.
fn file_system(
    config: &Config,
    location_index: &[usize],
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if let Err(errors) = crate::route::Router::new(config) {
        found.extend(
            errors
                .iter()
                .map(|error| renumber_location(split_key(error), location_index)),
        );
    }
    if let Some(tls) = &config.tls {
        if let Err(errors) = crate::tls::server_config(tls) {
            found.extend(errors.iter().map(|error| split_key(error)));
        }
        if tls.ktls == KtlsMode::Require && !crate::tls::ulp_available() {
            warnings.push(format!(
                "tls.ktls: \"require\", but this machine has no `tls` in {}: ferry would \
                 refuse to start here (modprobe tls)",
                crate::tls::ULP_PATH
            ));
        }
    }
    if let Some(cache) = &config.cache
        && let Err(message) = crate::cache::check_dir(&cache.dir)
    {
        found.push(("cache.dir".into(), message));
    }
    let proxied = config.upstream.is_some() || !config.upstreams.is_empty();
    if proxied {
        let metrics = crate::metrics::Metrics::new();
        let spool = crate::spool::Spool::new(&config.spool, metrics.spool.clone());
        if let Err(err) = spool.check() {
            let dir = config.spool.dir.display();
            found.push((
                "spool.dir".into(),
                format!("{dir}: cannot create a spool file: {err}"),
            ));
        }
    }
    for (key, address) in crate::upstream::server_keys(config) {
        warnings.extend(crate::upstream::check_resolves(&key, address));
    }
    found
}

/// `"location[0].root: /srv: No such file"` → `("location[0].root", "/srv: No such file")`.
fn split_key(error: &str) -> (String, String) {
    match error.split_once(": ") {
        Some((key, message)) if !key.contains(' ') => (key.to_string(), message.to_string()),
        _ => ("config".to_string(), error.to_string()),
    }
}

/// The router numbers the locations it was given; with an invalid location left out, the
/// file's numbers differ.
fn renumber_location((key, message): (String, String), index: &[usize]) -> (String, String) {
    let renumbered = key
        .strip_prefix("location[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(n, rest)| Some((index.get(n.parse::<usize>().ok()?)?, rest)))
        .map(|(file_index, rest)| format!("location[{file_index}]{rest}"));
    (renumbered.unwrap_or(key), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_split_off_and_locations_renumbered() {
        let split = split_key("location[1].root: /srv/x: No such file or directory");
        assert_eq!(
            renumber_location(split, &[0, 2, 3]),
            (
                "location[2].root".to_string(),
                "/srv/x: No such file or directory".to_string()
            )
        );
        let split = split_key("tls.cert: /c.pem: no certificate in the file");
        assert_eq!(split.0, "tls.cert");
        assert_eq!(split_key("tls: something odd").0, "tls");
        assert_eq!(split_key("no key here").0, "config");
    }

    #[test]
    fn a_cache_dir_is_usable_or_creatable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(crate::cache::check_dir(dir.path()), Ok(()));
        assert_eq!(crate::cache::check_dir(&dir.path().join("a/b")), Ok(()));
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let message = crate::cache::check_dir(&file).unwrap_err();
        assert_eq!(message, format!("{}: not a directory", file.display()));
        let under_file = file.join("sub");
        let message = crate::cache::check_dir(&under_file).unwrap_err();
        assert_eq!(
            message,
            format!(
                "{}: cannot be created: {} is not a directory",
                under_file.display(),
                file.display()
            )
        );
        assert!(!dir.path().join("a").exists(), "the check creates nothing");
    }
}
