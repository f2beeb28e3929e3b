//! `[spool]` and `server.max_body_size`: every key in every spelling, and each bad value
//! reported with its key, all in one run.

use super::{LOCATION, load_err, load_ok};
use crate::config::Spool;

#[test]
fn every_spool_key_and_the_body_limit_are_read() {
    let text = format!(
        "[server]\nmax_body_size = \"2MiB\"\n[spool]\ndir = \"/var/spool/ferry\"\n\
         max_file_size = \"64MiB\"\nmax_size = \"1GiB\"\nrequest_memory = \"64KiB\"\n\
         request_buffering = false\nresponse_buffering = false\n{LOCATION}"
    );
    let config = load_ok(&text, &[]);
    assert_eq!(config.server.max_body_size, 2 << 20);
    assert_eq!(
        config.spool,
        Spool {
            dir: "/var/spool/ferry".into(),
            max_file_size: 64 << 20,
            max_size: 1 << 30,
            request_memory: 64 << 10,
            request_buffering: false,
            response_buffering: false,
        }
    );
    // "0": no limit on request bodies.
    let text = format!("[server]\nmax_body_size = \"0\"\n{LOCATION}");
    assert_eq!(load_ok(&text, &[]).server.max_body_size, 0);
    // From the environment too.
    let config = load_ok(LOCATION, &[("FERRY__SPOOL__MAX_SIZE", "8GiB")]);
    assert_eq!(config.spool.max_size, 8 << 30);
}

#[test]
fn every_bad_spool_value_is_reported_with_its_key() {
    let text = format!(
        "[server]\nmax_body_size = \"lots\"\n[spool]\ndir = \"\"\nmax_file_size = \"0\"\n\
         max_size = -1\nrequest_memory = \"32MiB\"\nrequest_buffering = \"yes\"\n\
         response_bufering = true\n{LOCATION}"
    );
    let errors = load_err(&text, &[]);
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap_or(""))
        .collect();
    for key in [
        "server.max_body_size",
        "spool.dir",
        "spool.max_file_size",
        "spool.max_size",
        "spool.request_memory",
        "spool.request_buffering",
        "spool.response_bufering",
    ] {
        assert!(keys.contains(&key), "{key} not reported: {errors:#?}");
    }
}

#[test]
fn a_file_limit_above_the_total_is_an_error() {
    let text = format!("[spool]\nmax_file_size = \"2GiB\"\nmax_size = \"1GiB\"\n{LOCATION}");
    let errors = load_err(&text, &[]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("spool.max_file_size: 2147483648 bytes is more than spool.max_size"),
        "{errors:#?}"
    );
}
