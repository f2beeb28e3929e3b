//! The in-memory index of stored objects: metadata by object id, least-recently-used order,
//! the bytes they take on disk, and which request headers each primary key varies on.
//! Rebuilt from the directory at start-up; the disk is the truth, this is its map.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::Id;
use super::meta::Meta;

/// One stored object.
#[derive(Debug, Clone)]
pub struct Entry {
    pub meta: Arc<Meta>,
    /// Where its body starts in the file.
    pub body_offset: u64,
    /// Bytes the file takes (header, metadata, padding and body).
    pub size: u64,
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
        self.entries.insert(
            id,
            Entry {
                meta,
                body_offset,
                size,
                tick,
            },
        );
        let mut evicted = Vec::new();
        while self.bytes > max_bytes {
            let Some((_, &oldest)) = self.lru.iter().next() else {
                break;
            };
            if oldest == id {
                break;
            }
            self.remove(&oldest);
            evicted.push(oldest);
        }
        evicted
    }

    /// Replaces the metadata of object `id` (after a 304), keeping its place.
    pub fn refresh(&mut self, id: &Id, meta: Arc<Meta>) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) => {
                entry.meta = meta;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: &Id) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        self.lru.remove(&entry.tick);
        self.bytes -= entry.size;
        let primary = format!("{}{}", entry.meta.host, entry.meta.target);
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
                .insert(id(1), "h/1".into(), meta("/1"), 0, 40, 100)
                .is_empty()
        );
        assert!(
            index
                .insert(id(2), "h/2".into(), meta("/2"), 0, 40, 100)
                .is_empty()
        );
        // Using 1 makes 2 the least recently used.
        assert!(index.get(&id(1)).is_some());
        assert_eq!(
            index.insert(id(3), "h/3".into(), meta("/3"), 0, 40, 100),
            [id(2)]
        );
        assert_eq!(index.bytes(), 80);
        assert_eq!(index.len(), 2);
        assert!(index.get(&id(2)).is_none());
        // One object larger than the rest pushes out everything else, never itself.
        let evicted = index.insert(id(4), "h/4".into(), meta("/4"), 0, 150, 100);
        assert_eq!(evicted.len(), 2);
        assert_eq!(index.bytes(), 150);
        assert_eq!(index.vary("h/4"), ["accept"]);
        assert_eq!(index.vary("h/none"), [] as [String; 0]);
        // The Vary names of a key go with its last object: nothing accumulates.
        assert!(!index.vary_known("h/1") && !index.vary_known("h/2"));
        assert_eq!(index.vary.len(), 1);
    }

    #[test]
    fn replace_refresh_remove_and_select() {
        let mut index = Index::default();
        index.insert(id(1), "h/a".into(), meta("/a"), 0, 10, 100);
        index.insert(id(1), "h/a".into(), meta("/a"), 0, 30, 100);
        assert_eq!((index.len(), index.bytes()), (1, 30));
        assert!(index.refresh(&id(1), meta("/b")));
        assert!(!index.refresh(&id(9), meta("/b")));
        assert_eq!(index.select(|m| m.target == "/b"), [id(1)]);
        assert!(index.remove(&id(1)).is_some());
        assert_eq!(index.len(), 0);
        assert_eq!(index.bytes(), 0);
    }
}
