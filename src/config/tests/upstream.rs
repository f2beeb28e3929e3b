//! `[upstream]`: its defaults (also as documented, commented out, in `config/ferry.toml`),
//! every key and its errors, the rule that something must be served, and its environment
//! overrides.

use std::path::PathBuf;

use super::{LOCATION, addr, load_err, load_ok, secs};
use crate::config::{
    Balance, DEFAULT_TOML, Location, Offload, SendfileType, Upstream, UpstreamAddress,
};

/// `config/ferry.toml` with its commented-out examples from `# [upstream]` on turned into
/// TOML: each `# [section]`, `# [[section]]` and `# key = value` line loses its `# `.
/// `examples` also takes the keys without a default (`advertise`, `accel_mapping`,
/// `expires`) and the example internal location after the real one; without it, only the
/// `[upstream]` and `[offload]` sections with their documented defaults are uncommented.
pub(super) fn uncommented_default(examples: bool) -> String {
    let mut out = Vec::new();
    let mut active = false;
    let mut past_sections = false;
    for line in DEFAULT_TOML.lines() {
        active |= line == "# [upstream]";
        past_sections |= line == "[[location]]";
        let toml = line.strip_prefix("# ").filter(|rest| {
            let key = rest.split(" = ").next().unwrap_or("");
            let is_key = rest.contains(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            let optional = ["advertise", "accel_mapping", "expires"].contains(&key);
            let wanted = examples || !(past_sections || (is_key && optional));
            let is_header = rest.starts_with('[') && rest.ends_with(']') && !rest.contains(' ');
            active && wanted && (is_header || is_key)
        });
        out.push(toml.unwrap_or(line));
    }
    out.join("\n")
}

#[test]
fn the_documented_upstream_and_offload_defaults_parse_to_the_code_defaults() {
    let text = uncommented_default(false);
    assert!(text.contains("\n[upstream]\n"), "{text}");
    assert!(text.contains("\n[offload]\n"), "{text}");
    let config = load_ok(&text, &[]);
    let documented = Upstream {
        servers: vec![UpstreamAddress::Tcp(addr("127.0.0.1:3000"))],
        balance: Balance::RoundRobin,
        max_fails: 1,
        fail_timeout: secs(10),
        max_conns: None,
        queue: 100,
        queue_timeout: secs(30),
        connect_timeout: secs(5),
        response_timeout: secs(30),
        idle_connections: 32,
        forwarded_headers: true,
        underscores_in_headers: false,
    };
    assert_eq!(config.upstream, Some(documented.clone()));
    assert_eq!(documented, Upstream::new(documented.servers[0].clone()));
    assert_eq!(config.offload, Offload::default());
    // Everything else is as in the embedded default.
    let embedded = load_ok(DEFAULT_TOML, &[]);
    assert_eq!(config.locations, embedded.locations);
    assert_eq!(config.server, embedded.server);
}

#[test]
fn the_documented_examples_parse_together() {
    let config = load_ok(&uncommented_default(true), &[]);
    let api = &config.upstreams["api"];
    assert_eq!(api.servers.len(), 2);
    assert_eq!(api.balance, Balance::LeastConn);
    assert_eq!(config.locations[2].upstream.as_deref(), Some("api"));
    assert_eq!(
        config.offload,
        Offload {
            x_accel_redirect: true,
            x_sendfile_roots: Vec::new(),
            advertise: Some(SendfileType::XAccelRedirect),
            accel_mapping: Some(("/srv/files/".into(), "/protected/".into())),
        }
    );
    assert_eq!(
        config.locations[1],
        Location {
            prefix: "/protected/".into(),
            root: "/srv/files".into(),
            index: Some("index.html".into()),
            expires: None,
            internal: true,
            directio_threshold: None,
            precompressed: Vec::new(),
            upstream: None,
            add_header: Vec::new(),
        }
    );
    assert_eq!(config.locations[0].expires, Some(secs(3_600)));
    assert!(config.upstream.is_some());
}

#[test]
fn every_upstream_key_is_read() {
    let text = r#"
        [upstream]
        address = "[::1]:3000"
        connect_timeout = "250ms"
        response_timeout = "2m"
        idle_connections = 0
        forwarded_headers = false
        underscores_in_headers = true
    "#;
    let config = load_ok(text, &[]);
    assert_eq!(
        config.upstream,
        Some(Upstream {
            connect_timeout: std::time::Duration::from_millis(250),
            response_timeout: secs(120),
            idle_connections: 0,
            forwarded_headers: false,
            underscores_in_headers: true,
            ..Upstream::new(UpstreamAddress::Tcp(addr("[::1]:3000")))
        })
    );
}

#[test]
fn addresses_are_tcp_or_unix_and_display_as_written() {
    let upstream = |address: &str| {
        let text = format!("[upstream]\naddress = \"{address}\"\n");
        load_ok(&text, &[])
            .upstream
            .map(|upstream| upstream.servers[0].clone())
    };
    let tcp = UpstreamAddress::Tcp(addr("127.0.0.1:3000"));
    assert_eq!(upstream("127.0.0.1:3000"), Some(tcp.clone()));
    assert_eq!(upstream(" 127.0.0.1:3000 "), Some(tcp.clone()));
    assert_eq!(tcp.to_string(), "127.0.0.1:3000");
    let unix = UpstreamAddress::Unix(PathBuf::from("/run/app/app.sock"));
    assert_eq!(upstream("unix:/run/app/app.sock"), Some(unix.clone()));
    assert_eq!(unix.to_string(), "unix:/run/app/app.sock");
    let v6 = UpstreamAddress::Tcp(addr("[::1]:8000"));
    assert_eq!(v6.to_string(), "[::1]:8000");
    // The longest path a sockaddr_un holds.
    let longest = format!("/{}", "a".repeat(106));
    assert_eq!(
        upstream(&format!("unix:{longest}")),
        Some(UpstreamAddress::Unix(longest.into()))
    );
}

#[test]
fn address_errors_say_what_is_wrong() {
    let error = |address: &str| load_err(&format!("[upstream]\naddress = \"{address}\"\n"), &[]);
    assert_eq!(
        error("127.0.0.1"),
        [
            "upstream.address: invalid address \"127.0.0.1\": an IP address without a port: add \
          the port the app listens on, e.g. \"127.0.0.1:3000\""
        ]
    );
    assert_eq!(
        error(""),
        [
            "upstream.address: invalid address \"\": expected \"host:port\", \"ip:port\" or \
          \"unix:/absolute/path\", e.g. \"app:3000\", \"127.0.0.1:3000\", \"[::1]:3000\" or \
          \"unix:/run/app/app.sock\""
        ]
    );
    assert_eq!(
        error("http://127.0.0.1:3000/app"),
        [
            "upstream.address: invalid address \"http://127.0.0.1:3000/app\": write the \
             address without \"http://\", e.g. \"127.0.0.1:3000\""
        ]
    );
    assert_eq!(
        error("127.0.0.1:0"),
        ["upstream.address: invalid address \"127.0.0.1:0\": port 0 cannot be connected to"]
    );
    assert_eq!(
        error("unix:run/app.sock"),
        [
            "upstream.address: invalid address \"unix:run/app.sock\": the socket path must be \
             absolute, e.g. \"unix:/run/app/app.sock\""
        ]
    );
    assert_eq!(
        error("unix:"),
        [
            "upstream.address: invalid address \"unix:\": no socket path after \"unix:\", \
             e.g. \"unix:/run/app/app.sock\""
        ]
    );
    let long = format!("unix:/{}", "a".repeat(107));
    assert_eq!(
        error(&long),
        [format!(
            "upstream.address: invalid address \"{long}\": the socket path is 108 bytes, \
             longer than the 107 a unix socket address can hold"
        )]
    );
    assert_eq!(
        load_err("[upstream]\naddress = 3000\n", &[]),
        [
            "upstream.address: expected a \"host:port\", \"ip:port\" or \"unix:/path\" \
             string, e.g. \"127.0.0.1:3000\", found integer 3000"
        ]
    );
}

#[test]
fn host_names_with_a_port_are_accepted_as_written() {
    let upstream = |address: &str| {
        let text = format!("[upstream]\naddress = \"{address}\"\n");
        load_ok(&text, &[])
            .upstream
            .map(|upstream| upstream.servers[0].clone())
    };
    let host = |name: &str, port: u16| {
        Some(UpstreamAddress::Host {
            name: name.into(),
            port,
        })
    };
    // A compose service, a Kubernetes Service (short and qualified), localhost, an FQDN.
    assert_eq!(upstream("app:3000"), host("app", 3000));
    assert_eq!(upstream(" app:3000 "), host("app", 3000));
    assert_eq!(
        upstream("api.shop.svc.cluster.local:8080"),
        host("api.shop.svc.cluster.local", 8080)
    );
    assert_eq!(upstream("localhost:3000"), host("localhost", 3000));
    // A compose service name with an underscore (Docker's resolver answers for it).
    assert_eq!(upstream("my_app:3000"), host("my_app", 3000));
    assert_eq!(
        upstream("App-2.Example.com.:65535"),
        host("App-2.Example.com.", 65535)
    );
    // Labels may begin with a digit (RFC 1123 §2.1); only the last may not be all digits.
    assert_eq!(upstream("3com.example:80"), host("3com.example", 80));
    assert_eq!(
        upstream("10-0-0-1.example:80"),
        host("10-0-0-1.example", 80)
    );
    // The longest label and the longest name.
    let label = "a".repeat(63);
    assert_eq!(upstream(&format!("{label}:1")), host(&label, 1));
    let longest = [
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
        "e".repeat(61),
    ]
    .join(".");
    assert_eq!(longest.len(), 253);
    assert_eq!(upstream(&format!("{longest}:1")), host(&longest, 1));
    // Displayed as written; numeric addresses are still numeric.
    assert_eq!(
        UpstreamAddress::Host {
            name: "app".into(),
            port: 3000
        }
        .to_string(),
        "app:3000"
    );
    assert_eq!(
        upstream("10.0.0.2:8000"),
        Some(UpstreamAddress::Tcp(addr("10.0.0.2:8000")))
    );
    assert_eq!(
        upstream("[fd00::2]:8000"),
        Some(UpstreamAddress::Tcp(addr("[fd00::2]:8000")))
    );
    // From the environment too.
    let config = load_ok("", &[("FERRY__UPSTREAM__ADDRESS", "app:3000")]);
    assert_eq!(
        config.upstream.map(|upstream| upstream.servers[0].clone()),
        host("app", 3000)
    );
}

#[test]
fn host_name_errors_say_what_is_wrong_and_name_the_key() {
    let error = |address: &str| {
        let errors = load_err(&format!("[upstream]\naddress = \"{address}\"\n"), &[]);
        assert_eq!(errors.len(), 1, "{address:?}: {errors:?}");
        let prefix = format!("upstream.address: invalid address {address:?}: ");
        errors[0]
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{address:?}: {:?} lacks {prefix:?}", errors[0]))
            .to_string()
    };
    let long_label = "a".repeat(64);
    let long_name = [
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
        "e".repeat(62),
    ]
    .join(".");
    let cases = [
        (
            "app",
            "a host without a port: add the port the app listens on, e.g. \"app:3000\"".into(),
        ),
        (
            "app:",
            "the port must be a number from 1 to 65535, found \"\"".into(),
        ),
        (
            "app:http",
            "the port must be a number from 1 to 65535, found \"http\"".into(),
        ),
        (
            "app:+80",
            "the port must be a number from 1 to 65535, found \"+80\"".into(),
        ),
        (
            "app:65536",
            "the port must be a number from 1 to 65535, found \"65536\"".into(),
        ),
        ("app:0", "port 0 cannot be connected to".to_string()),
        (":3000", "no host before the port, e.g. \"app:3000\"".into()),
        (
            "app server:3000",
            "' ' cannot be in a host name: letters, digits, '-', '_' and '.' only".into(),
        ),
        (
            "app/v1:3000",
            "'/' cannot be in a host name: letters, digits, '-', '_' and '.' only".into(),
        ),
        (
            "-app:3000",
            "the host name's label \"-app\" begins or ends with '-' (RFC 1123)".into(),
        ),
        (
            "app.-x:3000",
            "the host name's label \"-x\" begins or ends with '-' (RFC 1123)".into(),
        ),
        (
            "app..example:3000",
            "the host name has an empty label (two dots in a row, or a leading dot)".into(),
        ),
        (
            ".app:3000",
            "the host name has an empty label (two dots in a row, or a leading dot)".into(),
        ),
        (
            "300.1.1.1:80",
            "\"300.1.1.1\" is neither a valid IP address nor a host name (a host name does not \
             end in an all-digit label)"
                .into(),
        ),
        (
            "3000:80",
            "\"3000\" is neither a valid IP address nor a host name (a host name does not end \
             in an all-digit label)"
                .into(),
        ),
        (
            "::1",
            "an IPv6 address goes in brackets, followed by the port, e.g. \"[::1]:3000\"".into(),
        ),
        (
            "::1:3000",
            "an IPv6 address goes in brackets, followed by the port, e.g. \"[::1]:3000\"".into(),
        ),
        (
            "[::1]",
            "expected \"[ipv6]:port\" with a valid IPv6 address and port, e.g. \"[::1]:3000\""
                .into(),
        ),
        (
            "[app]:3000",
            "expected \"[ipv6]:port\" with a valid IPv6 address and port, e.g. \"[::1]:3000\""
                .into(),
        ),
        ("[::1]:0", "port 0 cannot be connected to".into()),
        (
            &format!("{long_label}:80"),
            format!(
                "the host name's label \"{long_label}\" is 64 characters, longer than the 63 \
                 DNS allows"
            ),
        ),
        (
            &format!("{long_name}:80"),
            "the host name is 254 characters, longer than the 253 DNS allows".into(),
        ),
    ];
    for (address, why) in cases {
        assert_eq!(error(address), why, "{address:?}");
    }
}

#[test]
fn upstream_values_are_type_and_range_checked() {
    let text = r#"
        upstream = "127.0.0.1:3000"
        [[location]]
        prefix = "/"
        root = "public"
    "#;
    assert_eq!(
        load_err(text, &[]),
        ["upstream: expected a table, found string \"127.0.0.1:3000\""]
    );
    let text = r#"
        [upstream]
        adress = "127.0.0.1:3000"
        address = "127.0.0.1:3000"
        connect_timeout = "0s"
        response_timeout = 30
        idle_connections = -1
        forwarded_headers = "yes"
        underscores_in_headers = "off"
    "#;
    assert_eq!(
        load_err(text, &[]),
        [
            "upstream.adress: unknown key",
            "upstream.connect_timeout: must be greater than 0s",
            "upstream.response_timeout: invalid duration 30: add a unit, e.g. \"30s\"",
            "upstream.idle_connections: must not be negative, got -1",
            "upstream.forwarded_headers: expected true or false, found string \"yes\"",
            "upstream.underscores_in_headers: expected true or false, found string \"off\"",
        ]
    );
    let text = r#"
        [upstream]
        address = "127.0.0.1:3000"
        connect_timeout = "1 fortnight"
        response_timeout = "0ms"
        idle_connections = "lots"
        forwarded_headers = 1
    "#;
    assert_eq!(
        load_err(text, &[]),
        [
            "upstream.connect_timeout: invalid duration \"1 fortnight\": unknown unit \
             \"fortnight\" (expected ms, s, m, h or d)",
            "upstream.response_timeout: must be greater than 0s",
            "upstream.idle_connections: expected a number (0 or more), \
             found string \"lots\"",
            "upstream.forwarded_headers: expected true or false, found integer 1",
        ]
    );
}

#[test]
fn a_section_without_address_is_no_upstream_but_is_still_checked() {
    let text = format!("[upstream]\nconnect_timeout = \"5s\"\n{LOCATION}");
    assert_eq!(load_ok(&text, &[]).upstream, None);
    let text = format!("[upstream]\nconnect_timeout = \"5\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        ["upstream.connect_timeout: invalid duration \"5\": add a unit, e.g. \"10s\""]
    );
    // The address may come from the environment, the rest from the file.
    let config = load_ok(
        &text.replace("\"5\"", "\"5s\""),
        &[("FERRY__UPSTREAM__ADDRESS", "unix:/run/app.sock")],
    );
    let upstream = config.upstream.unwrap_or_else(|| panic!("no upstream"));
    assert_eq!(upstream.servers[0].to_string(), "unix:/run/app.sock");
    assert_eq!(upstream.connect_timeout, secs(5));
}

#[test]
fn the_upstream_must_not_be_ferry_itself() {
    let text = r#"
        [server]
        listen = ["127.0.0.1:8080", "0.0.0.0:8081"]
        [upstream]
        address = "127.0.0.1:8080"
    "#;
    assert_eq!(
        load_err(text, &[]),
        ["upstream.address: 127.0.0.1:8080 is ferry's own listener \
             (server.listen[0] = 127.0.0.1:8080); requests would be proxied back to ferry \
             in a loop"]
    );
    let wildcard = text.replace("\"127.0.0.1:8080\"\n", "\"127.0.0.2:8081\"\n");
    assert_eq!(
        load_err(&wildcard, &[]),
        ["upstream.address: 127.0.0.2:8081 is ferry's own listener \
             (server.listen[1] = 0.0.0.0:8081); requests would be proxied back to ferry \
             in a loop"]
    );
    assert_eq!(
        load_err("[upstream]\naddress = \"127.0.0.1:9090\"\n", &[]),
        ["upstream.address: 127.0.0.1:9090 is ferry's own listener \
             (admin.listen = 127.0.0.1:9090); requests would be proxied back to ferry in a loop"]
    );
    // localhost is loopback (RFC 6761 §6.3), whichever family it resolves to.
    for (localhost, listener) in [
        ("localhost:8080", "server.listen[0] = 127.0.0.1:8080"),
        ("LocalHost.:8081", "server.listen[1] = 0.0.0.0:8081"),
        ("app.localhost:9090", "admin.listen = 127.0.0.1:9090"),
    ] {
        assert_eq!(
            load_err(
                &text.replace("127.0.0.1:8080\"\n", &format!("{localhost}\"\n")),
                &[]
            ),
            [format!(
                "upstream.address: {localhost} is ferry's own listener ({listener}); requests \
                 would be proxied back to ferry in a loop"
            )]
        );
    }
    // Another port, another family, a port-0 listener, or a name that may be anything until
    // it resolves, are not ferry.
    for address in [
        "127.0.0.1:8082",
        "[::1]:8081",
        "10.0.0.1:8081",
        "localhost:8082",
        "app:8080",
    ] {
        load_ok(
            &text.replace("127.0.0.1:8080\"\n", &format!("{address}\"\n")),
            &[],
        );
    }
}

#[test]
fn zero_locations_are_a_pure_reverse_proxy() {
    let config = load_ok("[upstream]\naddress = \"127.0.0.1:3000\"\n", &[]);
    assert!(config.locations.is_empty());
    assert!(config.upstream.is_some());
    let config = load_ok(
        "location = []\n[upstream]\naddress = \"127.0.0.1:3000\"\n",
        &[],
    );
    assert!(config.locations.is_empty());
}

#[test]
fn nothing_to_serve_is_an_error() {
    let nothing = ["config: nothing to serve: add a [[location]] or an [upstream]"];
    assert_eq!(load_err("", &[]), nothing);
    assert_eq!(load_err("[upstream]\nidle_connections = 4\n", &[]), nothing);
    assert_eq!(
        load_err("[offload]\nx_accel_redirect = true\n", &[]),
        nothing
    );
    // An invalid address is reported once, without "nothing to serve" on top.
    assert_eq!(
        load_err("[upstream]\naddress = \"app 1:80\"\n", &[]).len(),
        1
    );
    let only_internal = "[[location]]\nprefix = \"/protected/\"\nroot = \"/srv\"\n\
                         internal = true\n";
    assert_eq!(
        load_err(only_internal, &[]),
        [
            "config: nothing to serve: every [[location]] is internal, reachable only through \
             X-Accel-Redirect from an [upstream]; add an [upstream] or a location without \
             internal = true"
        ]
    );
    let text = format!("{only_internal}[upstream]\naddress = \"127.0.0.1:3000\"\n");
    assert!(load_ok(&text, &[]).locations[0].internal);
}

#[test]
fn upstream_keys_are_overridden_from_the_environment() {
    let text = "[upstream]\naddress = \"127.0.0.1:3000\"\nforwarded_headers = true\n";
    let config = load_ok(
        text,
        &[
            ("FERRY__UPSTREAM__ADDRESS", "unix:/run/app/app.sock"),
            ("FERRY__UPSTREAM__CONNECT_TIMEOUT", "3s"),
            ("FERRY__UPSTREAM__RESPONSE_TIMEOUT", "1m"),
            ("FERRY__UPSTREAM__IDLE_CONNECTIONS", "0"),
            ("FERRY__UPSTREAM__FORWARDED_HEADERS", "FALSE"),
        ],
    );
    assert_eq!(
        config.upstream,
        Some(Upstream {
            connect_timeout: secs(3),
            response_timeout: secs(60),
            idle_connections: 0,
            forwarded_headers: false,
            underscores_in_headers: false,
            ..Upstream::new(UpstreamAddress::Unix("/run/app/app.sock".into()))
        })
    );
    // An address from the environment alone makes an upstream, with no location needed.
    let config = load_ok("", &[("FERRY__UPSTREAM__ADDRESS", "10.0.0.2:8000")]);
    let upstream = config.upstream.unwrap_or_else(|| panic!("no upstream"));
    assert_eq!(
        upstream,
        Upstream::new(UpstreamAddress::Tcp(addr("10.0.0.2:8000")))
    );
}

#[test]
fn upstream_environment_values_are_validated_and_name_their_variable() {
    let errors = load_err(
        LOCATION,
        &[
            ("FERRY__UPSTREAM__ADDRESS", "app:http"),
            ("FERRY__UPSTREAM__CONNECT_TIMEOUT", "1"),
            ("FERRY__UPSTREAM__IDLE_CONNECTIONS", "-2"),
            ("FERRY__UPSTREAM__FORWARDED_HEADERS", "yes"),
            ("FERRY__UPSTREAM__ADRESS", "127.0.0.1:1"),
            ("FERRY__UPSTREAM", "127.0.0.1:1"),
        ],
    );
    assert_eq!(
        errors,
        [
            "upstream.address: invalid address \"app:http\": the port must be a number from 1 \
             to 65535, found \"http\" (from environment variable FERRY__UPSTREAM__ADDRESS)",
            "upstream.connect_timeout: invalid duration 1: add a unit, e.g. \"1s\" \
             (from environment variable FERRY__UPSTREAM__CONNECT_TIMEOUT)",
            "upstream.idle_connections: must not be negative, got -2 \
             (from environment variable FERRY__UPSTREAM__IDLE_CONNECTIONS)",
            "upstream.forwarded_headers: expected true or false, found string \"yes\" \
             (from environment variable FERRY__UPSTREAM__FORWARDED_HEADERS)",
            "upstream: a whole section cannot be set from the environment (FERRY__UPSTREAM); \
             set one key with FERRY__UPSTREAM__KEY",
            "upstream.adress: unknown key (from environment variable FERRY__UPSTREAM__ADRESS)",
        ]
    );
}

#[test]
fn named_upstreams_with_several_servers_and_locations_that_use_them() {
    let text = r#"
        [upstreams.api]
        servers = ["127.0.0.1:4000", "unix:/run/api.sock", "api:4000"]
        balance = "least_conn"
        max_fails = 3
        fail_timeout = "5s"
        max_conns = 4
        queue = 10
        queue_timeout = "2s"

        [upstreams.admin-app]
        address = "127.0.0.1:5000"

        [[location]]
        prefix = "/api/"
        upstream = "api"

        [[location]]
        prefix = "/admin/"
        upstream = "admin-app"
    "#;
    let config = load_ok(text, &[]);
    assert_eq!(config.upstream, None);
    let api = &config.upstreams["api"];
    assert_eq!(
        api.servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["127.0.0.1:4000", "unix:/run/api.sock", "api:4000"]
    );
    assert_eq!(api.balance, Balance::LeastConn);
    assert_eq!((api.max_fails, api.fail_timeout), (3, secs(5)));
    assert_eq!(api.max_conns, std::num::NonZeroUsize::new(4));
    assert_eq!((api.queue, api.queue_timeout), (10, secs(2)));
    assert_eq!(
        config.upstreams["admin-app"],
        Upstream::new(UpstreamAddress::Tcp(addr("127.0.0.1:5000")))
    );
    let names: Vec<_> = config
        .locations
        .iter()
        .map(|l| l.upstream.as_deref())
        .collect();
    assert_eq!(names, [Some("api"), Some("admin-app")]);
}

#[test]
fn named_upstream_errors_name_their_key() {
    let errors = load_err(
        r#"
        [upstream]
        address = "127.0.0.1:3000"
        servers = ["127.0.0.1:3001"]

        [upstreams.api]
        servers = ["127.0.0.1:4000", "nope", "127.0.0.1:4000"]
        balance = "random"
        max_conns = -1

        [upstreams.default]
        address = "127.0.0.1:4002"

        [upstreams."a b"]
        address = "127.0.0.1:4003"

        [upstreams.empty]
        queue = 1

        [[location]]
        prefix = "/x/"
        upstream = "missing"
        root = "/srv"

        [[location]]
        prefix = "/y/"
        upstream = "api"
        "#,
        &[],
    );
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "upstream.servers",
            "upstreams.a b",
            "upstreams.api.servers[1]",
            "upstreams.api.servers[2]",
            "upstreams.api.balance",
            "upstreams.api.max_conns",
            "upstreams.default",
            "upstreams.empty",
            "location[0].root",
            "location[0].upstream",
        ],
        "{errors:#?}"
    );
    assert!(errors[1].contains("invalid name \"a b\""), "{}", errors[1]);
    assert!(
        errors[3].contains("duplicate server \"127.0.0.1:4000\" (also upstreams.api.servers[0])"),
        "{}",
        errors[3]
    );
    assert!(
        errors[9].ends_with("no [upstreams.missing] section (there are no named upstreams)"),
        "{}",
        errors[9]
    );
}

#[test]
fn every_server_of_every_upstream_is_checked_against_ferrys_listeners() {
    let errors = load_err(
        r#"
        [server]
        listen = ["127.0.0.1:8080"]
        [upstreams.api]
        servers = ["127.0.0.1:4000", "127.0.0.1:8080"]
        [[location]]
        prefix = "/"
        upstream = "api"
        "#,
        &[],
    );
    assert_eq!(
        errors,
        [
            "upstreams.api.servers[1]: 127.0.0.1:8080 is ferry's own listener (server.listen[0] = \
          127.0.0.1:8080); requests would be proxied back to ferry in a loop"
        ]
    );
}
