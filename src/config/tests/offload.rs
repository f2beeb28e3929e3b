//! `[offload]` and internal locations: defaults, every key and its errors, the checks between
//! the offload keys, the accel mapping against the locations, and environment overrides.

use super::{LOCATION, load_err, load_ok};
use crate::config::{Offload, SendfileType};

/// An upstream and an internal location for the mapping to reach.
const PROXY: &str = "[upstream]\naddress = \"127.0.0.1:3000\"\n\
                     [[location]]\nprefix = \"/protected/\"\nroot = \"/srv/files\"\n\
                     internal = true\n";

fn offload(section: &str) -> Offload {
    load_ok(&format!("[offload]\n{section}\n{PROXY}"), &[]).offload
}

fn offload_err(section: &str) -> Vec<String> {
    load_err(&format!("[offload]\n{section}\n{PROXY}"), &[])
}

#[test]
fn offload_defaults_apply_when_the_section_or_a_key_is_absent() {
    let defaults = Offload {
        x_accel_redirect: true,
        x_sendfile_roots: Vec::new(),
        advertise: None,
        accel_mapping: None,
    };
    assert_eq!(Offload::default(), defaults);
    assert_eq!(load_ok(PROXY, &[]).offload, defaults);
    assert_eq!(offload(""), defaults);
}

#[test]
fn every_offload_key_is_read() {
    let section = r#"
        x_accel_redirect = true
        x_sendfile_roots = ["/srv/files", "/var/lib/app/exports/"]
        advertise = "X-Sendfile"
        accel_mapping = "/app/files/=/protected/"
    "#;
    assert_eq!(
        offload(section),
        Offload {
            x_accel_redirect: true,
            x_sendfile_roots: vec!["/srv/files".into(), "/var/lib/app/exports/".into()],
            advertise: Some(SendfileType::XSendfile),
            accel_mapping: Some(("/app/files/".into(), "/protected/".into())),
        }
    );
    let off = offload("x_accel_redirect = false\nx_sendfile_roots = [\"/srv\"]\n");
    assert!(!off.x_accel_redirect);
}

#[test]
fn advertise_ignores_case_and_names_the_header_value() {
    let roots = "x_sendfile_roots = [\"/srv/files\"]\n";
    for (text, expected) in [
        ("X-Accel-Redirect", SendfileType::XAccelRedirect),
        ("x-accel-redirect", SendfileType::XAccelRedirect),
        ("X-SENDFILE", SendfileType::XSendfile),
        ("x-sendfile", SendfileType::XSendfile),
    ] {
        let got = offload(&format!("{roots}advertise = \"{text}\"")).advertise;
        assert_eq!(got, Some(expected), "{text}");
    }
    assert_eq!(SendfileType::XAccelRedirect.as_str(), "X-Accel-Redirect");
    assert_eq!(SendfileType::XSendfile.as_str(), "X-Sendfile");
    assert_eq!(
        offload_err("advertise = \"X-Lighttpd-Send-File\""),
        [
            "offload.advertise: unknown value \"X-Lighttpd-Send-File\"; expected one of \
             \"X-Accel-Redirect\", \"X-Sendfile\" (any case)"
        ]
    );
}

#[test]
fn offload_values_are_type_checked() {
    let section = r#"
        x_accel_redirect = "yes"
        x_sendfile_roots = "/srv/files"
        advertise = true
        accel_mapping = ["/srv/files/", "/protected/"]
        x_send_file_roots = []
    "#;
    assert_eq!(
        offload_err(section),
        [
            "offload.x_send_file_roots: unknown key",
            "offload.x_accel_redirect: expected true or false, found string \"yes\"",
            "offload.x_sendfile_roots: expected an array of absolute directory paths, e.g. \
             [\"/srv/files\"], found string \"/srv/files\"",
            "offload.advertise: expected one of \"X-Accel-Redirect\", \"X-Sendfile\", found \
             boolean true",
            "offload.accel_mapping: expected a \"FS_PREFIX=URI_PREFIX\" string, e.g. \
             \"/srv/files/=/protected/\", found an array",
        ]
    );
    assert_eq!(
        load_err(&format!("offload = 1\n{LOCATION}"), &[]),
        ["offload: expected a table, found integer 1"]
    );
}

#[test]
fn sendfile_roots_are_absolute_and_distinct() {
    let section =
        r#"x_sendfile_roots = ["/srv/files", "srv/media", "", "/srv/../etc", "/srv/files/", 7]"#;
    assert_eq!(
        offload_err(section),
        [
            "offload.x_sendfile_roots[1]: invalid root \"srv/media\": must be an absolute path",
            "offload.x_sendfile_roots[2]: must not be empty",
            "offload.x_sendfile_roots[3]: invalid root \"/srv/../etc\": must not contain \"..\"",
            "offload.x_sendfile_roots[4]: duplicate root \"/srv/files/\" \
             (also offload.x_sendfile_roots[0])",
            "offload.x_sendfile_roots[5]: expected an absolute directory path string, \
             found integer 7",
        ]
    );
    // "/" is allowed: the operator's choice, documented as such.
    assert_eq!(
        offload("x_sendfile_roots = [\"/\"]").x_sendfile_roots,
        [std::path::PathBuf::from("/")]
    );
}

#[test]
fn advertised_headers_must_be_honoured() {
    assert_eq!(
        offload_err("advertise = \"X-Sendfile\""),
        [
            "offload.advertise: \"X-Sendfile\" has the app answer with X-Sendfile headers, but \
             offload.x_sendfile_roots is empty, which turns X-Sendfile off; list the \
             directories the app may send files from there"
        ]
    );
    assert_eq!(
        offload_err("advertise = \"X-Sendfile\"\nx_sendfile_roots = []"),
        offload_err("advertise = \"X-Sendfile\"")
    );
    assert_eq!(
        offload_err("advertise = \"x-accel-redirect\"\nx_accel_redirect = false"),
        [
            "offload.advertise: \"X-Accel-Redirect\" has the app answer with X-Accel-Redirect \
             headers, but offload.x_accel_redirect is false, so ferry would not honour them"
        ]
    );
    assert_eq!(
        offload_err("accel_mapping = \"/srv/files/=/protected/\"\nx_accel_redirect = false"),
        [
            "offload.accel_mapping: the mapping is for X-Accel-Redirect, but \
             offload.x_accel_redirect is false"
        ]
    );
    // An invalid list of roots is reported alone.
    assert_eq!(
        offload_err("advertise = \"X-Sendfile\"\nx_sendfile_roots = [\"rel\"]").len(),
        1
    );
}

#[test]
fn accel_mapping_is_parsed_strictly() {
    let cases = [
        (
            "/srv/files/",
            "expected \"FS_PREFIX=URI_PREFIX\", e.g. \"/srv/files/=/protected/\"",
        ),
        (
            "/a/=/protected/,/b/=/protected/",
            "one mapping only: the app splits X-Accel-Mapping at ','",
        ),
        ("=/protected/", "the file-system prefix before '=' is empty"),
        (
            "srv/files/=/protected/",
            "the file-system prefix \"srv/files/\" must be an absolute path",
        ),
        (
            "/srv/../files/=/protected/",
            "the file-system prefix \"/srv/../files/\" must not contain \"..\"",
        ),
        (
            "/srv/files/=protected/",
            "the URI prefix \"protected/\" must start with '/'",
        ),
        (
            "/srv/files/=/protected",
            "end both prefixes with '/' or neither: the app would turn \"/srv/files/a.pdf\" \
             into \"/protecteda.pdf\"",
        ),
        (
            "/srv/files=/protected/",
            "end both prefixes with '/' or neither: the app would turn \"/srv/files/a.pdf\" \
             into \"/protected//a.pdf\"",
        ),
    ];
    for (mapping, why) in cases {
        assert_eq!(
            offload_err(&format!("accel_mapping = \"{mapping}\"")),
            [format!(
                "offload.accel_mapping: invalid mapping \"{mapping}\": {why}"
            )],
            "{mapping}"
        );
    }
    // Spaces around the parts are dropped, as Rack drops them; no trailing slashes is fine.
    assert_eq!(
        offload("accel_mapping = \" /srv/files = /protected \"").accel_mapping,
        Some(("/srv/files".into(), "/protected".into()))
    );
}

#[test]
fn accel_mapping_must_lead_to_an_internal_location() {
    let with = |locations: &str| {
        format!(
            "[upstream]\naddress = \"127.0.0.1:3000\"\n\
             [offload]\naccel_mapping = \"/srv/files/=/protected/\"\n{locations}"
        )
    };
    assert_eq!(
        load_err(&with(""), &[]),
        [
            "offload.accel_mapping: URI prefix \"/protected/\" is served by no location; add a \
             [[location]] with prefix = \"/protected/\" and internal = true"
        ]
    );
    // The longest matching prefix decides, as for requests.
    let public = "[[location]]\nprefix = \"/\"\nroot = \"public\"\n";
    assert_eq!(
        load_err(&with(public), &[]),
        [
            "offload.accel_mapping: URI prefix \"/protected/\" is served by location[0] \
             (prefix \"/\"), which is not internal; add a [[location]] with \
             prefix = \"/protected/\" and internal = true"
        ]
    );
    let internal = "[[location]]\nprefix = \"/protected/\"\nroot = \"/srv/files\"\n\
                    internal = true\n";
    load_ok(&with(&format!("{public}{internal}")), &[]);
    // A mapping deeper than the location's prefix reaches it too.
    let deeper = with(internal).replace("=/protected/", "=/protected/reports/");
    load_ok(&deeper, &[]);
    // Without trailing slashes the URIs still fall under "/protected/".
    let bare = with(internal).replace("/srv/files/=/protected/", "/srv/files=/protected");
    load_ok(&bare, &[]);
    let shadowed =
        format!("{internal}[[location]]\nprefix = \"/protected/public/\"\nroot = \"x\"\n");
    let text = with(&shadowed).replace("=/protected/", "=/protected/public/");
    assert_eq!(
        load_err(&text, &[]),
        [
            "offload.accel_mapping: URI prefix \"/protected/public/\" is served by location[1] \
             (prefix \"/protected/public/\"), which is not internal; add a [[location]] with \
             prefix = \"/protected/public/\" and internal = true"
        ]
    );
    // A location with an error of its own leaves the mapping unchecked (no second guess).
    let broken = "[[location]]\nprefix = \"/protected/\"\nroot = \"/srv\"\ninternal = \"yes\"\n";
    assert_eq!(
        load_err(&with(broken), &[]),
        ["location[0].internal: expected true or false, found string \"yes\""]
    );
}

#[test]
fn internal_locations() {
    let config = load_ok(PROXY, &[]);
    assert!(config.locations[0].internal);
    let text = format!("{LOCATION}internal = false\n");
    assert!(!load_ok(&text, &[]).locations[0].internal);
    let root = "[upstream]\naddress = \"127.0.0.1:3000\"\n\
                [[location]]\nprefix = \"/\"\nroot = \"public\"\ninternal = true\n";
    assert_eq!(
        load_err(root, &[]),
        [
            "location[0].internal: an internal location cannot have prefix \"/\": it would \
             swallow every request no other location matches (clients would get 404 instead \
             of the upstream's answer); give it its own prefix, e.g. \"/protected/\""
        ]
    );
    assert_eq!(
        load_err(&format!("{LOCATION}internal = 1\n"), &[]),
        ["location[0].internal: expected true or false, found integer 1"]
    );
}

#[test]
fn offload_keys_are_overridden_from_the_environment() {
    let config = load_ok(
        PROXY,
        &[
            ("FERRY__OFFLOAD__X_SENDFILE_ROOTS", "/srv/files,/srv/media"),
            ("FERRY__OFFLOAD__X_ACCEL_REDIRECT", "true"),
            ("FERRY__OFFLOAD__ADVERTISE", "x-sendfile"),
            ("FERRY__OFFLOAD__ACCEL_MAPPING", "/app/files/=/protected/"),
        ],
    );
    assert_eq!(
        config.offload,
        Offload {
            x_accel_redirect: true,
            x_sendfile_roots: vec!["/srv/files".into(), "/srv/media".into()],
            advertise: Some(SendfileType::XSendfile),
            accel_mapping: Some(("/app/files/".into(), "/protected/".into())),
        }
    );
    // One root, and an empty value for no roots (X-Sendfile off) over the file's list.
    let one = load_ok(PROXY, &[("FERRY__OFFLOAD__X_SENDFILE_ROOTS", "/srv/files")]);
    assert_eq!(
        one.offload.x_sendfile_roots,
        [std::path::PathBuf::from("/srv/files")]
    );
    let text = format!("[offload]\nx_sendfile_roots = [\"/srv\"]\n{PROXY}");
    let none = load_ok(&text, &[("FERRY__OFFLOAD__X_SENDFILE_ROOTS", "")]);
    assert!(none.offload.x_sendfile_roots.is_empty());
    let off = load_ok(PROXY, &[("FERRY__OFFLOAD__X_ACCEL_REDIRECT", "False")]);
    assert!(!off.offload.x_accel_redirect);
}

#[test]
fn offload_environment_values_are_validated_and_name_their_variable() {
    let errors = load_err(
        PROXY,
        &[
            ("FERRY__OFFLOAD__X_SENDFILE_ROOTS", "/srv/files,relative,"),
            ("FERRY__OFFLOAD__X_ACCEL_REDIRECT", "1"),
            ("FERRY__OFFLOAD__ADVERTISE", "sendfile"),
            ("FERRY__OFFLOAD__ACCEL_MAPPING", "/srv/files/"),
            ("FERRY__OFFLOAD", "x"),
        ],
    );
    assert_eq!(
        errors,
        [
            "offload.x_accel_redirect: expected true or false, found integer 1 \
             (from environment variable FERRY__OFFLOAD__X_ACCEL_REDIRECT)",
            "offload.x_sendfile_roots[1]: invalid root \"relative\": must be an absolute path \
             (from environment variable FERRY__OFFLOAD__X_SENDFILE_ROOTS)",
            "offload.x_sendfile_roots[2]: must not be empty \
             (from environment variable FERRY__OFFLOAD__X_SENDFILE_ROOTS)",
            "offload.advertise: unknown value \"sendfile\"; expected one of \
             \"X-Accel-Redirect\", \"X-Sendfile\" (any case) \
             (from environment variable FERRY__OFFLOAD__ADVERTISE)",
            "offload.accel_mapping: invalid mapping \"/srv/files/\": expected \
             \"FS_PREFIX=URI_PREFIX\", e.g. \"/srv/files/=/protected/\" \
             (from environment variable FERRY__OFFLOAD__ACCEL_MAPPING)",
            "offload: a whole section cannot be set from the environment (FERRY__OFFLOAD); \
             set one key with FERRY__OFFLOAD__KEY",
        ]
    );
}

#[test]
fn the_accel_mapping_from_the_environment_is_checked_against_the_locations() {
    assert_eq!(
        load_err(
            PROXY,
            &[("FERRY__OFFLOAD__ACCEL_MAPPING", "/srv/files/=/private/")]
        ),
        [
            "offload.accel_mapping: URI prefix \"/private/\" is served by no location; add a \
             [[location]] with prefix = \"/private/\" and internal = true \
             (from environment variable FERRY__OFFLOAD__ACCEL_MAPPING)"
        ]
    );
}
