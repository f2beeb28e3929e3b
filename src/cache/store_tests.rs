//! The cache directory on a real file system: objects are servable only once committed
//! whole, what an interrupted fill or damage leaves is removed at start-up, and the index
//! comes back from the directory.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::*;
use crate::metrics::Metrics;

fn config(dir: &std::path::Path) -> config::Cache {
    config::Cache {
        dir: dir.to_path_buf(),
        ..config::Cache::default()
    }
}

fn open(dir: &std::path::Path) -> Arc<Cache> {
    let metrics = Metrics::new();
    Arc::new(
        Cache::open(&config(dir), metrics.cache.clone(), None).unwrap_or_else(|e| panic!("{e}")),
    )
}

fn meta(target: &str) -> Meta {
    Meta {
        host: "h".into(),
        target: target.into(),
        vary: Vec::new(),
        status: 200,
        headers: vec![("Content-Type".into(), b"text/plain".to_vec())],
        response_time: 1,
        initial_age: 0,
        lifetime: 60,
        stale_if_error: 0,
        stale_while_revalidate: 0,
        no_stale: false,
        body_len: 0,
    }
}

/// The names in the directory, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn fill(cache: &Arc<Cache>, target: &str, body: &[u8], announced: Option<u64>) -> FillTarget {
    let target = FillTarget::create(Arc::clone(cache), meta(target), announced, None)
        .unwrap_or_else(|e| panic!("{e}"));
    target
        .file()
        .write_all_at(body, target.body_offset())
        .unwrap_or_else(|e| panic!("{e}"));
    target
}

fn key(target: &str) -> Key {
    Key {
        host: "h".into(),
        target: target.into(),
    }
}

#[test]
fn only_a_committed_object_of_the_announced_length_is_servable() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = open(tmp.path());
    let body = b"hello, cache";
    // Abandoned: nothing left.
    drop(fill(&cache, "/a", body, Some(body.len() as u64)));
    assert_eq!(names(tmp.path()), [] as [String; 0]);
    // Shorter than announced: refused, nothing left.
    let short = fill(&cache, "/a", body, Some(100));
    assert!(short.commit(body.len() as u64).is_err());
    assert_eq!(names(tmp.path()), [] as [String; 0]);
    assert_eq!(cache.usage().0, 0);
    // Whole: in place under its id, indexed, body at its offset.
    let whole = fill(&cache, "/a", body, Some(body.len() as u64));
    let offset = whole.body_offset();
    whole
        .commit(body.len() as u64)
        .unwrap_or_else(|e| panic!("{e}"));
    let id = variant_id(&key("/a"), &[]);
    assert_eq!(names(tmp.path()), [store::hex(&id)]);
    let (objects, bytes) = cache.usage();
    assert_eq!((objects, bytes), (1, offset + body.len() as u64));
    let file = cache
        .store
        .open_object(&id)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut read = vec![0u8; body.len()];
    file.read_exact_at(&mut read, offset)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, body);
}

#[test]
fn start_up_removes_interrupted_fills_and_damage_and_keeps_objects() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = open(tmp.path());
    let good = fill(&cache, "/good", b"0123456789", Some(10));
    good.commit(10).unwrap_or_else(|e| panic!("{e}"));
    let damaged = fill(&cache, "/damaged", b"0123456789", Some(10));
    damaged.commit(10).unwrap_or_else(|e| panic!("{e}"));
    // A crash mid-fill leaves a temporary file; forget() to keep it as a crash would.
    let interrupted = fill(&cache, "/interrupted", b"01234", Some(10));
    std::mem::forget(interrupted);
    let damaged_id = variant_id(&key("/damaged"), &[]);
    let damaged_path = tmp.path().join(store::hex(&damaged_id));
    let len = std::fs::metadata(&damaged_path).map_or(0, |m| m.len());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged_path)
        .and_then(|f| f.set_len(len - 1))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(tmp.path().join("not-an-object"), b"x").unwrap_or_else(|e| panic!("{e}"));
    drop(cache);

    let cache = open(tmp.path());
    let good_id = variant_id(&key("/good"), &[]);
    let mut expected = vec![store::hex(&good_id), "not-an-object".to_string()];
    expected.sort();
    assert_eq!(names(tmp.path()), expected);
    assert_eq!(cache.usage().0, 1);
    let req = crate::http::parse_request(b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n")
        .ok()
        .flatten()
        .map(|(head, _)| head)
        .unwrap_or_else(|| panic!("request"));
    let found = cache.lookup(&key("/good"), &req);
    assert_eq!(found.map(|o| o.meta.body_len), Some(10));
}

#[test]
fn a_304_refresh_rewrites_the_stored_head_in_place() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = open(tmp.path());
    fill(&cache, "/r", b"body", Some(4))
        .commit(4)
        .unwrap_or_else(|e| panic!("{e}"));
    let id = variant_id(&key("/r"), &[]);
    let offset = meta::body_offset(&meta("/r"));
    let mut refreshed = meta("/r");
    refreshed.body_len = 4;
    refreshed.lifetime = 999;
    refreshed.headers.push(("ETag".into(), b"\"v2\"".to_vec()));
    assert!(matches!(
        cache.store.rewrite_head(&id, &refreshed, offset),
        Ok(true)
    ));
    drop(cache);
    let cache = open(tmp.path());
    let req = crate::http::parse_request(b"GET /r HTTP/1.1\r\nHost: h\r\n\r\n")
        .ok()
        .flatten()
        .map(|(head, _)| head)
        .unwrap_or_else(|| panic!("request"));
    let found = cache.lookup(&key("/r"), &req).map(|o| (*o.meta).clone());
    assert_eq!(found, Some(refreshed));
}
