//! The in-memory index of stored objects: metadata by object id, least-recently-used order,
//! the bytes they take on disk, and which request headers each primary key varies on.
//! Rebuilt from the directory at start-up; the disk is the truth, this is its map.
//!
//! Each entry carries the `version` of the file it describes: a new one whenever a file is
//! renamed over the object's name (a fill, or a refresh that moved the body), and a
//! `swapping` mark while such a rename is under way. A hit that opened the file by name checks
//! both afterwards to know that the file it holds is the one whose body offset it has.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::key::Id;
use super::meta::Meta;

/// One stored object.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: Arc<Meta>,
    /// Where its body starts in the file.
    pub body_offset: u64,
    /// Bytes the file takes (header, metadata, padding and body).
    pub size: u64,
    /// Which file under the object's name this entry describes (never 0).
    pub version: u64,
    /// A new file is being renamed over the object's name: which one a fresh open gets is
    /// not known until the swap ends.
    pub swapping: bool,
    tick: u64,
}

/// Objects by id, in LRU order, and their total size.
#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<Id, Entry>,
    /// Use tick → id; the smallest tick is the least recently used.
    lru: BTreeMap<u64, Id>,
    /// Primary key → the request headers its responses vary on (lowercased, sorted), and
    /// how many objects it has (the entry goes with the last of them).
    vary: HashMap<String, (Vec<String>, usize)>,
    tick: u64,
    /// The last file version handed out.
    versions: u64,
    bytes: u64,
}

impl Index {
    /// The headers responses for `primary` vary on (empty when none, or unknown).
    pub fn vary(&self, primary: &str) -> &[String] {
        self.vary
            .get(primary)
            .map_or(&[], |(names, _)| names.as_slice())
    }

    /// Whether anything was ever stored for `primary` (so it may have objects).
    pub fn vary_known(&self, primary: &str) -> bool {
        self.vary.contains_key(primary)
    }

    /// The object `id`, marked as just used.
    pub fn get(&mut self, id: &Id) -> Option<Entry> {
        let tick = self.next_tick();
        let entry = self.entries.get_mut(id)?;
        self.lru.remove(&entry.tick);
        entry.tick = tick;
        self.lru.insert(tick, *id);
        Some(entry.clone())
    }

    /// Adds (or replaces) object `id` as the most recently used, then removes least recently
    /// used objects while the total is over `max_bytes` (never the one just added). Returns
    /// the ids removed, whose files the caller deletes.
    pub fn insert(
        &mut self,
        id: Id,
        primary: String,
        meta: Arc<Meta>,
        body_offset: u64,
        size: u64,
        max_bytes: u64,
    ) -> Vec<Id> {
        self.remove(&id);
        let names: Vec<String> = meta.vary.iter().map(|(name, _)| name.clone()).collect();
        let known = self.vary.entry(primary).or_insert((Vec::new(), 0));
        *known = (names, known.1 + 1);
        let tick = self.next_tick();
        self.lru.insert(tick, id);
        self.bytes += size;
        self.versions += 1;
        self.entries.insert(
            id,
            Entry {
                meta,
                body_offset,
                size,
                version: self.versions,
                swapping: false,
                tick,
            },
        );
        self.evict_over(max_bytes, Some(&id))
    }

    /// Removes least recently used objects other than `keep` while the total is over
    /// `max_bytes`; returns their ids.
    fn evict_over(&mut self, max_bytes: u64, keep: Option<&Id>) -> Vec<Id> {
        let mut evicted = Vec::new();
        while self.bytes > max_bytes {
            let Some((_, &oldest)) = self.lru.iter().next() else {
                break;
            };
            if Some(&oldest) == keep {
                break;
            }
            self.remove(&oldest);
            evicted.push(oldest);
        }
        evicted
    }

    /// Removes least recently used objects while the total is over `max_bytes` (a
    /// `cache.max_size` made smaller by a reload); returns their ids.
    pub fn shrink(&mut self, max_bytes: u64) -> Vec<Id> {
        self.evict_over(max_bytes, None)
    }

    /// The object `id`, without marking it as used.
    pub fn peek(&self, id: &Id) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Whether `version` is the file now under `id`'s name, with no swap under way.
    pub fn is_current(&self, id: &Id, version: u64) -> bool {
        self.entries
            .get(id)
            .is_some_and(|e| e.version == version && !e.swapping)
    }

    /// Whether object `id` is still what `then` (a copy of its entry) says: the same file,
    /// no swap under way, the same metadata.
    pub fn unchanged(&self, id: &Id, then: &Entry) -> bool {
        self.entries.get(id).is_some_and(|now| {
            now.version == then.version && !now.swapping && Arc::ptr_eq(&now.meta, &then.meta)
        })
    }

    /// Replaces the metadata of object `id` (after a 304), keeping its place; only when the
    /// object is still the file `version` (a fill may have replaced it meanwhile).
    pub fn refresh(&mut self, id: &Id, version: u64, meta: Arc<Meta>) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) if entry.version == version => {
                entry.meta = meta;
                true
            }
            _ => false,
        }
    }

    /// Marks (or unmarks) a rename over object `id`'s file as under way; false when there is
    /// no such object.
    pub fn set_swapping(&mut self, id: &Id, on: bool) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) => {
                entry.swapping = on;
                true
            }
            None => false,
        }
    }

    /// Object `id` now has a new file, its body at `body_offset`, `size` bytes: a new version,
    /// the swap mark cleared, the same metadata and LRU place. Then evicts (never `id`) while
    /// the total is over `max_bytes`, returning the ids removed. False (and nothing evicted)
    /// when the object is gone.
    pub fn relocate(
        &mut self,
        id: &Id,
        body_offset: u64,
        size: u64,
        max_bytes: u64,
    ) -> Option<Vec<Id>> {
        let entry = self.entries.get_mut(id)?;
        self.bytes = self.bytes - entry.size + size;
        self.versions += 1;
        entry.body_offset = body_offset;
        entry.size = size;
        entry.version = self.versions;
        entry.swapping = false;
        Some(self.evict_over(max_bytes, Some(id)))
    }

    pub fn remove(&mut self, id: &Id) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.lru.remove(&entry.tick);
        self.bytes -= entry.size;
        let primary = entry.meta.key().primary();
        if let Some((_, count)) = self.vary.get_mut(&primary) {
            *count -= 1;
            if *count == 0 {
                self.vary.remove(&primary);
            }
        }
        Some(entry)
    }

    /// The ids of the objects whose metadata `matches`.
    pub fn select(&self, matches: impl Fn(&Meta) -> bool) -> Vec<Id> {
        self.entries
            .iter()
            .filter(|(_, e)| matches(&e.meta))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Objects stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes they take on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(target: &str) -> Arc<Meta> {
        Arc::new(Meta {
            scheme: crate::http::Scheme::Http,
            host: "h".into(),
            target: target.into(),
            vary: vec![("accept".into(), None)],
            status: 200,
            headers: Vec::new(),
            response_time: 0,
            initial_age: 0,
            lifetime: 60,
            stale_if_error: 0,
            stale_while_revalidate: 0,
            no_stale: false,
            body_len: 0,
        })
    }

    fn id(n: u8) -> Id {
        [n; 32]
    }

    #[test]
    fn least_recently_used_go_first_and_the_total_holds() {
        let mut index = Index::default();
        assert!(
            index
                .insert(id(1), "http://h/1".into(), meta("/1"), 0, 40, 100)
                .is_empty()
        );
        assert!(
            index
                .insert(id(2), "http://h/2".into(), meta("/2"), 0, 40, 100)
                .is_empty()
        );
        // Using 1 makes 2 the least recently used.
        assert!(index.get(&id(1)).is_some());
        assert_eq!(
            index.insert(id(3), "http://h/3".into(), meta("/3"), 0, 40, 100),
            [id(2)]
        );
        assert_eq!(index.bytes(), 80);
        assert_eq!(index.len(), 2);
        assert!(index.get(&id(2)).is_none());
        // One object larger than the rest pushes out everything else, never itself.
        let evicted = index.insert(id(4), "http://h/4".into(), meta("/4"), 0, 150, 100);
        assert_eq!(evicted.len(), 2);
        assert_eq!(index.bytes(), 150);
        assert_eq!(index.vary("http://h/4"), ["accept"]);
        assert_eq!(index.vary("http://h/none"), [] as [String; 0]);
        // The Vary names of a key go with its last object: nothing accumulates.
        assert!(!index.vary_known("http://h/1") && !index.vary_known("http://h/2"));
        assert_eq!(index.vary.len(), 1);
    }

    #[test]
    fn a_relocated_object_gets_a_new_version_and_exact_accounting() {
        let mut index = Index::default();
        index.insert(id(1), "http://h/1".into(), meta("/1"), 0, 40, 100);
        index.insert(id(2), "http://h/2".into(), meta("/2"), 4096, 4100, 10_000);
        let v2 = index.peek(&id(2)).map_or(0, |e| e.version);
        assert!(index.is_current(&id(2), v2));
        // While a new file is renamed into place, no version is current.
        assert!(index.set_swapping(&id(2), true));
        assert!(!index.is_current(&id(2), v2));
        assert!(index.refresh(&id(2), v2, meta("/2")));
        assert_eq!(index.relocate(&id(2), 8192, 8196, 10_000), Some(vec![]));
        let entry = index.peek(&id(2)).cloned();
        assert!(
            entry
                .as_ref()
                .is_some_and(|e| e.version > v2 && !e.swapping)
        );
        assert!(!index.is_current(&id(2), v2));
        assert_eq!(entry.map(|e| (e.body_offset, e.size)), Some((8192, 8196)));
        assert_eq!(index.bytes(), 40 + 8196);
        // Growing past max_bytes evicts the least recently used, never the object itself.
        assert_eq!(
            index.relocate(&id(2), 12288, 12292, 12_300),
            Some(vec![id(1)])
        );
        assert_eq!(index.bytes(), 12292);
        assert_eq!(index.relocate(&id(1), 0, 1, 100), None);
        assert!(!index.set_swapping(&id(1), true));
    }

    #[test]
    fn replace_refresh_remove_and_select() {
        let mut index = Index::default();
        index.insert(id(1), "http://h/a".into(), meta("/a"), 0, 10, 100);
        index.insert(id(1), "http://h/a".into(), meta("/a"), 0, 30, 100);
        assert_eq!((index.len(), index.bytes()), (1, 30));
        let version = index.peek(&id(1)).map_or(0, |e| e.version);
        assert!(index.refresh(&id(1), version, meta("/b")));
        assert!(!index.refresh(&id(1), version + 1, meta("/c")));
        assert!(!index.refresh(&id(9), version, meta("/b")));
        assert_eq!(index.select(|m| m.target == "/b"), [id(1)]);
        assert!(index.remove(&id(1)).is_some());
        assert_eq!(index.len(), 0);
        assert_eq!(index.bytes(), 0);
    }
}
