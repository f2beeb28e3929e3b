//! `server.trusted_proxies`, `server.proxy_protocol`, `tls.proxy_protocol` and `server.h2c`:
//! read from the file and the environment, and every bad network reported with its key and
//! index.

use super::*;
use crate::ingress::Cidr;

fn nets(list: &[&str]) -> Vec<Cidr> {
    list.iter()
        .map(|n| Cidr::parse(n).unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect()
}

#[test]
fn trusted_proxies_and_proxy_protocol_are_read() {
    let text = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \" 192.0.2.10 \", \"fd00::/8\", \"::1\"]\n\
         proxy_protocol = true\n{LOCATION}"
    );
    let server = load_ok(&text, &[]).server;
    assert_eq!(
        server.trusted_proxies,
        nets(&["10.0.0.0/8", "192.0.2.10/32", "fd00::/8", "::1/128"])
    );
    assert!(server.proxy_protocol);
    let text = format!("[server]\ntrusted_proxies = []\n{LOCATION}");
    assert_eq!(load_ok(&text, &[]).server.trusted_proxies, []);
}

#[test]
fn trusted_proxies_from_the_environment() {
    let server = load_ok(
        LOCATION,
        &[
            ("FERRY__SERVER__TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8"),
            ("FERRY__SERVER__PROXY_PROTOCOL", "true"),
        ],
    )
    .server;
    assert_eq!(server.trusted_proxies, nets(&["10.0.0.0/8", "fd00::/8"]));
    assert!(server.proxy_protocol);
    let one = load_ok(
        LOCATION,
        &[("FERRY__SERVER__TRUSTED_PROXIES", "172.16.0.0/12")],
    );
    assert_eq!(one.server.trusted_proxies, nets(&["172.16.0.0/12"]));
    let text = format!("[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n{LOCATION}");
    let emptied = load_ok(&text, &[("FERRY__SERVER__TRUSTED_PROXIES", "")]);
    assert_eq!(emptied.server.trusted_proxies, []);
}

#[test]
fn bad_networks_name_their_key_and_index() {
    let text = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"10.1.2.3/8\", \
         \"ingress.internal\", 8, \"10.0.0.0/8\"]\nproxy_protocol = \"yes\"\n\
         [tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\nproxy_protocol = 1\n{LOCATION}"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.trusted_proxies[1]: invalid network \"10.0.0.0/33\": the prefix length must \
             be a number from 0 to 32 for an IPv4 address",
            "server.trusted_proxies[2]: invalid network \"10.1.2.3/8\": it has bits set past the \
             prefix; did you mean \"10.0.0.0/8\"?",
            "server.trusted_proxies[3]: invalid network \"ingress.internal\": expected an IP \
             address or address/prefix, e.g. \"10.0.0.0/8\" or \"fd00::/8\"",
            "server.trusted_proxies[4]: expected a network string, e.g. \"10.0.0.0/8\", found \
             integer 8",
            "server.trusted_proxies[5]: duplicate network 10.0.0.0/8 (also \
             server.trusted_proxies[0])",
            "server.proxy_protocol: expected true or false, found string \"yes\"",
            "tls.proxy_protocol: expected true or false, found integer 1",
        ]
    );
    let text = format!("[server]\ntrusted_proxies = \"10.0.0.0/8\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.trusted_proxies: expected an array of networks, e.g. [\"10.0.0.0/8\", \
          \"fd00::/8\"], found string \"10.0.0.0/8\""
        ]
    );
    assert_eq!(
        load_err(
            LOCATION,
            &[("FERRY__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,fd00::/300")]
        ),
        [
            "server.trusted_proxies[1]: invalid network \"fd00::/300\": the prefix length must be \
          a number from 0 to 128 for an IPv6 address (from environment variable \
          FERRY__SERVER__TRUSTED_PROXIES)"
        ]
    );
}

#[test]
fn h2c_is_on_by_default_and_can_be_turned_off() {
    assert!(load_ok(LOCATION, &[]).server.h2c);
    let text = format!("[server]\nh2c = false\n{LOCATION}");
    assert!(!load_ok(&text, &[]).server.h2c);
    let env = [("FERRY__SERVER__H2C", "false")];
    assert!(!load_ok(LOCATION, &env).server.h2c);
    let text = format!("[server]\nh2c = \"on\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        ["server.h2c: expected true or false, found string \"on\""]
    );
}
