//! `admin.token_file`: read when the configuration loads, trimmed, checked, never shown by
//! `Debug`; from the file or the environment.

use super::*;

fn with_token_file(path: &std::path::Path) -> String {
    format!(
        "[admin]\ntoken_file = {:?}\n{LOCATION}",
        path.to_str().unwrap()
    )
}

#[test]
fn the_token_is_read_trimmed_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  s3cret-token\r\n").unwrap();
    let config = load_ok(&with_token_file(&file), &[]);
    let token = config.admin.token.expect("a token");
    assert_eq!(token.file, file);
    assert!(token.verify(b"s3cret-token"));
    for wrong in [
        &b""[..],
        b"s3cret-toke",
        b"s3cret-tokeN",
        b"s3cret-token ",
        b"x",
    ] {
        assert!(!token.verify(wrong), "{wrong:?}");
    }
    let shown = format!("{token:?}");
    assert!(!shown.contains("s3cret"), "{shown}");

    let by_env = load_ok(
        LOCATION,
        &[("FERRY__ADMIN__TOKEN_FILE", file.to_str().unwrap())],
    );
    assert!(by_env.admin.token.expect("a token").verify(b"s3cret-token"));
    assert_eq!(load_ok(LOCATION, &[]).admin.token, None);
}

#[test]
fn a_token_file_that_cannot_be_used_is_an_error_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let spaced = dir.path().join("spaced");
    std::fs::write(&spaced, "two words\n").unwrap();
    let (m, e, s) = (missing.display(), empty.display(), spaced.display());
    let cases = [
        (
            with_token_file(&missing),
            format!("admin.token_file: cannot read {m}: No such file or directory (os error 2)"),
        ),
        (
            with_token_file(&empty),
            format!("admin.token_file: {e} is empty: write the token into it"),
        ),
        (
            with_token_file(&spaced),
            format!(
                "admin.token_file: {s}: the token must be visible ASCII characters without \
                 spaces or line breaks"
            ),
        ),
        (
            format!("[admin]\ntoken_file = \"\"\n{LOCATION}"),
            "admin.token_file: must not be empty".to_string(),
        ),
        (
            format!("[admin]\ntoken_file = 3\n{LOCATION}"),
            "admin.token_file: expected a file path string, found integer 3".to_string(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(load_err(&text, &[]), [want], "{text}");
    }
}
