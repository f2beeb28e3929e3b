//! The cache directory on a real file system: objects are servable only once committed
//! whole, what an interrupted fill or damage leaves is removed at start-up, the index
//! comes back from the directory, and a 304 whose headers outgrow their room moves the body
//! into a new file that hits, the byte count and a restart all agree on.

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
    open_with(config(dir))
}

fn open_with(config: config::Cache) -> Arc<Cache> {
    let metrics = Metrics::new();
    Arc::new(Cache::open(&config, metrics.cache.clone()).unwrap_or_else(|e| panic!("{e}")))
}

fn meta(target: &str) -> Meta {
    Meta {
        scheme: crate::http::Scheme::Http,
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
        scheme: crate::http::Scheme::Http,
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

/// `len` bytes that differ from offset to offset.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn request(target: &str) -> RequestHead {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
    crate::http::parse_request(raw.as_bytes())
        .ok()
        .flatten()
        .map(|(head, _)| head)
        .unwrap_or_else(|| panic!("request"))
}

fn read_at(file: &std::fs::File, offset: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    file.read_exact_at(&mut out, offset)
        .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// `meta(target)` as stored with a `len`-byte body, plus a header of `extra` bytes.
fn grown(target: &str, len: usize, extra: usize) -> Meta {
    let mut meta = meta(target);
    meta.body_len = len as u64;
    meta.lifetime = 600;
    meta.headers.push(("X-Refreshed".into(), vec![b'r'; extra]));
    meta
}

/// The 304's metadata in the index, as `Cache::refresh` leaves it, then written to disk.
fn refresh_and_persist(cache: &Arc<Cache>, object: &Object, meta: &Meta) -> Persisted {
    assert!(
        cache
            .locked()
            .index
            .refresh(&object.id, object.version, Arc::new(meta.clone()))
    );
    cache.persist(&object.id).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_304_that_fits_is_persisted_in_place() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = open(tmp.path());
    fill(&cache, "/p", b"body", Some(4))
        .commit(4)
        .unwrap_or_else(|e| panic!("{e}"));
    let object = cache.lookup(&key("/p"), &request("/p"));
    let object = object.unwrap_or_else(|| panic!("stored"));
    let refreshed = grown("/p", 4, 100);
    assert_eq!(
        refresh_and_persist(&cache, &object, &refreshed),
        Persisted::InPlace
    );
    // The same file, the same layout: the version a hit checks does not change.
    let again = cache.lookup(&key("/p"), &request("/p"));
    assert_eq!(
        again.map(|o| (o.version, o.body_offset)),
        Some((object.version, object.body_offset))
    );
    drop(cache);
    let cache = open(tmp.path());
    let found = cache.lookup(&key("/p"), &request("/p"));
    assert_eq!(found.map(|o| (*o.meta).clone()), Some(refreshed));
}

#[test]
fn a_304_that_outgrows_the_head_moves_the_body_into_a_new_file() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = open(tmp.path());
    let body = pattern(100_003, 7);
    let len = body.len() as u64;
    fill(&cache, "/m", &body, Some(len))
        .commit(len)
        .unwrap_or_else(|e| panic!("{e}"));
    let id = variant_id(&key("/m"), &[]);
    let old = cache.lookup(&key("/m"), &request("/m"));
    let old = old.unwrap_or_else(|| panic!("stored"));
    // A hit in flight: its fd was opened (and checked) before the refresh.
    let in_flight = cache
        .store
        .open_object(&id)
        .unwrap_or_else(|e| panic!("{e}"));

    let refreshed = grown("/m", body.len(), 6000);
    let done = refresh_and_persist(&cache, &old, &refreshed);
    assert!(matches!(done, Persisted::Moved(_)), "{done:?}");
    let new = cache.lookup(&key("/m"), &request("/m"));
    let new = new.unwrap_or_else(|| panic!("still stored"));
    assert!(new.body_offset > old.body_offset);
    assert!(new.body_offset.is_multiple_of(4096));
    assert_ne!(new.version, old.version);
    // One file under the object's name, its length what the index and the gauge count.
    assert_eq!(names(tmp.path()), [store::hex(&id)]);
    let on_disk = std::fs::metadata(tmp.path().join(store::hex(&id))).map_or(0, |m| m.len());
    assert_eq!(on_disk, new.body_offset + len);
    assert_eq!(cache.usage(), (1, on_disk));
    assert_eq!(cache.metrics.bytes.get(), on_disk as i64);
    // The hit in flight still reads its body where it was.
    assert_eq!(read_at(&in_flight, old.body_offset, body.len()), body);
    let opened = cache
        .store
        .open_object(&id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_at(&opened, new.body_offset, body.len()), body);

    // A hit that looked the object up before the swap and opens the file after it gets
    // the new file's own layout, not the old offset.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (file, seen) = runtime
        .block_on(cache.open_body(&old))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seen.body_offset, new.body_offset);
    assert_eq!(*seen.meta, refreshed);
    assert_eq!(read_at(&file, seen.body_offset, body.len()), body);
    // A current object is served as looked up.
    let (_, seen) = runtime
        .block_on(cache.open_body(&new))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (seen.version, seen.body_offset),
        (new.version, new.body_offset)
    );
    // A late 304 for the object as it was is not applied over the new file.
    let late = Arc::new(meta("/m"));
    assert!(!cache.locked().index.refresh(&id, old.version, late));

    drop(cache);
    let cache = open(tmp.path());
    let found = cache.lookup(&key("/m"), &request("/m"));
    let found = found.unwrap_or_else(|| panic!("kept across the restart"));
    assert_eq!(*found.meta, refreshed);
    assert_eq!(found.body_offset, new.body_offset);
    assert_eq!(cache.usage(), (1, on_disk));
    let file = cache
        .store
        .open_object(&id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_at(&file, found.body_offset, body.len()), body);
}

#[test]
fn a_moved_object_that_goes_over_max_size_evicts_the_least_recently_used() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let body = pattern(5000, 3);
    let len = body.len() as u64;
    // Room for exactly two objects with a one-page head.
    let one = meta::body_offset(&meta("/a")) + len;
    let cache = open_with(config::Cache {
        max_size: 2 * one,
        max_object_size: len,
        ..config(tmp.path())
    });
    for target in ["/a", "/b"] {
        fill(&cache, target, &body, Some(len))
            .commit(len)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(cache.usage(), (2, 2 * one));
    let b = cache.lookup(&key("/b"), &request("/b"));
    let b = b.unwrap_or_else(|| panic!("stored"));
    let done = refresh_and_persist(&cache, &b, &grown("/b", body.len(), 6000));
    assert!(matches!(done, Persisted::Moved(_)), "{done:?}");
    let b_id = variant_id(&key("/b"), &[]);
    let size = std::fs::metadata(tmp.path().join(store::hex(&b_id))).map_or(0, |m| m.len());
    assert!(size > one);
    assert_eq!(cache.usage(), (1, size));
    assert_eq!(cache.metrics.bytes.get(), size as i64);
    assert_eq!(cache.metrics.objects.get(), 1);
    assert_eq!(cache.metrics.evictions.get(), 1);
    assert_eq!(names(tmp.path()), [store::hex(&b_id)]);
    assert!(cache.lookup(&key("/a"), &request("/a")).is_none());
}

#[test]
fn a_persist_for_a_purged_object_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cache = open(tmp.path());
    fill(&cache, "/g", b"gone", Some(4))
        .commit(4)
        .unwrap_or_else(|e| panic!("{e}"));
    let object = cache.lookup(&key("/g"), &request("/g"));
    let object = object.unwrap_or_else(|| panic!("stored"));
    assert!(cache.locked().index.refresh(
        &object.id,
        object.version,
        Arc::new(grown("/g", 4, 6000))
    ));
    assert_eq!(cache.purge(Some("/g"), None), 1);
    assert!(matches!(cache.persist(&object.id), Ok(Persisted::Skipped)));
    assert_eq!(names(tmp.path()), [] as [String; 0]);
    assert_eq!(cache.usage(), (0, 0));
}

#[test]
fn copy_range_copies_in_the_kernel_and_the_buffered_loop_matches() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let body = pattern(3 * 1024 * 1024 + 17, 9);
    let src_path = tmp.path().join("src");
    std::fs::write(&src_path, &body).unwrap_or_else(|e| panic!("{e}"));
    let src = std::fs::File::open(&src_path).unwrap_or_else(|e| panic!("{e}"));
    let len = body.len() as u64 - 1000;
    for kernel in [true, false] {
        let dst = tempfile::tempfile_in(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        if kernel {
            let path = store::copy_range(&src, 1000, &dst, 8192, len);
            // The same file system on both sides: the kernel takes it (tmpfs, ext4, xfs...).
            assert_eq!(path.ok(), Some(CopyPath::Kernel));
        } else {
            store::copy_buffered(&src, 1000, &dst, 8192, len).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(dst.metadata().map_or(0, |m| m.len()), 8192 + len);
        assert_eq!(read_at(&dst, 8192, len as usize), body[1000..]);
    }
    // A source shorter than asked is an error either way, not a short object.
    let dst = tempfile::tempfile_in(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    let too_long = body.len() as u64 + 1;
    assert!(store::copy_range(&src, 0, &dst, 0, too_long).is_err());
    assert!(store::copy_buffered(&src, 0, &dst, 0, too_long).is_err());
}

#[test]
fn file_names_are_the_lowercase_hex_of_the_id() {
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5;
    }
    let expected: String = id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(store::hex(&id), expected);
    assert_eq!(store::hex(&[0xff; 32]), "f".repeat(64));
    assert_eq!(store::hex(&[0; 32]), "0".repeat(64));
}
