//! The sled-backed [`SessionStore`], and the actor that owns it on its own
//! thread so flushes never block the event loop.
//!
//! Layout: tree `records` maps `start micros (BE) ‖ Call-ID` → record, so
//! records are in start order (newest-first listing is a reverse scan);
//! tree `listing` maps the same key → the small [`ListingEntry`] that
//! lists filter on; tree `by_id` maps Call-ID → that key; tree `by_key`
//! maps every original-call identifier → Call-ID. A record, its listing
//! entry and its `by_id` key change in one sled transaction.
//!
//! Why the listing: a list used to decode every record to filter and count
//! them, and sled keeps what it reads resident. Paging through 12,000
//! sessions took 11.1 s and grew the bench process from 26 to 85 MB; with
//! the listing it takes 0.8 s and ends at 50 MB, reading whole records
//! only for each page's items. `from`/`to` are a key range. The listing
//! entries are counted, in all and per status, when the store opens, and
//! every write keeps the counts; so a list with no filter, or with only a
//! status, takes its total from the counts and walks the listing only as
//! far as its page (the newest 50 of 12,000: 0.9–1.0 ms, against 4.4–5.5
//! ms unfiltered and 8.6–9.4 ms by status when every list walked the whole
//! listing; a time range or a participant still decodes every entry in
//! range, 7–10 ms; `store_memory` example, 2-core VM). The same kept count
//! is the number of sessions, where sled's `len` walked every record on
//! each `/health` and `/stats` (58 ms and 47 MB of resident pages at
//! 12,000).
//!
//! Why records are keyed by start time: sled 0.34 keeps every page it has
//! read back from disk resident, whatever `cache_capacity` says. Keyed by
//! Call-ID (random), each new call's writes landed on a random old page,
//! so the resident set grew with the whole database: 150 MB after 12,000
//! sessions of 15 KB in `scripts/bench-store-memory`, and the engine's RSS
//! with it. Keyed by start time, live calls write only the newest pages.
//! The random-keyed indexes hold only short ids and are written once per
//! call (the store remembers which calls it has indexed).
//!
//! Records are stored as zstd-compressed JSON (a record written before
//! compression, plain JSON, still reads). sled keeps the values it has
//! written resident well past its `cache_capacity` (about two thirds of
//! everything written, up to a plateau, in `scripts/bench-store-memory`),
//! so the bytes saved are memory as much as disk. The engine's records
//! (12–14 KB of JSON) compress to about a quarter at level 1; in the
//! bench, 200 live × 15 KB records over 12,000 sessions hold 25.8 MB
//! instead of 44.5 MB, and 269 MB on disk instead of 817 MB.
//!
//! A store in the first layout (`sessions` keyed by Call-ID, `by_start`)
//! is moved into this one when opened.

use actix::prelude::*;
use earshot::session::{
    paginate, paginate_counted, CallStatus, ListingEntry, Page, SessionQuery, SessionRecord,
    SessionStore, StoreError,
};
use sled::transaction::TransactionError;
use sled::Transactional;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// sled page-cache size.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

pub struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    listing: sled::Tree,
    by_id: sled::Tree,
    by_key: sled::Tree,
    /// Calls this handle has indexed, so a journal write touches only
    /// `records` (and `listing` when what lists filter on changed).
    /// Bounded: cleared when it reaches [`INDEXED_MAX`] (the next write of
    /// a call re-reads `by_id`).
    indexed: HashMap<String, Indexed>,
    /// Listing entries (one per session), in all and per status: counted
    /// once when opened, then kept by every write; shared by every handle.
    listed: Arc<ListingCounts>,
}

/// How many listing entries there are, and how many of each status (an
/// entry that does not decode counts only in `all`). Unfiltered and
/// status-only lists take their total from here instead of walking the
/// listing, so they read only as far as the page they return.
#[derive(Debug, Default)]
struct ListingCounts {
    all: AtomicUsize,
    by_status: [AtomicUsize; 4],
}

impl ListingCounts {
    fn slot(status: CallStatus) -> usize {
        match status {
            CallStatus::Active => 0,
            CallStatus::Completed => 1,
            CallStatus::Failed => 2,
            CallStatus::Interrupted => 3,
        }
    }

    fn status(&self, status: CallStatus) -> usize {
        self.by_status[Self::slot(status)].load(Ordering::Relaxed)
    }

    /// Count every entry of `listing` afresh.
    fn recount(&self, listing: &sled::Tree) -> Result<(), StoreError> {
        let mut all = 0;
        let mut by_status = [0usize; 4];
        for item in listing.iter() {
            let (_, v) = item.map_err(io)?;
            all += 1;
            if let Some(s) = entry_status(&v) {
                by_status[Self::slot(s)] += 1;
            }
        }
        self.all.store(all, Ordering::Relaxed);
        for (n, c) in by_status.iter().zip(&self.by_status) {
            c.store(*n, Ordering::Relaxed);
        }
        Ok(())
    }

    /// An entry replaced or removed (`old`) and one written (`new`).
    fn moved(&self, old: Option<&[u8]>, new: Option<&[u8]>) {
        if let Some(v) = old {
            self.all.fetch_sub(1, Ordering::Relaxed);
            if let Some(s) = entry_status(v) {
                self.by_status[Self::slot(s)].fetch_sub(1, Ordering::Relaxed);
            }
        }
        if let Some(v) = new {
            self.all.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = entry_status(v) {
                self.by_status[Self::slot(s)].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The keys of the listing entries in `entries` that `q` matches, newest
/// first (a corrupt entry is skipped, with a warning).
fn matching_keys<'a>(
    entries: sled::Iter,
    q: &'a SessionQuery,
) -> impl Iterator<Item = sled::IVec> + 'a {
    entries.rev().filter_map(move |item| {
        let (k, v) = item.ok()?;
        match serde_json::from_slice::<ListingEntry>(&v) {
            Ok(e) => q.matches(&e).then_some(k),
            Err(e) => {
                let id = String::from_utf8_lossy(key_call_id(&k)).into_owned();
                tracing::warn!(call_id = %id, %e, "skipping a corrupt listing entry");
                None
            }
        }
    })
}

/// The status of a stored listing entry (`None`: it does not decode).
fn entry_status(v: &[u8]) -> Option<CallStatus> {
    serde_json::from_slice::<ListingEntry>(v)
        .ok()
        .map(|e| e.status)
}

/// What a handle last wrote for a call.
struct Indexed {
    key: sled::IVec,
    lookups: usize,
    /// Hash of its listing entry.
    listing: u64,
}

/// Calls remembered as indexed (far more than the live calls).
const INDEXED_MAX: usize = 16_384;

impl Clone for SledStore {
    /// Another handle on the same database (its own, empty index memory).
    /// Write each call through one handle: a handle skips rewriting a
    /// listing entry it remembers writing, and it does not see another
    /// handle's writes (the engine writes through the store actor's
    /// handle only, after recovery's is done).
    fn clone(&self) -> Self {
        SledStore {
            db: self.db.clone(),
            records: self.records.clone(),
            by_id: self.by_id.clone(),
            by_key: self.by_key.clone(),
            listing: self.listing.clone(),
            indexed: HashMap::new(),
            listed: self.listed.clone(),
        }
    }
}

/// The `records` key of a session: start micros (big-endian) ‖ Call-ID.
fn record_key(rec: &SessionRecord) -> Vec<u8> {
    let mut k = key_micros(rec.start_time).to_be_bytes().to_vec();
    k.extend_from_slice(rec.call_id.as_str().as_bytes());
    k
}

/// The time part of a `records` key (times before 1970 sort as 1970).
fn key_micros(t: chrono::DateTime<chrono::Utc>) -> u64 {
    t.timestamp_micros().max(0) as u64
}

/// The Call-ID in a `records` key.
fn key_call_id(key: &[u8]) -> &[u8] {
    key.get(std::mem::size_of::<u64>()..).unwrap_or_default()
}

/// zstd level of stored records (1: the fastest; records are small and
/// written often while calls are live).
const ZSTD_LEVEL: i32 = 1;
/// Largest record a stored value may decompress to.
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;
/// The first bytes of a zstd frame (a JSON record starts with `{`).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A record as stored: its JSON, zstd-compressed.
fn encode(rec: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(rec).map_err(io)?;
    zstd::bulk::compress(&json, ZSTD_LEVEL).map_err(io)
}

/// A stored value back to a record: compressed, or plain JSON as written
/// before compression. Bad bytes are `Corrupt`, never a panic, and a frame
/// claiming more than [`MAX_RECORD_BYTES`] is refused before allocating.
fn decode(call_id: &[u8], v: &[u8]) -> Result<SessionRecord, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(String::from_utf8_lossy(call_id).into_owned(), e);
    let json;
    let bytes = if v.starts_with(&ZSTD_MAGIC) {
        let size = match zstd::zstd_safe::get_frame_content_size(v) {
            Ok(Some(n)) if n <= MAX_RECORD_BYTES => n as usize,
            Ok(Some(n)) => return Err(corrupt(format!("record of {n} bytes"))),
            _ => return Err(corrupt("compressed record without its size".into())),
        };
        json = zstd::bulk::decompress(v, size).map_err(|e| corrupt(e.to_string()))?;
        &json[..]
    } else {
        v
    };
    serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))
}

/// The stored form of a record's listing entry.
fn listing_bytes(rec: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(&ListingEntry::of(rec)).map_err(io)
}

/// `meta` key set once the listing has been built for every record.
const LISTING_BUILT: &[u8] = b"listing_built";

/// A failed transaction as a store error. Naming `TransactionError` (its
/// abort type defaults to `()`) is what lets the transaction closures,
/// which never abort, type-check.
fn tx(e: TransactionError) -> StoreError {
    io(e)
}

/// sled's background flush interval, ms.
pub const FLUSH_EVERY_MS: u64 = 200;

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl SledStore {
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        // sled's page cache defaults to 1 GiB; sessions are small and read
        // rarely, so a small cache keeps the engine's memory flat.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            // Journal writes are lazy; sled makes them durable this often
            // (a crash loses at most the last tick of results plus this).
            .flush_every_ms(Some(FLUSH_EVERY_MS))
            .open()
            .map_err(io)?;
        let mut store = SledStore {
            records: db.open_tree("records").map_err(io)?,
            listing: db.open_tree("listing").map_err(io)?,
            by_id: db.open_tree("by_id").map_err(io)?,
            by_key: db.open_tree("by_key").map_err(io)?,
            db,
            indexed: HashMap::new(),
            listed: Arc::default(),
        };
        store.migrate()?;
        store.build_listing()?;
        store.listed.recount(&store.listing)?;
        Ok(store)
    }

    /// A store written before the `listing` tree existed gets one entry per
    /// record, once (tree `meta` remembers it is built).
    fn build_listing(&mut self) -> Result<(), StoreError> {
        let meta = self.db.open_tree("meta").map_err(io)?;
        if meta.contains_key(LISTING_BUILT).map_err(io)? {
            return Ok(());
        }
        let mut built = 0usize;
        for item in self.records.iter() {
            let (k, v) = item.map_err(io)?;
            match decode(key_call_id(&k), &v) {
                Ok(rec) => {
                    self.listing.insert(k, listing_bytes(&rec)?).map_err(io)?;
                    built += 1;
                }
                Err(e) => tracing::warn!(%e, "not listing a corrupt session"),
            }
        }
        self.db.flush().map_err(io)?;
        meta.insert(LISTING_BUILT, &b"1"[..]).map_err(io)?;
        self.db.flush().map_err(io)?;
        if built > 0 {
            tracing::info!(built, "session listing built");
        }
        Ok(())
    }

    /// Move a store in the first layout (`sessions` keyed by Call-ID,
    /// `by_start`) into this one, then drop the old trees.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let names = self.db.tree_names();
        if !names.iter().any(|n| n.as_ref() == b"sessions") {
            return Ok(());
        }
        let old = self.db.open_tree("sessions").map_err(io)?;
        let mut moved = 0usize;
        for item in old.iter() {
            let (id, v) = item.map_err(io)?;
            match decode(&id, &v) {
                Ok(rec) => {
                    self.write(&rec)?;
                    moved += 1;
                }
                Err(e) => tracing::warn!(%e, "not moving a corrupt session"),
            }
        }
        self.db.flush().map_err(io)?;
        self.db.drop_tree("sessions").map_err(io)?;
        if names.iter().any(|n| n.as_ref() == b"by_start") {
            self.db.drop_tree("by_start").map_err(io)?;
        }
        self.db.flush().map_err(io)?;
        tracing::info!(moved, "session store moved to start-ordered records");
        Ok(())
    }

    /// Another tree of the same database (e.g. the notifier's dead letters).
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(io)
    }

    /// Sessions stored as `active` were live when the engine stopped: mark
    /// them `interrupted`. Returns their call ids.
    pub fn mark_interrupted(
        &mut self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let mut ids = vec![];
        let live: Vec<sled::IVec> = self
            .listing
            .iter()
            .filter_map(|item| {
                let (k, v) = item.ok()?;
                let e: ListingEntry = serde_json::from_slice(&v).ok()?;
                (e.status == CallStatus::Active).then_some(k)
            })
            .collect();
        for k in live {
            let Some(v) = self.records.get(&k).map_err(io)? else {
                continue;
            };
            let Ok(mut rec) = decode(key_call_id(&k), &v) else {
                continue;
            };
            if rec.status == CallStatus::Active {
                rec.finish(CallStatus::Interrupted, "engine stopped while live", now);
                rec.end_time = Some(rec.last_activity);
                self.write(&rec)?;
                ids.push(rec.call_id.as_str().to_string());
            }
        }
        self.db.flush().map_err(io)?;
        Ok(ids)
    }

    fn write(&mut self, rec: &SessionRecord) -> Result<(), StoreError> {
        let value = sled::IVec::from(encode(rec)?);
        let entry = sled::IVec::from(listing_bytes(rec)?);
        let entry_hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            entry.hash(&mut h);
            h.finish()
        };
        let id = rec.call_id.as_str();
        let key = sled::IVec::from(record_key(rec));
        let lookups = rec.lookup_keys();
        if let Some(known) = self.indexed.get_mut(id) {
            if key == known.key && known.lookups == lookups.len() {
                if known.listing == entry_hash {
                    self.records.insert(key, value).map_err(io)?;
                } else {
                    let replaced = (&self.records, &self.listing)
                        .transaction(|(r, l)| {
                            r.insert(&key, value.clone())?;
                            Ok(l.insert(&key, entry.clone())?)
                        })
                        .map_err(tx)?;
                    self.listed.moved(replaced.as_deref(), Some(&entry));
                    known.listing = entry_hash;
                }
                return Ok(());
            }
        }
        // First write of this call by this handle, a new start time or new
        // original-call identifiers: (re)index it. The record, its listing
        // entry and its Call-ID index change together.
        let old = match self.indexed.get(id) {
            Some(known) => Some(known.key.clone()),
            None => self.by_id.get(id.as_bytes()).map_err(io)?,
        };
        let old = old.filter(|o| *o != key);
        let (moved_from, replaced) = (&self.records, &self.listing, &self.by_id)
            .transaction(|(r, l, b)| {
                let mut moved_from = None;
                if let Some(old) = &old {
                    r.remove(old)?;
                    moved_from = l.remove(old)?;
                }
                r.insert(&key, value.clone())?;
                let replaced = l.insert(&key, entry.clone())?;
                b.insert(id.as_bytes(), key.clone())?;
                Ok((moved_from, replaced))
            })
            .map_err(tx)?;
        self.listed.moved(moved_from.as_deref(), None);
        self.listed.moved(replaced.as_deref(), Some(&entry));
        for k in lookups.iter().skip(1) {
            self.by_key
                .insert(k.as_bytes(), id.as_bytes())
                .map_err(io)?;
        }
        if self.indexed.len() >= INDEXED_MAX {
            self.indexed.clear();
        }
        self.indexed.insert(
            id.to_string(),
            Indexed {
                key,
                lookups: lookups.len(),
                listing: entry_hash,
            },
        );
        Ok(())
    }
}

impl SessionStore for SledStore {
    fn put(&mut self, rec: &SessionRecord) -> Result<(), StoreError> {
        self.write(rec)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    fn put_lazy(&mut self, rec: &SessionRecord) -> Result<(), StoreError> {
        self.write(rec)
    }

    fn get(&self, call_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let key = match self.indexed.get(call_id) {
            Some(known) => known.key.clone(),
            None => match self.by_id.get(call_id.as_bytes()).map_err(io)? {
                Some(k) => k,
                None => return Ok(None),
            },
        };
        match self.records.get(key).map_err(io)? {
            Some(v) => Ok(Some(decode(call_id.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    fn find(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(r) = self.get(key)? {
            return Ok(Some(r));
        }
        match self.by_key.get(key.as_bytes()).map_err(io)? {
            Some(id) => self.get(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    fn list(&self, q: &SessionQuery) -> Result<Page<SessionRecord>, StoreError> {
        if q.is_unfiltered() {
            // Every session matches: the listing's keys are the list, its
            // kept count the total; no entry is decoded and the walk stops
            // at the end of the page (the default dashboard query).
            let keys = self.listing.iter().keys().rev().filter_map(Result::ok);
            let total = self.listed.all.load(Ordering::Relaxed);
            return self.read_page(paginate_counted(keys, total, q));
        }
        if let Some(status) = q.status_only() {
            // The total is kept per status: decode only up to the page.
            let matching = matching_keys(self.listing.iter(), q);
            return self.read_page(paginate_counted(matching, self.listed.status(status), q));
        }
        // Records are keyed by start time: a from/to filter is a key range.
        let lo = q.from.map_or(0, key_micros).to_be_bytes();
        let entries = match q.to.map(|t| key_micros(t).checked_add(1)) {
            Some(Some(hi)) => self.listing.range(lo..hi.to_be_bytes()),
            Some(None) | None => self.listing.range(lo..),
        };
        self.read_page(paginate(matching_keys(entries, q), q))
    }

    fn len(&self) -> usize {
        self.listed.all.load(Ordering::Relaxed)
    }
}

impl SledStore {
    /// The records of a page of keys (a corrupt one is left out).
    fn read_page(&self, keys: Page<sled::IVec>) -> Result<Page<SessionRecord>, StoreError> {
        let mut items = Vec::with_capacity(keys.items.len());
        for k in &keys.items {
            let Some(v) = self.records.get(k).map_err(io)? else {
                continue;
            };
            match decode(key_call_id(k), &v) {
                Ok(r) => items.push(r),
                Err(e) => tracing::warn!(%e, "skipping corrupt session"),
            }
        }
        Ok(Page {
            items,
            total: keys.total,
            page: keys.page,
            page_size: keys.page_size,
        })
    }
}

/// Owns the store on a dedicated thread (a `SyncArbiter`).
pub struct StoreActor {
    store: Box<dyn SessionStore>,
}

impl StoreActor {
    pub fn new(store: Box<dyn SessionStore>) -> Self {
        Self { store }
    }
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

/// Write a record; `durable` waits for the flush.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Put {
    pub record: SessionRecord,
    pub durable: bool,
}

#[derive(Message)]
#[rtype(result = "Result<Option<SessionRecord>, StoreError>")]
pub struct Find(pub String);

#[derive(Message)]
#[rtype(result = "Result<Page<SessionRecord>, StoreError>")]
pub struct List(pub SessionQuery);

#[derive(Message)]
#[rtype(result = "usize")]
pub struct Count;

impl Handler<Put> for StoreActor {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: Put, _: &mut Self::Context) -> Self::Result {
        let t0 = std::time::Instant::now();
        let (kind, res) = if m.durable {
            ("durable", self.store.put(&m.record))
        } else {
            ("journal", self.store.put_lazy(&m.record))
        };
        crate::metrics::get()
            .store_write
            .with_label_values(&[kind])
            .observe(t0.elapsed().as_secs_f64());
        res
    }
}

impl Handler<Find> for StoreActor {
    type Result = Result<Option<SessionRecord>, StoreError>;
    fn handle(&mut self, m: Find, _: &mut Self::Context) -> Self::Result {
        self.store.find(&m.0)
    }
}

impl Handler<List> for StoreActor {
    type Result = Result<Page<SessionRecord>, StoreError>;
    fn handle(&mut self, m: List, _: &mut Self::Context) -> Self::Result {
        self.store.list(&m.0)
    }
}

impl Handler<Count> for StoreActor {
    type Result = usize;
    fn handle(&mut self, _: Count, _: &mut Self::Context) -> usize {
        self.store.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use earshot::ids::CallId;
    use earshot::metadata::OriginalCallId;
    use earshot::session::SourceInfo;

    fn rec(id: &str, secs: i64) -> SessionRecord {
        let t = chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        SessionRecord::new(CallId::from(id), t, SourceInfo::default())
    }

    /// Open the store in `dir`, which a handle just dropped may still
    /// lock for a moment: sled's background threads let go of the file
    /// after the last handle is gone (seen as "could not acquire lock" in
    /// about one run in eight of these tests).
    fn open(dir: &Path) -> SledStore {
        for _ in 0..100 {
            match SledStore::open(dir) {
                Err(StoreError::Io(e)) if e.contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                r => return r.unwrap(),
            }
        }
        panic!("{} stayed locked for 2 s", dir.display())
    }

    fn ids(p: &Page<SessionRecord>) -> Vec<&str> {
        p.items.iter().map(|r| r.call_id.as_str()).collect()
    }

    #[test]
    fn sled_store_survives_reopen_and_marks_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = open(dir.path());
            let mut a = rec("a", 1);
            a.finish(CallStatus::Completed, "bye", a.start_time);
            s.put(&a).unwrap();
            let mut b = rec("b", 2);
            b.source.original_call_ids.push(OriginalCallId {
                kind: "ucid".into(),
                value: "U-1".into(),
            });
            s.put(&b).unwrap();
        }
        let mut s = open(dir.path());
        assert_eq!(s.len(), 2);
        assert_eq!(s.mark_interrupted(chrono::Utc::now()).unwrap().len(), 1);
        let b = s.find("U-1").unwrap().unwrap();
        assert_eq!(b.call_id.as_str(), "b");
        assert_eq!(b.status, CallStatus::Interrupted);
        assert_eq!(ids(&s.list(&SessionQuery::default()).unwrap()), ["b", "a"]);
        assert_eq!(s.get("a").unwrap().unwrap().status, CallStatus::Completed);
    }

    #[test]
    fn a_new_start_time_moves_the_record_and_indexes_stay_right() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let mut a = rec("a", 5);
        s.put_lazy(&a).unwrap();
        s.put_lazy(&rec("b", 3)).unwrap();
        // Journal writes of a known call touch only its record.
        a.cumulative_transcript = "hello".into();
        s.put_lazy(&a).unwrap();
        assert_eq!(s.get("a").unwrap().unwrap().cumulative_transcript, "hello");
        // Its start moves earlier, and an original-call id arrives.
        a.start_time -= chrono::Duration::seconds(4);
        a.source.original_call_ids.push(OriginalCallId {
            kind: "ucid".into(),
            value: "U-9".into(),
        });
        s.put(&a).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(ids(&s.list(&SessionQuery::default()).unwrap()), ["b", "a"]);
        assert_eq!(s.find("U-9").unwrap().unwrap().call_id.as_str(), "a");
        // Another handle (no index memory) sees the same and writes right.
        let mut t = s.clone();
        a.cumulative_transcript = "bye".into();
        t.put(&a).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(s.get("a").unwrap().unwrap().cumulative_transcript, "bye");
    }

    #[test]
    fn a_store_in_the_first_layout_is_moved() {
        let dir = tempfile::tempdir().unwrap();
        let a = rec("a", 1);
        let mut b = rec("b", 2);
        b.source.original_call_ids.push(OriginalCallId {
            kind: "ucid".into(),
            value: "U-2".into(),
        });
        {
            // The first layout: sessions by Call-ID, by_start, by_key.
            let db = sled::open(dir.path()).unwrap();
            let sessions = db.open_tree("sessions").unwrap();
            let by_start = db.open_tree("by_start").unwrap();
            let by_key = db.open_tree("by_key").unwrap();
            for r in [&a, &b] {
                let id = r.call_id.as_str().as_bytes();
                sessions.insert(id, serde_json::to_vec(r).unwrap()).unwrap();
                by_start.insert(record_key(r), id).unwrap();
            }
            by_key.insert("U-2", "b").unwrap();
            sessions.insert("bad", &b"{not json"[..]).unwrap();
            db.flush().unwrap();
        }
        let s = open(dir.path());
        assert_eq!(s.len(), 2);
        assert_eq!(s.get("a").unwrap().unwrap(), a);
        assert_eq!(s.find("U-2").unwrap().unwrap(), b);
        assert_eq!(ids(&s.list(&SessionQuery::default()).unwrap()), ["b", "a"]);
        let names = s.db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"sessions"));
        assert!(!names.iter().any(|n| n.as_ref() == b"by_start"));
        drop(s);
        // Opening again finds nothing left to move.
        let s = open(dir.path());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn records_are_stored_compressed_and_plain_json_ones_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        let mut a = rec("a", 1);
        a.cumulative_transcript = "thank you for calling, how can I help you today? ".repeat(40);
        s.put(&a).unwrap();
        let (_, v) = s.records.iter().next().unwrap().unwrap();
        let json = serde_json::to_vec(&a).unwrap();
        assert!(v.starts_with(&ZSTD_MAGIC));
        assert!(v.len() * 4 < json.len(), "{} of {}", v.len(), json.len());
        assert_eq!(s.get("a").unwrap().unwrap(), a);
        // A record written before compression (plain JSON) reads as it was.
        let b = rec("b", 2);
        s.records
            .insert(record_key(&b), serde_json::to_vec(&b).unwrap())
            .unwrap();
        s.by_id.insert("b", record_key(&b)).unwrap();
        s.listing
            .insert(record_key(&b), listing_bytes(&b).unwrap())
            .unwrap();
        assert_eq!(s.get("b").unwrap().unwrap(), b);
        assert_eq!(ids(&s.list(&SessionQuery::default()).unwrap()), ["b", "a"]);
    }

    #[test]
    fn a_bad_stored_value_is_corrupt_not_a_panic() {
        let good = zstd::bulk::compress(&serde_json::to_vec(&rec("a", 1)).unwrap(), 1).unwrap();
        let mut cut = good.clone();
        cut.truncate(good.len() / 2);
        let mut flipped = good.clone();
        let mid = good.len() / 2;
        flipped[mid] ^= 0xFF;
        // A frame that says it holds more than a record may.
        let big = zstd::bulk::compress(&vec![0u8; MAX_RECORD_BYTES as usize + 1], 1).unwrap();
        match decode(b"x", &big) {
            Err(StoreError::Corrupt(_, e)) => assert!(e.contains("bytes"), "{e}"),
            other => panic!("{other:?}"),
        }
        for v in [&cut[..], &flipped[..], &ZSTD_MAGIC[..], b"{\"no\": ", b""] {
            assert!(
                matches!(decode(b"x", v), Err(StoreError::Corrupt(..))),
                "{v:?}"
            );
        }
        assert!(decode(b"a", &good).is_ok());
    }

    fn person(r: &mut SessionRecord, id: &str, aor: &str) {
        r.participants.push(earshot::session::Participant {
            participant_id: id.into(),
            aor: Some(aor.into()),
            name: None,
            role: None,
        });
    }

    #[test]
    fn lists_filter_on_the_listing_and_read_only_their_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path());
        for i in 0..6 {
            let mut r = rec(&format!("c{i}"), i * 10);
            person(
                &mut r,
                &format!("p{i}"),
                &format!("sip:Agent{}@example.com", i % 2),
            );
            if i % 3 == 0 {
                r.finish(CallStatus::Completed, "bye", r.start_time);
            }
            s.put(&r).unwrap();
        }
        let q = |f: &dyn Fn(&mut SessionQuery)| {
            let mut q = SessionQuery::default();
            f(&mut q);
            q
        };
        let all = s.list(&SessionQuery::default()).unwrap();
        assert_eq!(
            (ids(&all), all.total),
            (vec!["c5", "c4", "c3", "c2", "c1", "c0"], 6)
        );
        let done = s
            .list(&q(&|q| q.status = Some(CallStatus::Completed)))
            .unwrap();
        assert_eq!((ids(&done), done.total), (vec!["c3", "c0"], 2));
        let agent1 = s
            .list(&q(&|q| q.participant = Some("AGENT1@".into())))
            .unwrap();
        assert_eq!(ids(&agent1), ["c5", "c3", "c1"]);
        let t = |secs: i64| chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap();
        let window = s
            .list(&q(&|q| {
                q.from = Some(t(10));
                q.to = Some(t(30));
            }))
            .unwrap();
        assert_eq!((ids(&window), window.total), (vec!["c3", "c2", "c1"], 3));
        let second_of_4 = q(&|q| {
            q.page = 2;
            q.page_size = 4;
        });
        let page2 = s.list(&second_of_4).unwrap();
        assert_eq!((ids(&page2), page2.total), (vec!["c1", "c0"], 6));
        // A record off the page is not read: even a corrupt one leaves the
        // page whole (and still counts, from its listing entry).
        s.records
            .insert(record_key(&rec("c4", 40)), &b"garbage"[..])
            .unwrap();
        let page2 = s.list(&second_of_4).unwrap();
        assert_eq!((ids(&page2), page2.total), (vec!["c1", "c0"], 6));
        // On the page it is skipped, not an error.
        let all = s.list(&SessionQuery::default()).unwrap();
        assert_eq!(ids(&all), ["c5", "c3", "c2", "c1", "c0"]);
        // A list without filters reads no listing entry: a corrupt one
        // leaves it whole; a filtered list skips that session.
        s.listing
            .insert(record_key(&rec("c2", 20)), &b"garbage"[..])
            .unwrap();
        let all = s.list(&SessionQuery::default()).unwrap();
        assert_eq!((ids(&all).len(), all.total), (5, 6));
        let agent0 = s
            .list(&q(&|q| q.participant = Some("agent0@".into())))
            .unwrap();
        // (c4 counts, but its record is the garbage from above.)
        assert_eq!((ids(&agent0), agent0.total), (vec!["c0"], 2));
    }

    #[test]
    fn a_store_without_a_listing_gets_one_and_counts_stay_exact() {
        let dir = tempfile::tempdir().unwrap();
        let a = rec("a", 1);
        let mut b = rec("b", 2);
        {
            let mut s = open(dir.path());
            s.put(&a).unwrap();
            s.put_lazy(&b).unwrap();
            // Another handle counts into the same total; rewriting a known
            // call does not count it again.
            let mut t = s.clone();
            t.put(&rec("c", 3)).unwrap();
            b.cumulative_transcript = "more".into();
            t.put(&b).unwrap();
            assert_eq!((s.len(), t.len()), (3, 3));
            // As a store written before the listing existed.
            s.db.drop_tree("listing").unwrap();
            s.db.drop_tree("meta").unwrap();
            s.db.flush().unwrap();
        }
        let mut s = open(dir.path());
        assert_eq!(s.len(), 3);
        let all = s.list(&SessionQuery::default()).unwrap();
        assert_eq!((ids(&all), all.total), (vec!["c", "b", "a"], 3));
        // Live ones are found through the listing when the engine restarts.
        let mut live = s.mark_interrupted(chrono::Utc::now()).unwrap();
        live.sort();
        assert_eq!(live, ["a", "b", "c"]);
        let q = SessionQuery {
            status: Some(CallStatus::Interrupted),
            ..Default::default()
        };
        assert_eq!(s.list(&q).unwrap().total, 3);
        assert_eq!(s.get("b").unwrap().unwrap().cumulative_transcript, "more");
        assert!(s.mark_interrupted(chrono::Utc::now()).unwrap().is_empty());
    }

    /// Every unfiltered and status-only page (which take their totals
    /// from the kept counts and stop at the page) against the in-memory
    /// store's full walk, after random writes through two handles (new
    /// calls, status changes, moved start times, listing-neutral updates),
    /// and again after a reopen recounts.
    #[test]
    fn kept_counts_page_like_a_full_walk() {
        use earshot::session::MemoryStore;
        use rand::{rngs::StdRng, Rng, SeedableRng};
        const STATUSES: [CallStatus; 4] = [
            CallStatus::Active,
            CallStatus::Completed,
            CallStatus::Failed,
            CallStatus::Interrupted,
        ];
        fn check(s: &SledStore, model: &MemoryStore, n: usize) {
            let statuses = STATUSES.into_iter().map(Some);
            for status in std::iter::once(None).chain(statuses) {
                for page_size in [1, 7, 50] {
                    for page in 1..=n / page_size + 2 {
                        let q = SessionQuery {
                            status,
                            page,
                            page_size,
                            ..Default::default()
                        };
                        let (got, want) = (s.list(&q).unwrap(), model.list(&q).unwrap());
                        assert_eq!((ids(&got), got.total), (ids(&want), want.total), "{q:?}");
                    }
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut model = MemoryStore::default();
        let mut recs: Vec<SessionRecord> = vec![];
        let mut used = std::collections::HashSet::new();
        let mut fresh_secs = |rng: &mut StdRng| loop {
            let t = rng.gen_range(0..1_000_000);
            if used.insert(t) {
                return t;
            }
        };
        {
            let mut s = open(dir.path());
            let mut other = s.clone();
            for step in 0..400 {
                let i = if recs.is_empty() || rng.gen_bool(0.3) {
                    recs.push(rec(&format!("c{step}"), fresh_secs(&mut rng)));
                    recs.len() - 1
                } else {
                    let i = rng.gen_range(0..recs.len());
                    let r = &mut recs[i];
                    match rng.gen_range(0..10) {
                        0 => r.start_time = rec("x", fresh_secs(&mut rng)).start_time,
                        1..=5 => r.status = STATUSES[rng.gen_range(0..4)],
                        _ => r.cumulative_transcript.push_str(" more"),
                    }
                    i
                };
                // A call stays with one handle (see `Clone`); the counts
                // are shared.
                let h = if recs[i].call_id.as_str().len().is_multiple_of(2) {
                    &mut s
                } else {
                    &mut other
                };
                if rng.gen_bool(0.5) {
                    h.put(&recs[i]).unwrap();
                } else {
                    h.put_lazy(&recs[i]).unwrap();
                }
                model.put(&recs[i]).unwrap();
            }
            assert!(STATUSES.iter().all(|st| s.listed.status(*st) > 0));
            check(&s, &model, recs.len());
            check(&other, &model, recs.len());
        }
        check(&open(dir.path()), &model, recs.len());
    }
}
