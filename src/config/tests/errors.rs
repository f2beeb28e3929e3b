//! Every kind of mistake in a file, each reported with its key and an exact message, and
//! several at once.

use super::{LOCATION, load_err, load_ok};
use crate::config::Config;

#[test]
fn unknown_keys_are_reported_with_their_full_key() {
    let text = format!(
        "listen = 1\n[server]\nlistn = [\"127.0.0.1:1\"]\n[admin]\nport = 1\n[io]\nzero_copy = true\n\
         [ssl]\ncert = \"x\"\n{LOCATION}rooot = \"x\"\n"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "listen: unknown key",
            "ssl: unknown key",
            "server.listn: unknown key",
            "admin.port: unknown key",
            "io.zero_copy: unknown key",
            "location[0].rooot: unknown key",
        ]
    );
}

#[test]
fn keys_are_case_sensitive_in_the_file() {
    assert_eq!(
        load_err(&format!("[Server]\n{LOCATION}"), &[]),
        ["Server: unknown key"]
    );
}

#[test]
fn wrong_types_are_reported() {
    let text = r#"
        admin = "127.0.0.1:9090"
        [server]
        listen = "127.0.0.1:8080"
        header_timeout = true
        max_connections = "lots"
        access_log = 1
        [io]
        chunk = 1.5
        [[location]]
        prefix = 5
        root = ["a"]
        index = false
        expires = 3600
    "#;
    assert_eq!(
        load_err(text, &[]),
        [
            "server.listen: expected an array of \"ip:port\" strings, e.g. [\"127.0.0.1:8080\"], \
             found string \"127.0.0.1:8080\"",
            "server.header_timeout: expected a duration string, e.g. \"10s\", found boolean true",
            "server.max_connections: expected a positive integer, found string \"lots\"",
            "server.access_log: expected one of \"text\", \"json\", \"off\", found integer 1",
            "admin: expected a table, found string \"127.0.0.1:9090\"",
            "io.chunk: expected a size string, e.g. \"2MiB\", or a number of bytes, \
             found float 1.5",
            "location[0].prefix: expected a string starting with '/', found integer 5",
            "location[0].root: expected a directory path string, found an array",
            "location[0].index: expected a file name string, found boolean false",
            "location[0].expires: invalid duration 3600: add a unit, e.g. \"3600s\"",
        ]
    );
}

#[test]
fn addresses_are_checked_one_by_one() {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:1\", \"localhost:80\", 8080, \"127.0.0.1:1\", \
         \"127.0.0.1:0\", \"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:99999\"\n{LOCATION}"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.listen[1]: invalid address \"localhost:80\": expected \"ip:port\" with a \
             numeric ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "server.listen[2]: expected an \"ip:port\" string, e.g. \"127.0.0.1:8080\", \
             found integer 8080",
            "server.listen[3]: duplicate address 127.0.0.1:1 (also server.listen[0])",
            "admin.listen: invalid address \"127.0.0.1:99999\": expected \"ip:port\" with a \
             numeric ip, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
        ]
    );
    assert_eq!(
        load_err(&format!("[server]\nlisten = []\n{LOCATION}"), &[]),
        ["server.listen: at least one address is required"]
    );
}

#[test]
fn admin_must_not_share_a_public_address() {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:8080\"]\n[admin]\nlisten = \"127.0.0.1:8080\"\n{LOCATION}"
    );
    assert_eq!(
        load_err(&text, &[]),
        ["admin.listen: 127.0.0.1:8080 is also server.listen[0]"]
    );
}

/// ferry binds every listener with SO_REUSEPORT, so an overlapping second bind succeeds and
/// takes connections meant for the first: a wildcard address on the same port is a clash too,
/// either way round, and `[::]` (dual-stack) takes IPv4 as well.
#[test]
fn admin_must_not_share_a_port_with_a_wildcard_public_address() {
    let config = |server: &str, admin: &str| {
        format!("[server]\nlisten = [{server}]\n[admin]\nlisten = \"{admin}\"\n{LOCATION}")
    };
    assert_eq!(
        load_err(
            &config(r#""127.0.0.1:8080", "0.0.0.0:9100""#, "127.0.0.1:9100"),
            &[]
        ),
        [
            "admin.listen: 127.0.0.1:9100 overlaps server.listen[1] = 0.0.0.0:9100 \
             (a wildcard address on the same port)"
        ]
    );
    assert_eq!(
        load_err(&config(r#""127.0.0.1:9100""#, "0.0.0.0:9100"), &[]),
        [
            "admin.listen: 0.0.0.0:9100 overlaps server.listen[0] = 127.0.0.1:9100 \
             (a wildcard address on the same port)"
        ]
    );
    assert_eq!(
        load_err(&config(r#""[::]:9100""#, "127.0.0.1:9100"), &[]),
        [
            "admin.listen: 127.0.0.1:9100 overlaps server.listen[0] = [::]:9100 \
             (a wildcard address on the same port)"
        ]
    );
    assert_eq!(
        load_err(&config(r#""[::1]:9100""#, "[::]:9100"), &[]),
        [
            "admin.listen: [::]:9100 overlaps server.listen[0] = [::1]:9100 \
             (a wildcard address on the same port)"
        ]
    );
    assert_eq!(
        load_err(
            &config(r#""[::ffff:127.0.0.1]:9100""#, "127.0.0.1:9100"),
            &[]
        ),
        [
            "admin.listen: 127.0.0.1:9100 overlaps server.listen[0] = [::ffff:127.0.0.1]:9100 \
             (the same IPv4 address, mapped into IPv6)"
        ]
    );
    // The default admin address against a wildcard public one.
    assert_eq!(
        load_err(
            &format!("[server]\nlisten = [\"0.0.0.0:9090\"]\n{LOCATION}"),
            &[]
        ),
        [
            "admin.listen: 127.0.0.1:9090 (the default) overlaps server.listen[0] = 0.0.0.0:9090 \
             (a wildcard address on the same port); set admin.listen to another address"
        ]
    );
    // An IPv4 wildcard does not take IPv6, other addresses on the same port are apart, and
    // port 0 is a fresh port each time.
    load_ok(&config(r#""0.0.0.0:9100""#, "[::1]:9100"), &[]);
    load_ok(&config(r#""127.0.0.2:9100""#, "127.0.0.1:9100"), &[]);
    load_ok(&config(r#""0.0.0.0:0""#, "127.0.0.1:0"), &[]);
}

#[test]
fn public_addresses_must_not_overlap_each_other() {
    let text = format!(
        "[server]\nlisten = [\"0.0.0.0:80\", \"127.0.0.1:80\", \"10.0.0.1:8080\", \"[::]:8080\", \
         \"127.0.0.2:81\", \"[::ffff:127.0.0.2]:81\", \"127.0.0.1:81\", \"[::1]:80\"]\n{LOCATION}"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.listen[1]: 127.0.0.1:80 overlaps server.listen[0] = 0.0.0.0:80 \
             (a wildcard address on the same port)",
            "server.listen[3]: [::]:8080 overlaps server.listen[2] = 10.0.0.1:8080 \
             (a wildcard address on the same port)",
            "server.listen[5]: [::ffff:127.0.0.2]:81 overlaps server.listen[4] = 127.0.0.2:81 \
             (the same IPv4 address, mapped into IPv6)",
        ]
    );
}

#[test]
fn the_default_admin_address_must_not_be_public_either() {
    let text = format!("[server]\nlisten = [\"127.0.0.1:9090\"]\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "admin.listen: 127.0.0.1:9090 (the default) is also server.listen[0]; \
          set admin.listen to another address"
        ]
    );
    // Port 0 binds a fresh port each time, so it may appear on both.
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n{LOCATION}"
    );
    load_ok(&text, &[]);
}

#[test]
fn numbers_durations_and_sizes_are_range_checked() {
    let text = format!(
        "[server]\nheader_timeout = \"0s\"\nsend_timeout = \"0ms\"\nkeepalive_timeout = \"-1s\"\n\
         max_connections = 0\nshutdown_grace = \"10 parsecs\"\n[io]\nchunk = \"1KiB\"\n{LOCATION}"
    );
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.header_timeout: must be greater than 0s",
            "server.keepalive_timeout: invalid duration \"-1s\": must not be negative",
            "server.send_timeout: must be greater than 0s",
            "server.max_connections: must be at least 1, got 0",
            "server.shutdown_grace: invalid duration \"10 parsecs\": unknown unit \"parsecs\" \
             (expected ms, s, m, h or d)",
            "io.chunk: must be between 4KiB and 1GiB, got 1024 bytes",
        ]
    );
    let chunk = |value: &str| load_err(&format!("[io]\nchunk = {value}\n{LOCATION}"), &[]);
    assert_eq!(
        chunk("\"2GiB\""),
        ["io.chunk: must be between 4KiB and 1GiB, got 2147483648 bytes"]
    );
    assert_eq!(
        chunk("4095"),
        ["io.chunk: must be between 4KiB and 1GiB, got 4095 bytes"]
    );
    assert_eq!(
        chunk("-1"),
        ["io.chunk: invalid size -1: must not be negative"]
    );
    assert_eq!(
        chunk("\"2 parsecs\""),
        [
            "io.chunk: invalid size \"2 parsecs\": unknown unit \"parsecs\" \
          (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
        ]
    );
    assert_eq!(
        load_err(&format!("[server]\nmax_connections = -3\n{LOCATION}"), &[]),
        ["server.max_connections: must be at least 1, got -3"]
    );
    // Both ends of the chunk range are accepted.
    let config = load_ok(&format!("[io]\nchunk = \"4KiB\"\n{LOCATION}"), &[]);
    assert_eq!(config.io.chunk.get(), 4096);
    let config = load_ok(&format!("[io]\nchunk = \"1GiB\"\n{LOCATION}"), &[]);
    assert_eq!(config.io.chunk.get(), 1 << 30);
}

#[test]
fn unknown_enum_values_list_the_allowed_ones() {
    let text =
        format!("[server]\naccess_log = \"xml\"\n[io]\nsend_path = \"Sendfile\"\n{LOCATION}");
    assert_eq!(
        load_err(&text, &[]),
        [
            "server.access_log: unknown value \"xml\"; expected one of \"text\", \"json\", \"off\"",
            "io.send_path: unknown value \"Sendfile\"; expected one of \"auto\", \"sendfile\", \
             \"splice\", \"buffered\"",
        ]
    );
}

#[test]
fn locations_are_validated_each_with_its_index() {
    let text = r#"
        [[location]]
        prefix = "static"
        root = ""
        [[location]]
        prefix = "/"
        [[location]]
        root = "x"
        index = "a/b"
        [[location]]
        prefix = "/"
        root = "y"
        index = ".."
        [[location]]
        prefix = "/img/"
        root = "z"
        index = ""
        [[location]]
        prefix = "/js/"
        root = "z"
        index = "."
        expires = "1y"
    "#;
    assert_eq!(
        load_err(text, &[]),
        [
            "location[0].prefix: invalid prefix \"static\": must start with '/'",
            "location[0].root: must not be empty",
            "location[1].root: missing required key",
            "location[2].prefix: missing required key",
            "location[2].index: invalid index \"a/b\": must be a single file name \
             (no '/', not \".\" or \"..\")",
            "location[3].index: invalid index \"..\": must be a single file name \
             (no '/', not \".\" or \"..\")",
            "location[3].prefix: duplicate prefix \"/\" (also location[1].prefix)",
            "location[4].index: invalid index \"\": must not be empty",
            "location[5].index: invalid index \".\": must be a single file name \
             (no '/', not \".\" or \"..\")",
            "location[5].expires: invalid duration \"1y\": unknown unit \"y\" \
             (expected ms, s, m, h or d)",
        ]
    );
}

#[test]
fn something_to_serve_and_locations_in_the_right_shape() {
    // Zero locations are fine with an upstream: see upstream.rs.
    let required = ["config: nothing to serve: add a [[location]] or an [upstream]"];
    assert_eq!(load_err("", &[]), required);
    assert_eq!(load_err("location = []", &[]), required);
    assert_eq!(
        load_err("[location]\nprefix = \"/\"\nroot = \"x\"\n", &[]),
        [
            "location: expected [[location]] sections (an array of tables), \
          found a single [location] table"
        ]
    );
    assert_eq!(
        load_err("location = \"/srv\"", &[]),
        ["location: expected [[location]] sections, found string \"/srv\""]
    );
    assert_eq!(
        load_err("location = [\"/srv\"]", &[]),
        ["location[0]: expected a table, found string \"/srv\""]
    );
}

#[test]
fn several_errors_are_reported_together_in_file_order() {
    let text = r#"
        [server]
        listn = ["127.0.0.1:1"]
        header_timeout = "10 parsecs"
        max_connections = "lots"
        [io]
        send_path = "zerocopy"
        chunk = "2m"
        [[location]]
        prefix = "/"
        [[location]]
        prefix = "/"
        root = "x"
    "#;
    let errors = Config::from_toml(text, &[])
        .err()
        .unwrap_or_else(|| panic!("no errors"));
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.listn",
            "server.header_timeout",
            "server.max_connections",
            "io.send_path",
            "io.chunk",
            "location[0].root",
            "location[1].prefix",
        ]
    );
    assert_eq!(
        errors.to_string(),
        "server.listn: unknown key\n\
         server.header_timeout: invalid duration \"10 parsecs\": unknown unit \"parsecs\" \
         (expected ms, s, m, h or d)\n\
         server.max_connections: expected a positive integer, found string \"lots\"\n\
         io.send_path: unknown value \"zerocopy\"; expected one of \"auto\", \"sendfile\", \
         \"splice\", \"buffered\"\n\
         io.chunk: invalid size \"2m\": ambiguous unit \"m\": write \"MiB\" (1024-based, what \
         nginx means by \"m\") or \"MB\" (1000-based)\n\
         location[0].root: missing required key\n\
         location[1].prefix: duplicate prefix \"/\" (also location[0].prefix)"
    );
}

#[test]
fn a_syntax_error_is_one_error_with_its_position() {
    let errors = load_err(
        "[server]\nlisten = [\"127.0.0.1:1\"\nheader_timeout = \"5s\"\n",
        &[],
    );
    assert_eq!(
        errors,
        [
            "config: invalid TOML at line 3, column 1: missing comma between array elements, \
          expected `,`"
        ]
    );
    assert_eq!(
        load_err("a = 1\na = 2\n", &[("FERRY__SERVER__LISTN", "x")]),
        ["config: invalid TOML at line 2, column 1: duplicate key"]
    );
    assert_eq!(
        load_err("[server]\nmax_connections = 99999999999999999999\n", &[]),
        ["config: invalid TOML: number too large to fit in target type"]
    );
}
