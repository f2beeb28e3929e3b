//! Tests of the whole loading pipeline: TOML text and environment pairs in, a `Config` or the
//! exact list of errors out. Here: defaults, reading every key, `load` and error display;
//! `errors.rs` has one test per kind of mistake in a file, `env.rs` the environment overrides,
//! `upstream.rs` and `offload.rs` the `[upstream]` and `[offload]` sections, internal
//! locations and the checks between them and the locations, `tls.rs` the `[tls]` section and
//! its listeners against the others, `precompressed.rs` a location's `precompressed` list,
//! `headers.rs` the `add_header` lists and `server.redirect_https`.
//! Unit parsing and variable screening have their own tests in `units.rs` and `env.rs` of the
//! parent module.

mod admin;
mod cache;
mod directio;
mod env;
mod errors;
mod headers;
mod ingress;
mod offload;
mod precompressed;
mod spool;
mod tls;
mod upstream;

use super::*;

pub(super) const LOCATION: &str = "[[location]]\nprefix = \"/\"\nroot = \"public\"\n";

pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

pub(super) fn load_ok(text: &str, vars: &[(&str, &str)]) -> Config {
    match Config::from_toml(text, &env(vars)) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

/// The errors for `text` and `vars`, each as `"key: message"`.
pub(super) fn load_err(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match Config::from_toml(text, &env(vars)) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn embedded_default_is_the_documented_defaults() {
    let expected = Config {
        server: Server {
            listen: vec![addr("127.0.0.1:8080")],
            header_timeout: secs(10),
            keepalive_timeout: secs(60),
            send_timeout: secs(60),
            max_connections: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            shutdown_grace: secs(30),
            access_log: AccessLog::Text,
            max_body_size: 100 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            add_header: Vec::new(),
            redirect_https: None,
            h2c: true,
            pid_file: None,
            upgrade_socket: None,
        },
        admin: Admin {
            token: None,
            listen: addr("127.0.0.1:9090"),
        },
        io: Io {
            send_path: SendPathSetting::Auto,
            chunk: NonZeroUsize::new(2 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            directio_threshold: None,
            open_file_cache: 0,
            open_file_cache_valid: secs(1),
        },
        locations: vec![Location {
            prefix: "/".into(),
            root: "public".into(),
            index: Some("index.html".into()),
            expires: None,
            internal: false,
            directio_threshold: None,
            precompressed: Vec::new(),
            upstream: None,
            add_header: Vec::new(),
        }],
        upstream: None,
        upstreams: Default::default(),
        offload: Offload {
            x_accel_redirect: true,
            x_sendfile_roots: Vec::new(),
            advertise: None,
            accel_mapping: None,
        },
        tls: None,
        cache: None,
        spool: Spool {
            dir: "/tmp".into(),
            max_file_size: 1024 * 1024 * 1024,
            max_size: 4 * 1024 * 1024 * 1024,
            request_memory: 16 * 1024,
            request_buffering: true,
            response_buffering: true,
        },
    };
    assert_eq!(load_ok(DEFAULT_TOML, &[]), expected);
    // The code's defaults (used for absent keys) agree with the file.
    assert_eq!(expected.server, Server::default());
    assert_eq!(expected.admin, Admin::default());
    assert_eq!(expected.io, Io::default());
    assert_eq!(expected.offload, Offload::default());
    assert_eq!(expected.spool, Spool::default());
}

#[test]
fn embedded_default_loads_with_the_process_environment() {
    // The test process sets no FERRY__ variables (setting them would race other tests).
    let config = Config::embedded_default().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.locations.len(), 1);
}

#[test]
fn absent_sections_and_keys_take_defaults() {
    let config = load_ok(LOCATION, &[]);
    assert_eq!(config.server, Server::default());
    assert_eq!(config.admin, Admin::default());
    assert_eq!(config.io, Io::default());
    assert_eq!(config.upstream, None);
    assert_eq!(config.offload, Offload::default());
    assert_eq!(config.tls, None);
    assert!(!config.locations[0].internal);
    let text = format!("[server]\n[admin]\n[io]\n[upstream]\n[offload]\n{LOCATION}");
    let config = load_ok(&text, &[]);
    assert_eq!(config.server, Server::default());
    assert_eq!(config.upstream, None);
    assert_eq!(config.offload, Offload::default());
}

#[test]
fn every_key_is_read() {
    let text = r#"
        [server]
        listen = ["0.0.0.0:80", "[::1]:80"]
        header_timeout = "5s"
        keepalive_timeout = "0s"
        send_timeout = "1m30s"
        max_connections = 5
        shutdown_grace = "0s"
        access_log = "json"
        [admin]
        listen = "[::1]:9000"
        [io]
        send_path = "splice"
        chunk = 4096
        [[location]]
        prefix = "/static/"
        root = "/srv/static"
        expires = "1d"
        [[location]]
        prefix = "/"
        root = "public"
        index = "index.htm"
    "#;
    let config = load_ok(text, &[]);
    assert_eq!(config.server.listen, [addr("0.0.0.0:80"), addr("[::1]:80")]);
    assert_eq!(config.server.header_timeout, secs(5));
    assert_eq!(config.server.keepalive_timeout, secs(0));
    assert_eq!(config.server.send_timeout, secs(90));
    assert_eq!(config.server.max_connections.get(), 5);
    assert_eq!(config.server.shutdown_grace, secs(0));
    assert_eq!(config.server.access_log, AccessLog::Json);
    assert_eq!(config.admin.listen, addr("[::1]:9000"));
    assert_eq!(config.io.send_path, SendPathSetting::Splice);
    assert_eq!(config.io.chunk.get(), 4096);
    assert_eq!(
        config.locations,
        [
            Location {
                prefix: "/static/".into(),
                root: "/srv/static".into(),
                index: Some("index.html".into()),
                expires: Some(secs(86_400)),
                internal: false,
                directio_threshold: None,
                precompressed: Vec::new(),
                upstream: None,
                add_header: Vec::new(),
            },
            Location {
                prefix: "/".into(),
                root: "public".into(),
                index: Some("index.htm".into()),
                expires: None,
                internal: false,
                directio_threshold: None,
                precompressed: Vec::new(),
                upstream: None,
                add_header: Vec::new(),
            },
        ]
    );
}

#[test]
fn every_enum_spelling_is_accepted() {
    for (text, expected) in [
        ("text", AccessLog::Text),
        ("json", AccessLog::Json),
        ("off", AccessLog::Off),
    ] {
        let config = load_ok(
            &format!("[server]\naccess_log = \"{text}\"\n{LOCATION}"),
            &[],
        );
        assert_eq!(config.server.access_log, expected);
        assert_eq!(expected.as_str(), text);
    }
    for (text, expected) in [
        ("auto", SendPathSetting::Auto),
        ("sendfile", SendPathSetting::Sendfile),
        ("splice", SendPathSetting::Splice),
        ("buffered", SendPathSetting::Buffered),
    ] {
        let config = load_ok(&format!("[io]\nsend_path = \"{text}\"\n{LOCATION}"), &[]);
        assert_eq!(config.io.send_path, expected);
        assert_eq!(expected.as_str(), text);
    }
}

#[test]
fn load_reads_a_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("ferry.toml");
    let text = format!("[server]\nheader_timeout = \"3s\"\n{LOCATION}");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.header_timeout, secs(3));
}

#[test]
fn load_names_the_file_in_file_level_errors() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("missing.toml");
    let errors = Config::load(&missing)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    assert_eq!(
        errors.0,
        [ConfigError::new(
            "config",
            format!(
                "cannot read {}: No such file or directory (os error 2)",
                missing.display()
            ),
        )]
    );

    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[server\n").unwrap_or_else(|e| panic!("{e}"));
    let errors = Config::load(&broken)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    assert_eq!(errors.0.len(), 1);
    assert_eq!(
        errors.0[0].to_string(),
        format!(
            "{}:1:8: config: invalid TOML: unclosed table, expected `]`",
            broken.display()
        )
    );
}

/// Errors about a file's values carry the file, line and column of the value (of the key,
/// for an unknown key; of the enclosing table, for a missing key); values from the
/// environment have none.
#[test]
fn load_places_each_error_in_the_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("ferry.toml");
    let text = "[server]\nheader_timeout = \"soon\"\nlistn = 1\n\n\
                [[location]]\nprefix = \"/\"\nroot = \"public\"\n\n\
                [[location]]\nprefix = \"/x/\"\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let errors = Config::load(&path)
        .err()
        .unwrap_or_else(|| panic!("loaded"));
    let p = path.display();
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!("{p}:3:1: server.listn: unknown key"),
            format!(
                "{p}:2:18: server.header_timeout: invalid duration \"soon\": expected a number \
                 at \"soon\""
            ),
            format!("{p}:9:1: location[1].root: missing required key"),
        ]
    );
    let position = errors.0[0]
        .position
        .clone()
        .unwrap_or_else(|| panic!("placed"));
    assert_eq!((position.line, position.column), (3, 1));
}

#[test]
fn errors_display_as_key_and_message() {
    let error = ConfigError::new("location[1].root", "missing required key");
    assert_eq!(error.to_string(), "location[1].root: missing required key");
    let errors = ConfigErrors(vec![
        error.clone(),
        ConfigError::new("server.listn", "unknown key"),
    ]);
    assert_eq!(
        errors.to_string(),
        "location[1].root: missing required key\nserver.listn: unknown key"
    );
    let source: &dyn std::error::Error = &errors;
    assert!(source.source().is_none());
}
