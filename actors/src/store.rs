//! The sled-backed [`SessionStore`], and the actor that owns it on its own
//! thread so flushes never block the event loop.
//!
//! Layout: tree `sessions` maps Call-ID → JSON record; tree `by_start` maps
//! `start micros (BE) ‖ Call-ID` → Call-ID for newest-first listing; tree
//! `by_key` maps every original-call identifier → Call-ID.

use actix::prelude::*;
use earshot::session::{
    paginate, CallStatus, Page, SessionQuery, SessionRecord, SessionStore, StoreError,
};
use std::path::Path;

/// sled page-cache size.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    sessions: sled::Tree,
    by_start: sled::Tree,
    by_key: sled::Tree,
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
        Ok(SledStore {
            sessions: db.open_tree("sessions").map_err(io)?,
            by_start: db.open_tree("by_start").map_err(io)?,
            by_key: db.open_tree("by_key").map_err(io)?,
            db,
        })
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
        for item in self.sessions.iter() {
            let (_, v) = item.map_err(io)?;
            let Ok(mut rec) = serde_json::from_slice::<SessionRecord>(&v) else {
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

    fn write(&self, rec: &SessionRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(rec).map_err(io)?;
        let id = rec.call_id.as_str().as_bytes();
        self.sessions.insert(id, json).map_err(io)?;
        let micros = rec.start_time.timestamp_micros().max(0) as u64;
        let mut k = micros.to_be_bytes().to_vec();
        k.extend_from_slice(id);
        self.by_start.insert(k, id).map_err(io)?;
        for key in rec.lookup_keys().into_iter().skip(1) {
            self.by_key.insert(key.as_bytes(), id).map_err(io)?;
        }
        Ok(())
    }

    fn decode(call_id: &[u8], v: &[u8]) -> Result<SessionRecord, StoreError> {
        serde_json::from_slice(v).map_err(|e| {
            StoreError::Corrupt(String::from_utf8_lossy(call_id).into_owned(), e.to_string())
        })
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
        match self.sessions.get(call_id.as_bytes()).map_err(io)? {
            Some(v) => Ok(Some(Self::decode(call_id.as_bytes(), &v)?)),
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
        let iter = self.by_start.iter().rev().filter_map(|item| {
            let (_, id) = item.ok()?;
            let v = self.sessions.get(&id).ok()??;
            match Self::decode(&id, &v) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(%e, "skipping corrupt session");
                    None
                }
            }
        });
        Ok(paginate(iter, q))
    }

    fn len(&self) -> usize {
        self.sessions.len()
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

    #[test]
    fn sled_store_survives_reopen_and_marks_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = SledStore::open(dir.path()).unwrap();
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
        let mut s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.mark_interrupted(chrono::Utc::now()).unwrap().len(), 1);
        let b = s.find("U-1").unwrap().unwrap();
        assert_eq!(b.call_id.as_str(), "b");
        assert_eq!(b.status, CallStatus::Interrupted);
        let page = s.list(&SessionQuery::default()).unwrap();
        let ids: Vec<_> = page.items.iter().map(|r| r.call_id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(s.get("a").unwrap().unwrap().status, CallStatus::Completed);
    }
}
