//! The `add_header` lists (server-wide and per location) and `server.redirect_https`: off by
//! default (as documented in `config/ferry.toml`), read in order, and every bad item reported
//! with its full key.

use std::num::NonZeroU16;

use super::{LOCATION, load_err, load_ok};
use crate::config::{AddHeader, DEFAULT_TOML, RedirectHttps};

const TLS: &str = "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nlisten = [\"127.0.0.1:8443\"]\n";

fn header(name: &str, value: &str, always: bool) -> AddHeader {
    AddHeader {
        name: name.into(),
        value: value.into(),
        always,
    }
}

#[test]
fn none_and_no_redirect_by_default() {
    for text in [DEFAULT_TOML, LOCATION] {
        let config = load_ok(text, &[]);
        assert_eq!(config.server.add_header, []);
        assert_eq!(config.server.redirect_https, None);
        assert_eq!(config.locations[0].add_header, []);
    }
}

#[test]
fn server_and_location_lists_in_the_order_given() {
    let text = format!(
        "[server]\nadd_header = [\
           {{ name = \"Strict-Transport-Security\", value = \"max-age=63072000\", always = true }},\
           {{ name = \"X-Frame-Options\", value = \"DENY\", always = false }},\
           {{ name = \"Link\", value = \"</a.css>; rel=preload\" }},\
           {{ name = \"Link\", value = \"</b.js>; rel=preload\" }},\
         ]\n\
         {LOCATION}add_header = [{{ name = \"Content-Security-Policy\", value = \"default-src 'self'\" }}]\n"
    );
    let config = load_ok(&text, &[]);
    assert_eq!(
        config.server.add_header,
        [
            header("Strict-Transport-Security", "max-age=63072000", true),
            header("X-Frame-Options", "DENY", false),
            header("Link", "</a.css>; rel=preload", false),
            header("Link", "</b.js>; rel=preload", false),
        ]
    );
    assert_eq!(
        config.locations[0].add_header,
        [header(
            "Content-Security-Policy",
            "default-src 'self'",
            false
        )]
    );
}

#[test]
fn bad_items_are_reported_with_their_key() {
    let text = format!(
        "{LOCATION}add_header = [\
           {{ name = \"X-Ok\", value = \"fine\" }},\
           {{ name = \"Bad Name\", value = \"v\" }},\
           {{ name = \"X-Crlf\", value = \"a\\r\\nSet-Cookie: x=1\" }},\
           {{ name = \"Content-Length\", value = \"5\" }},\
           {{ value = \"no name\", always = \"yes\" }},\
           {{ name = \"X-Empty\", value = \"\", colour = \"red\" }},\
           \"X-Not-A-Table: 1\",\
         ]\n"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "location[0].add_header[1].name: invalid header name \"Bad Name\": only letters, \
             digits and !#$%&'*+-.^_`|~",
            "location[0].add_header[2].value: must not hold control characters (CR, LF, ...)",
            "location[0].add_header[3].name: \"Content-Length\" cannot be added: ferry sets it \
             itself or it describes the connection",
            "location[0].add_header[4].name: missing required key",
            "location[0].add_header[4].always: expected true or false, found string \"yes\"",
            "location[0].add_header[5].colour: unknown key",
            "location[0].add_header[5].value: must not be empty",
            "location[0].add_header[6]: expected a table, found string \"X-Not-A-Table: 1\"",
        ]
    );
    let text = format!("[server]\nadd_header = \"X-A: b\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.add_header: expected an array of { name = \"...\", value = \"...\" } tables, \
          found string \"X-A: b\""
        ]
    );
}

#[test]
fn redirect_to_the_tls_listener_or_a_port() {
    let with =
        |value: &str, tls: &str| format!("[server]\nredirect_https = {value}\n{tls}{LOCATION}");
    let redirect = |text: &str| load_ok(text, &[]).server.redirect_https;
    assert_eq!(redirect(&with("false", "")), None);
    assert_eq!(
        redirect(&with("true", TLS)),
        Some(RedirectHttps::TlsListener)
    );
    let port = |n| Some(RedirectHttps::Port(NonZeroU16::new(n).unwrap()));
    assert_eq!(redirect(&with("443", "")), port(443));
    assert_eq!(redirect(&with("8443", TLS)), port(8443));
    assert_eq!(
        load_err(&with("true", ""), &[]),
        [
            "server.redirect_https: true redirects to the first tls.listen port, but there is no \
          [tls] section; add one, or give the port TLS is served on (e.g. 443 when a load \
          balancer terminates it)"
        ]
    );
    for (value, message) in [
        ("0", "invalid port 0: expected 1 to 65535"),
        ("65536", "invalid port 65536: expected 1 to 65535"),
        (
            "\"443\"",
            "expected true, false or a port number (e.g. 443), found string \"443\"",
        ),
    ] {
        assert_eq!(
            load_err(&with(value, ""), &[]),
            [format!("server.redirect_https: {message}")],
            "{value}"
        );
    }
    // From the environment, as any other key.
    let config = load_ok(
        &format!("{TLS}{LOCATION}"),
        &[("FERRY__SERVER__REDIRECT_HTTPS", "true")],
    );
    assert_eq!(
        config.server.redirect_https,
        Some(RedirectHttps::TlsListener)
    );
}
