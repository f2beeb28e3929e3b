//! `[tls]`: its defaults (also as documented, commented out, in `config/ferry.toml`), every
//! key and its errors, the TLS listeners against the plaintext and admin ones, and the
//! environment overrides.

use std::path::PathBuf;

use super::{LOCATION, addr, load_err, load_ok, secs};
use crate::config::{Alpn, DEFAULT_TOML, KtlsMode, Tls};

/// The two required keys.
const CERT_KEY: &str = "cert = \"cert.pem\"\nkey = \"key.pem\"\n";

/// `[tls]` with `cert`, `key` and `section`, and a location to serve.
fn tls(section: &str) -> Tls {
    let text = format!("[tls]\n{CERT_KEY}{section}\n{LOCATION}");
    load_ok(&text, &[]).tls.unwrap_or_else(|| panic!("no tls"))
}

fn tls_err(section: &str) -> Vec<String> {
    load_err(&format!("[tls]\n{CERT_KEY}{section}\n{LOCATION}"), &[])
}

/// `Tls::new("cert.pem", "key.pem")`: the defaults with [`CERT_KEY`].
fn defaults() -> Tls {
    Tls::new("cert.pem".into(), "key.pem".into())
}

/// `config/ferry.toml` with its commented-out `[tls]` section turned into TOML: from
/// `# [tls]` to the next section, each `# [tls]` and `# key = value` line loses its `# `.
fn uncommented_tls() -> String {
    let mut out = Vec::new();
    let mut active = false;
    for line in DEFAULT_TOML.lines() {
        if line.starts_with('[') {
            active = false;
        }
        active |= line == "# [tls]";
        let toml = line.strip_prefix("# ").filter(|rest| {
            let key = rest.split(" = ").next().unwrap_or("");
            let is_key = rest.contains(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            active && (*rest == "[tls]" || is_key)
        });
        out.push(toml.unwrap_or(line));
    }
    out.join("\n")
}

#[test]
fn the_documented_tls_section_parses_to_the_code_defaults() {
    let text = uncommented_tls();
    assert!(text.contains("\n[tls]\n"), "{text}");
    let config = load_ok(&text, &[]);
    let documented = Tls {
        listen: vec![addr("127.0.0.1:8443")],
        cert: "config/tls/cert.pem".into(),
        key: "config/tls/key.pem".into(),
        reload_interval: secs(5),
        ktls: KtlsMode::Auto,
        alpn: vec![Alpn::H2, Alpn::Http11],
        handshake_timeout: secs(10),
        proxy_protocol: false,
        session_cache: 20_000,
        session_tickets: true,
        session_timeout: secs(300),
    };
    assert_eq!(config.tls, Some(documented.clone()));
    assert_eq!(
        documented,
        Tls::new(documented.cert.clone(), documented.key.clone())
    );
    // Everything else is as in the embedded default, which has no TLS.
    let embedded = load_ok(DEFAULT_TOML, &[]);
    assert_eq!(embedded.tls, None);
    assert_eq!(config.server, embedded.server);
    assert_eq!(config.admin, embedded.admin);
    assert_eq!(config.io, embedded.io);
    assert_eq!(config.locations, embedded.locations);
    assert_eq!(config.upstream, embedded.upstream);
}

#[test]
fn cert_and_key_alone_take_every_default() {
    assert_eq!(tls(""), defaults());
    assert_eq!(load_ok(LOCATION, &[]).tls, None);
}

#[test]
fn every_tls_key_is_read() {
    let section = r#"
        listen = ["0.0.0.0:443", "[::1]:443", "127.0.0.1:0", "127.0.0.1:0"]
        reload_interval = "1m"
        ktls = "require"
        alpn = ["http/1.1"]
        handshake_timeout = "1500ms"
        proxy_protocol = true
        session_cache = 0
        session_tickets = false
        session_timeout = "1h30m"
    "#;
    let text = format!(
        "[tls]\ncert = \"/etc/ferry/tls/fullchain.pem\"\nkey = \"/etc/ferry/tls/key.pem\"\n\
         {section}\n{LOCATION}"
    );
    assert_eq!(
        load_ok(&text, &[]).tls,
        Some(Tls {
            listen: vec![
                addr("0.0.0.0:443"),
                addr("[::1]:443"),
                addr("127.0.0.1:0"),
                addr("127.0.0.1:0"),
            ],
            cert: "/etc/ferry/tls/fullchain.pem".into(),
            key: "/etc/ferry/tls/key.pem".into(),
            reload_interval: secs(60),
            ktls: KtlsMode::Require,
            alpn: vec![Alpn::Http11],
            handshake_timeout: std::time::Duration::from_millis(1_500),
            proxy_protocol: true,
            session_cache: 0,
            session_tickets: false,
            session_timeout: secs(5_400),
        })
    );
    // Relative paths are kept as written; cert and key may be one file.
    let text = format!("[tls]\ncert = \"tls/both.pem\"\nkey = \"tls/both.pem\"\n{LOCATION}");
    let both = load_ok(&text, &[]).tls.unwrap_or_else(|| panic!("no tls"));
    assert_eq!(both.cert, PathBuf::from("tls/both.pem"));
    assert_eq!(both.key, PathBuf::from("tls/both.pem"));
}

#[test]
fn every_tls_enum_spelling_is_accepted() {
    for (text, expected) in [
        ("auto", KtlsMode::Auto),
        ("require", KtlsMode::Require),
        ("off", KtlsMode::Off),
    ] {
        assert_eq!(tls(&format!("ktls = \"{text}\"")).ktls, expected);
        assert_eq!(expected.as_str(), text);
    }
    assert_eq!(Alpn::H2.as_str(), "h2");
    assert_eq!(Alpn::Http11.as_str(), "http/1.1");
    // The order is the server's preference, kept as written.
    assert_eq!(
        tls("alpn = [\"http/1.1\", \"h2\"]").alpn,
        [Alpn::Http11, Alpn::H2]
    );
    assert_eq!(tls("alpn = [\"h2\"]").alpn, [Alpn::H2]);
}

#[test]
fn cert_and_key_are_required_in_the_section() {
    let missing = [
        "tls.cert: missing required key",
        "tls.key: missing required key",
    ];
    assert_eq!(load_err(&format!("[tls]\n{LOCATION}"), &[]), missing);
    let text = format!("[tls]\nktls = \"off\"\nalpn = [\"h2\"]\n{LOCATION}");
    assert_eq!(load_err(&text, &[]), missing);
    let text = format!("[tls]\ncert = \"cert.pem\"\n{LOCATION}");
    assert_eq!(load_err(&text, &[]), ["tls.key: missing required key"]);
    // Every other problem in the section is reported with them.
    let text = format!("[tls]\nkey = \"\"\nhandshake_timeout = \"0s\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "tls.cert: missing required key",
            "tls.key: must not be empty",
            "tls.handshake_timeout: must be greater than 0s",
        ]
    );
}

#[test]
fn tls_values_are_type_and_range_checked() {
    assert_eq!(
        load_err(&format!("tls = \"cert.pem\"\n{LOCATION}"), &[]),
        ["tls: expected a table, found string \"cert.pem\""]
    );
    let text = r#"
        [tls]
        listen = "127.0.0.1:8443"
        certificate = "cert.pem"
        cert = ""
        key = 1
        ktls = true
        alpn = "h2"
        handshake_timeout = 10
        [[location]]
        prefix = "/"
        root = "public"
    "#;
    assert_eq!(
        load_err(text, &[]),
        [
            "tls.certificate: unknown key",
            "tls.listen: expected an array of \"ip:port\" strings, e.g. [\"127.0.0.1:8080\"], \
             found string \"127.0.0.1:8443\"",
            "tls.cert: must not be empty",
            "tls.key: expected a PEM file path string, found integer 1",
            "tls.ktls: expected one of \"auto\", \"require\", \"off\", found boolean true",
            "tls.alpn: expected an array of protocols, e.g. [\"h2\", \"http/1.1\"], \
             found string \"h2\"",
            "tls.handshake_timeout: invalid duration 10: add a unit, e.g. \"10s\"",
        ]
    );
    assert_eq!(
        tls_err("ktls = \"on\"\nhandshake_timeout = \"1 fortnight\""),
        [
            "tls.ktls: unknown value \"on\"; expected one of \"auto\", \"require\", \"off\"",
            "tls.handshake_timeout: invalid duration \"1 fortnight\": unknown unit \
             \"fortnight\" (expected ms, s, m, h or d)",
        ]
    );
}

#[test]
fn reload_interval_is_a_duration_and_zero_turns_polling_off() {
    assert_eq!(tls("reload_interval = \"0s\"").reload_interval, secs(0));
    assert_eq!(
        tls("reload_interval = \"250ms\"").reload_interval,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        tls_err("reload_interval = 0"),
        ["tls.reload_interval: invalid duration 0: add a unit, e.g. \"0s\""]
    );
    assert_eq!(
        tls_err("reload_interval = \"-5s\""),
        ["tls.reload_interval: invalid duration \"-5s\": must not be negative"]
    );
    assert_eq!(
        load_err(
            &format!("[tls]\n{CERT_KEY}{LOCATION}"),
            &[("FERRY__TLS__RELOAD_INTERVAL", "often")]
        ),
        [
            "tls.reload_interval: invalid duration \"often\": expected a number at \"often\" \
             (from environment variable FERRY__TLS__RELOAD_INTERVAL)"
        ]
    );
}

#[test]
fn unknown_alpn_values_list_the_allowed_ones() {
    assert_eq!(
        tls_err(r#"alpn = ["h2", "http/2", "H2", 2, "HTTP/1.1", "h2c", "http/1.1", "h2"]"#),
        [
            "tls.alpn[1]: unknown value \"http/2\"; expected one of \"h2\", \"http/1.1\"",
            "tls.alpn[2]: unknown value \"H2\"; expected one of \"h2\", \"http/1.1\"",
            "tls.alpn[3]: expected one of \"h2\", \"http/1.1\", found integer 2",
            "tls.alpn[4]: unknown value \"HTTP/1.1\"; expected one of \"h2\", \"http/1.1\"",
            "tls.alpn[5]: unknown value \"h2c\"; expected one of \"h2\", \"http/1.1\"",
            "tls.alpn[7]: duplicate protocol \"h2\" (also tls.alpn[0])",
        ]
    );
    assert_eq!(
        tls_err("alpn = []"),
        ["tls.alpn: at least one protocol is required"]
    );
}

#[test]
fn tls_addresses_are_checked_one_by_one() {
    let section = r#"listen = ["127.0.0.1:8443", "localhost:443", 443, "127.0.0.1:8443"]"#;
    assert_eq!(
        tls_err(section),
        [
            "tls.listen[1]: invalid address \"localhost:443\": expected \"ip:port\" with a \
             numeric ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "tls.listen[2]: expected an \"ip:port\" string, e.g. \"127.0.0.1:8080\", \
             found integer 443",
            "tls.listen[3]: duplicate address 127.0.0.1:8443 (also tls.listen[0])",
        ]
    );
    assert_eq!(
        tls_err("listen = []"),
        ["tls.listen: at least one address is required"]
    );
}

#[test]
fn tls_listeners_must_not_be_plaintext_or_admin_ones() {
    let text = |tls_listen: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:8080\", \"10.0.0.1:80\", \"0.0.0.0:8000\"]\n\
             [admin]\nlisten = \"127.0.0.1:9090\"\n\
             [tls]\n{CERT_KEY}listen = {tls_listen}\n{LOCATION}"
        )
    };
    assert_eq!(
        load_err(
            &text(r#"["127.0.0.1:8443", "127.0.0.1:8080", "127.0.0.1:9090"]"#),
            &[]
        ),
        [
            "tls.listen[1]: 127.0.0.1:8080 is also server.listen[0]",
            "tls.listen[2]: 127.0.0.1:9090 is also admin.listen",
        ]
    );
    // A wildcard address on the same port takes the other's connections too, either way
    // round; "[::]" takes IPv4 as well.
    assert_eq!(
        load_err(
            &text(r#"["0.0.0.0:80", "127.0.0.1:8000", "[::]:9090", "[::1]:8000"]"#),
            &[]
        ),
        [
            "tls.listen[0]: 0.0.0.0:80 overlaps server.listen[1] = 10.0.0.1:80 \
             (a wildcard address on the same port)",
            "tls.listen[1]: 127.0.0.1:8000 overlaps server.listen[2] = 0.0.0.0:8000 \
             (a wildcard address on the same port)",
            "tls.listen[2]: [::]:9090 overlaps admin.listen = 127.0.0.1:9090 \
             (a wildcard address on the same port)",
        ]
    );
    // Other addresses on the same port, another port, and port 0 are apart.
    let config = load_ok(
        &text(r#"["127.0.0.2:8080", "10.0.0.2:80", "0.0.0.0:443", "127.0.0.1:0"]"#),
        &[],
    );
    assert_eq!(config.tls.map(|tls| tls.listen.len()), Some(4));
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [tls]\n{CERT_KEY}listen = [\"127.0.0.1:0\"]\n{LOCATION}"
    );
    load_ok(&text, &[]);
}

#[test]
fn tls_listeners_must_not_overlap_each_other() {
    let section = r#"listen = ["0.0.0.0:8443", "127.0.0.1:8443", "[::1]:8444", "[::]:8444"]"#;
    assert_eq!(
        tls_err(section),
        [
            "tls.listen[1]: 127.0.0.1:8443 overlaps tls.listen[0] = 0.0.0.0:8443 \
             (a wildcard address on the same port)",
            "tls.listen[3]: [::]:8444 overlaps tls.listen[2] = [::1]:8444 \
             (a wildcard address on the same port)",
        ]
    );
    // An exact repeat is reported once, as a duplicate.
    assert_eq!(
        tls_err(r#"listen = ["0.0.0.0:8443", "0.0.0.0:8443"]"#),
        ["tls.listen[1]: duplicate address 0.0.0.0:8443 (also tls.listen[0])"]
    );
}

#[test]
fn the_default_tls_address_must_not_be_taken_either() {
    let text = format!("[server]\nlisten = [\"127.0.0.1:8443\"]\n[tls]\n{CERT_KEY}{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "tls.listen: 127.0.0.1:8443 (the default) is also server.listen[0]; \
             set tls.listen to another address"
        ]
    );
    let text = format!("[admin]\nlisten = \"0.0.0.0:8443\"\n[tls]\n{CERT_KEY}{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "tls.listen: 127.0.0.1:8443 (the default) overlaps admin.listen = 0.0.0.0:8443 \
             (a wildcard address on the same port); set tls.listen to another address"
        ]
    );
    // Reported with the section's other problems.
    let text = format!("[server]\nlisten = [\"127.0.0.1:8443\"]\n[tls]\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "tls.cert: missing required key",
            "tls.key: missing required key",
            "tls.listen: 127.0.0.1:8443 (the default) is also server.listen[0]; \
             set tls.listen to another address",
        ]
    );
}

#[test]
fn invalid_listeners_are_not_compared() {
    // server.listen is invalid (and so at its default, 127.0.0.1:8080): no second guess.
    let text = format!(
        "[server]\nlisten = [\"nowhere\"]\n[tls]\n{CERT_KEY}listen = [\"127.0.0.1:8080\"]\n\
         {LOCATION}"
    );
    assert_eq!(load_err(&text, &[]).len(), 1);
    let text = format!(
        "[admin]\nlisten = 9090\n[tls]\n{CERT_KEY}listen = [\"127.0.0.1:9090\"]\n{LOCATION}"
    );
    assert_eq!(load_err(&text, &[]).len(), 1);
}

#[test]
fn the_upstream_must_not_be_a_tls_listener() {
    let text = format!(
        "[tls]\n{CERT_KEY}listen = [\"127.0.0.1:8443\", \"0.0.0.0:443\"]\n\
         [upstream]\naddress = \"127.0.0.1:443\"\n"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "upstream.address: 127.0.0.1:443 is ferry's own TLS listener \
             (tls.listen[1] = 0.0.0.0:443); requests would be proxied back to ferry, in \
             plaintext to a TLS port"
        ]
    );
    load_ok(
        &text.replace("127.0.0.1:443\"\n", "127.0.0.1:3000\"\n"),
        &[],
    );
}

#[test]
fn tls_alone_is_nothing_to_serve() {
    assert_eq!(
        load_err(&format!("[tls]\n{CERT_KEY}"), &[]),
        ["config: nothing to serve: add a [[location]] or an [upstream]"]
    );
}

#[test]
fn tls_keys_are_overridden_from_the_environment() {
    let text = format!("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nktls = \"off\"\n{LOCATION}");
    let config = load_ok(
        &text,
        &[
            ("FERRY__TLS__LISTEN", "0.0.0.0:443, [::1]:443"),
            ("FERRY__TLS__CERT", "/etc/ferry/tls/fullchain.pem"),
            ("FERRY__TLS__KEY", "/etc/ferry/tls/key.pem"),
            ("FERRY__TLS__RELOAD_INTERVAL", "0s"),
            ("FERRY__TLS__KTLS", "require"),
            ("FERRY__TLS__ALPN", "http/1.1, h2"),
            ("FERRY__TLS__HANDSHAKE_TIMEOUT", "5s"),
            ("FERRY__TLS__PROXY_PROTOCOL", "true"),
            ("FERRY__TLS__SESSION_CACHE", "100"),
            ("FERRY__TLS__SESSION_TICKETS", "false"),
            ("FERRY__TLS__SESSION_TIMEOUT", "7d"),
        ],
    );
    assert_eq!(
        config.tls,
        Some(Tls {
            listen: vec![addr("0.0.0.0:443"), addr("[::1]:443")],
            cert: "/etc/ferry/tls/fullchain.pem".into(),
            key: "/etc/ferry/tls/key.pem".into(),
            reload_interval: secs(0),
            ktls: KtlsMode::Require,
            alpn: vec![Alpn::Http11, Alpn::H2],
            handshake_timeout: secs(5),
            proxy_protocol: true,
            session_cache: 100,
            session_tickets: false,
            session_timeout: secs(7 * 24 * 3600),
        })
    );
    // Single values for the lists; untouched keys keep the file's or the default value.
    let config = load_ok(
        &text,
        &[
            ("FERRY__TLS__LISTEN", "127.0.0.1:4443"),
            ("FERRY__TLS__ALPN", "http/1.1"),
        ],
    );
    let tls = config.tls.unwrap_or_else(|| panic!("no tls"));
    assert_eq!(tls.listen, [addr("127.0.0.1:4443")]);
    assert_eq!(tls.alpn, [Alpn::Http11]);
    assert_eq!(tls.ktls, KtlsMode::Off);
    assert_eq!(tls.handshake_timeout, secs(10));
}

#[test]
fn the_environment_alone_can_turn_tls_on() {
    let config = load_ok(
        LOCATION,
        &[
            ("FERRY__TLS__CERT", "cert.pem"),
            ("FERRY__TLS__KEY", "key.pem"),
        ],
    );
    assert_eq!(config.tls, Some(defaults()));
    // Any FERRY__TLS__ variable makes a [tls] section, which needs cert and key.
    assert_eq!(
        load_err(LOCATION, &[("FERRY__TLS__KTLS", "off")]),
        [
            "tls.cert: missing required key",
            "tls.key: missing required key"
        ]
    );
}

#[test]
fn tls_environment_values_are_validated_and_name_their_variable() {
    let errors = load_err(
        &format!("[tls]\n{CERT_KEY}{LOCATION}"),
        &[
            ("FERRY__TLS__LISTEN", "127.0.0.1:8443,localhost:443"),
            ("FERRY__TLS__CERT", ""),
            ("FERRY__TLS__KTLS", "true"),
            ("FERRY__TLS__ALPN", "h2,spdy/3,h2"),
            ("FERRY__TLS__HANDSHAKE_TIMEOUT", "10"),
            ("FERRY__TLS__CRT", "cert.pem"),
            ("FERRY__TLS", "on"),
        ],
    );
    assert_eq!(
        errors,
        [
            "tls.listen[1]: invalid address \"localhost:443\": expected \"ip:port\" with a \
             numeric ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" \
             (from environment variable FERRY__TLS__LISTEN)",
            "tls.cert: must not be empty (from environment variable FERRY__TLS__CERT)",
            "tls.ktls: expected one of \"auto\", \"require\", \"off\", found boolean true \
             (from environment variable FERRY__TLS__KTLS)",
            "tls.alpn[1]: unknown value \"spdy/3\"; expected one of \"h2\", \"http/1.1\" \
             (from environment variable FERRY__TLS__ALPN)",
            "tls.alpn[2]: duplicate protocol \"h2\" (also tls.alpn[0]) \
             (from environment variable FERRY__TLS__ALPN)",
            "tls.handshake_timeout: invalid duration 10: add a unit, e.g. \"10s\" \
             (from environment variable FERRY__TLS__HANDSHAKE_TIMEOUT)",
            "tls: a whole section cannot be set from the environment (FERRY__TLS); \
             set one key with FERRY__TLS__KEY",
            "tls.crt: unknown key (from environment variable FERRY__TLS__CRT)",
        ]
    );
    assert_eq!(
        load_err(
            &format!("[tls]\n{CERT_KEY}{LOCATION}"),
            &[("FERRY__TLS__ALPN", "")]
        ),
        [
            "tls.alpn[0]: unknown value \"\"; expected one of \"h2\", \"http/1.1\" \
             (from environment variable FERRY__TLS__ALPN)"
        ]
    );
}

#[test]
fn a_tls_listener_from_the_environment_can_clash_with_the_file() {
    let text = format!("[server]\nlisten = [\"0.0.0.0:8443\"]\n[tls]\n{CERT_KEY}{LOCATION}");
    assert_eq!(
        load_err(
            &text,
            &[("FERRY__TLS__LISTEN", "127.0.0.1:9000,127.0.0.1:8443")]
        ),
        [
            "tls.listen[1]: 127.0.0.1:8443 overlaps server.listen[0] = 0.0.0.0:8443 \
             (a wildcard address on the same port) \
             (from environment variable FERRY__TLS__LISTEN)"
        ]
    );
}

#[test]
fn session_resumption_keys_are_checked_and_name_their_key() {
    assert_eq!(
        tls_err("session_cache = -1\nsession_tickets = \"on\"\nsession_timeout = \"0s\"\n"),
        [
            "tls.session_cache: must not be negative, got -1",
            "tls.session_tickets: expected true or false, found string \"on\"",
            "tls.session_timeout: must be greater than 0s",
        ]
    );
    assert_eq!(
        tls_err("session_cache = \"10m\"\nsession_timeout = \"1500ms\"\n"),
        [
            "tls.session_cache: expected a number of sessions (0 for no cache), found string \"10m\"",
            "tls.session_timeout: must be whole seconds (a ticket's lifetime is sent in seconds)",
        ]
    );
    assert_eq!(
        tls_err("session_timeout = \"8d\"\n"),
        ["tls.session_timeout: must be at most 7d (TLS 1.3 allows no longer ticket lifetime)"]
    );
    assert_eq!(
        tls_err("session_timeout = 300\n"),
        ["tls.session_timeout: invalid duration 300: add a unit, e.g. \"300s\""]
    );
    // The bounds themselves are accepted.
    let edge = tls("session_cache = 0\nsession_timeout = \"1s\"\n");
    assert_eq!((edge.session_cache, edge.session_timeout), (0, secs(1)));
    assert_eq!(
        tls("session_timeout = \"7d\"\n").session_timeout,
        secs(604_800)
    );
}
