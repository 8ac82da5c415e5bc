//! The journal writer: one thread owns every redb write transaction. Everything that writes sends
//! it a [`Request`] over a bounded crossbeam channel; it drains whatever is pending into one
//! durable transaction (group commit) and answers each request only after `commit()` returned.
//! A full queue is reported to the caller at once (`Busy`), never waited on from async code.
//!
//! A full disk: appends are refused (`Unavailable`, HTTP 503) while the data directory has less
//! than `storage.min_free_bytes` free, which keeps redb away from ENOSPC. Should a commit still
//! fail with an I/O error, redb refuses every later write until the database is reopened: the
//! writer fails requests at once while it probes (with backoff) for room again, then reopens the
//! database, re-reads the journal head and carries on. Nothing is answered before its commit
//! returned, so nothing acknowledged is lost; a failed group is never acknowledged.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::db::Db;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use redb::{Durability, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::codec::{self, Envelope, Origin};
use super::reader;
use super::schema::{BLOBS, EVENTS_BY_TYPE, EVENT_IDS, JOURNAL};
use super::JournalError;
use crate::clock;
use crate::domain::internal;

/// Requests that wait in the queue at most; past it callers get `Busy` (HTTP 503).
pub const QUEUE_CAPACITY: usize = 8192;
/// Requests folded into one transaction at most.
const MAX_GROUP_REQUESTS: usize = 2048;
/// Payload bytes folded into one transaction at most (keeps a commit's latency bounded).
const MAX_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// First wait before probing a failed storage again; doubles up to `PROBE_MAX`.
const PROBE_MIN: Duration = Duration::from_millis(100);
const PROBE_MAX: Duration = Duration::from_secs(5);
/// Free bytes the data directory needs (beyond `min_free_bytes`) before a failed database is
/// reopened: opening recovers the file, which writes.
const REOPEN_MIN_FREE_BYTES: u64 = 1024 * 1024;
/// "Disk nearly full" is logged at most this often.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// How durable an `Apply` must be before it is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// fsynced before the answer (appends always are).
    Durable,
    /// Committed but not fsynced: a crash may lose it, and only together with every later
    /// relaxed commit (redb rolls back to the last durable commit; the next durable commit makes
    /// all earlier ones durable). For rebuildable state such as projector checkpoints.
    Relaxed,
}

/// A write of projection state, run inside the group's transaction.
pub type WriteFn = Box<dyn FnOnce(&WriteTransaction) -> Result<(), redb::Error> + Send>;

/// An event to append; the writer assigns its offset and append time.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: String,
    pub kind: String,
    pub timestamp_ms: i64,
    pub origin: Origin,
    pub assigned_user_id: Option<String>,
    pub entity_id: Option<String>,
    pub payload: Vec<u8>,
    /// Files the payload refers to by SHA-256, stored in the same transaction.
    pub blobs: Vec<Blob>,
}

impl NewEvent {
    /// An internal event (users, keys, hooks, replays, policy, loops...) about `entity_id`, with
    /// `record` as its JSON payload and a fresh event id, stamped now.
    pub fn internal<T: serde::Serialize>(
        kind: &str,
        entity_id: &str,
        record: &T,
        origin: Origin,
    ) -> NewEvent {
        NewEvent {
            id: crate::ids::new_id(crate::ids::EVENT_PREFIX),
            kind: kind.to_string(),
            timestamp_ms: crate::clock::now_ms(),
            origin,
            assigned_user_id: None,
            entity_id: Some(entity_id.to_string()),
            payload: serde_json::to_vec(record).expect("internal records serialise"),
            blobs: Vec::new(),
        }
    }
}

/// A content-addressed file (a release-form PDF).
#[derive(Clone, Debug)]
pub struct Blob {
    pub sha256_hex: String,
    pub bytes: Vec<u8>,
}

/// What happened to one appended event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    pub id: String,
    pub offset: u64,
    /// The id was already in the journal: nothing was appended, `offset` is the original's.
    pub duplicate: bool,
}

pub enum Request {
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<Appended>, JournalError>>,
    },
    Apply {
        write: WriteFn,
        sync: Sync,
        reply: oneshot::Sender<Result<(), JournalError>>,
    },
    /// Finish everything queued before this, then exit.
    Stop,
}

impl Request {
    fn size_bytes(&self) -> usize {
        match self {
            Request::Append { events, .. } => events
                .iter()
                .map(|e| {
                    e.payload.len() + e.blobs.iter().map(|b| b.bytes.len()).sum::<usize>() + 64
                })
                .sum(),
            Request::Apply { .. } | Request::Stop => 64,
        }
    }
}

/// Wakes projector threads after a commit. Each waker is a bounded(1) channel: a pending wake
/// is enough, so the writer never blocks on a slow projector.
#[derive(Default)]
pub struct Wakers(Mutex<Vec<Sender<()>>>);

impl Wakers {
    pub fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = bounded(1);
        self.0.lock().expect("wakers lock").push(tx);
        rx
    }

    fn wake_all(&self) {
        for w in self.0.lock().expect("wakers lock").iter() {
            let _ = w.try_send(());
        }
    }
}

/// The handle everything else writes through. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Request>,
    head: Arc<AtomicU64>,
    storage_ok: Arc<AtomicBool>,
    wakers: Arc<Wakers>,
    head_watch: tokio::sync::watch::Receiver<u64>,
}

impl Writer {
    /// Starts the writer thread on `db`, whose journal currently ends at `head`, appended at
    /// `head_appended_at_ms` (append times never go backwards, whatever the clock does).
    /// Appends are refused while the data directory has less than `min_free_bytes` free
    /// (0: never refused; redb's own ENOSPC is still handled).
    pub fn start(
        db: Arc<Db>,
        head: u64,
        head_appended_at_ms: i64,
        min_free_bytes: u64,
    ) -> (Writer, JoinHandle<()>) {
        let (tx, rx) = bounded(QUEUE_CAPACITY);
        let head_atomic = Arc::new(AtomicU64::new(head));
        let storage_ok = Arc::new(AtomicBool::new(true));
        let wakers = Arc::new(Wakers::default());
        let (watch_tx, head_watch) = tokio::sync::watch::channel(head);
        let thread = WriterThread {
            db,
            rx,
            next_offset: head + 1,
            head: head_atomic.clone(),
            wakers: wakers.clone(),
            head_watch: watch_tx,
            unsynced: false,
            last_appended_at_ms: head_appended_at_ms,
            min_free_bytes,
            broken: None,
            storage_ok: storage_ok.clone(),
            last_full_warning: None,
        };
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || thread.run())
            .expect("spawn journal writer");
        let writer = Writer {
            tx,
            head: head_atomic,
            storage_ok,
            wakers,
            head_watch,
        };
        (writer, handle)
    }

    /// The last durably committed offset.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// False while the storage failed (disk full, I/O error) and the writer waits for it.
    pub fn storage_ok(&self) -> bool {
        self.storage_ok.load(Ordering::Acquire)
    }

    pub fn wakers(&self) -> &Wakers {
        &self.wakers
    }

    /// A receiver of the committed head, for async waiters.
    pub fn head_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head_watch.clone()
    }

    /// Requests waiting for the writer now.
    pub fn queue_len(&self) -> usize {
        self.tx.len()
    }

    fn submit(&self, request: Request) -> Result<(), JournalError> {
        self.tx.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => JournalError::Busy,
            TrySendError::Disconnected(_) => JournalError::Closed,
        })
    }

    /// Appends events atomically; resolves once they are durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Request::Append { events, reply })?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Blocking form of [`append`](Self::append) for threads outside the runtime.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, JournalError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Request::Append { events, reply })?;
        rx.blocking_recv().map_err(|_| JournalError::Closed)?
    }

    /// Runs `write` inside a durable transaction; resolves once it is durable.
    pub async fn apply(&self, write: WriteFn) -> Result<(), JournalError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Request::Apply {
            write,
            sync: Sync::Durable,
            reply,
        })?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// Runs `write` inside a transaction with the given durability (projection state and
    /// checkpoints use `Relaxed`).
    pub fn apply_blocking(&self, write: WriteFn, sync: Sync) -> Result<(), JournalError> {
        let (reply, rx) = oneshot::channel();
        self.submit(Request::Apply { write, sync, reply })?;
        rx.blocking_recv().map_err(|_| JournalError::Closed)?
    }

    /// Asks the writer to finish what is queued and exit. Blocks while the queue is full, which
    /// is bounded by the queue draining.
    pub fn stop(&self) {
        let _ = self.tx.send(Request::Stop);
    }
}

enum Reply {
    Append(
        oneshot::Sender<Result<Vec<Appended>, JournalError>>,
        Vec<Appended>,
    ),
    Apply(oneshot::Sender<Result<(), JournalError>>),
}

impl Reply {
    fn fail(self, err: &JournalError) {
        match self {
            Reply::Append(tx, _) => {
                let _ = tx.send(Err(err.clone()));
            }
            Reply::Apply(tx) => {
                let _ = tx.send(Err(err.clone()));
            }
        }
    }

    fn succeed(self) {
        match self {
            Reply::Append(tx, outcomes) => {
                let _ = tx.send(Ok(outcomes));
            }
            Reply::Apply(tx) => {
                let _ = tx.send(Ok(()));
            }
        }
    }
}

struct WriterThread {
    db: Arc<Db>,
    rx: Receiver<Request>,
    next_offset: u64,
    head: Arc<AtomicU64>,
    wakers: Arc<Wakers>,
    head_watch: tokio::sync::watch::Sender<u64>,
    /// A relaxed commit happened since the last durable one.
    unsynced: bool,
    /// Append time of the newest entry: offsets and append times ascend together, so replay
    /// `from_time` can binary-search the journal.
    last_appended_at_ms: i64,
    min_free_bytes: u64,
    /// Set after an I/O failure: requests fail at once until a probe reopens the database.
    broken: Option<Broken>,
    storage_ok: Arc<AtomicBool>,
    last_full_warning: Option<Instant>,
}

struct Broken {
    reason: String,
    next_probe: Instant,
    backoff: Duration,
}

/// Bytes available to this process in `dir`'s file system (None if it cannot be asked).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

fn fail_request(request: Request, err: &JournalError) {
    match request {
        Request::Append { reply, .. } => {
            let _ = reply.send(Err(err.clone()));
        }
        Request::Apply { reply, .. } => {
            let _ = reply.send(Err(err.clone()));
        }
        Request::Stop => {}
    }
}

impl WriterThread {
    fn run(mut self) {
        let mut stopping = false;
        while !stopping {
            let first = if self.broken.is_some() {
                let received = match self.rx.recv_timeout(PROBE_MIN) {
                    Ok(request) => Some(request),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                self.probe();
                match received {
                    Some(request) => request,
                    None => continue,
                }
            } else {
                let Ok(first) = self.rx.recv() else { break };
                first
            };
            let mut group = Vec::with_capacity(64);
            let mut group_bytes = 0usize;
            let mut next = Some(first);
            while let Some(request) = next.take() {
                if matches!(request, Request::Stop) {
                    stopping = true;
                    break;
                }
                group_bytes += request.size_bytes();
                group.push(request);
                if group.len() >= MAX_GROUP_REQUESTS || group_bytes >= MAX_GROUP_BYTES {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            if group.is_empty() {
                continue;
            }
            match &self.broken {
                Some(broken) => {
                    let err = JournalError::Unavailable(broken.reason.clone());
                    for request in group {
                        fail_request(request, &err);
                    }
                }
                None => self.commit_group(group),
            }
        }
        if self.unsynced && self.broken.is_none() {
            // Make the trailing relaxed commits durable before exiting.
            let synced = self
                .db
                .begin_write()
                .map_err(redb::Error::from)
                .and_then(|mut txn| {
                    txn.set_durability(Durability::Immediate)
                        .map_err(redb::Error::from)?;
                    txn.commit().map_err(redb::Error::from)
                });
            if let Err(e) = synced {
                tracing::error!(error = %e, "final durable commit failed");
            }
        }
        tracing::debug!(head = self.next_offset - 1, "journal writer stopped");
    }

    /// While broken: once the backoff passed and there is room, reopen the database.
    fn probe(&mut self) {
        let Some(broken) = &mut self.broken else {
            return;
        };
        let now = Instant::now();
        if now < broken.next_probe {
            return;
        }
        match self.recover() {
            Ok(head) => {
                self.broken = None;
                self.storage_ok.store(true, Ordering::Release);
                tracing::warn!(head, "storage recovered: the journal accepts writes again");
                // Projectors reload (the generation changed) and catch up.
                self.wakers.wake_all();
            }
            Err(reason) => {
                let Some(broken) = &mut self.broken else {
                    return;
                };
                tracing::debug!(%reason, "storage still unavailable");
                broken.backoff = (broken.backoff * 2).min(PROBE_MAX);
                broken.next_probe = Instant::now() + broken.backoff;
            }
        }
    }

    /// Reopens the database and re-reads where the journal ends; the new head.
    fn recover(&mut self) -> Result<u64, String> {
        let needed = self.min_free_bytes.saturating_add(REOPEN_MIN_FREE_BYTES);
        if let Some(free) = free_bytes(self.db.dir()) {
            if free < needed {
                return Err(format!("{free} bytes free, waiting for {needed}"));
            }
        }
        self.db.reopen()?;
        let head = reader::head(&self.db).map_err(|e| e.to_string())?;
        let head_appended_at_ms = reader::get_by_offset(&self.db, head)
            .map_err(|e| e.to_string())?
            .map(|e| e.appended_at_ms)
            .unwrap_or(0);
        if head + 1 != self.next_offset {
            // A commit that reported failure had reached the disk after all: it was never
            // acknowledged, and offsets stay gapless from the file's own head.
            tracing::warn!(
                head,
                expected = self.next_offset - 1,
                "journal head after reopening differs from the last acknowledged one"
            );
        }
        self.next_offset = head + 1;
        self.last_appended_at_ms = self.last_appended_at_ms.max(head_appended_at_ms);
        self.head.store(head, Ordering::Release);
        let _ = self.head_watch.send(head);
        // The reopened file holds only durable commits.
        self.unsynced = false;
        Ok(head)
    }

    fn mark_broken(&mut self, err: &JournalError) {
        if self.broken.is_none() {
            tracing::error!(error = %err, "storage failed; refusing writes until it recovers");
        }
        self.storage_ok.store(false, Ordering::Release);
        self.broken = Some(Broken {
            reason: err.to_string(),
            next_probe: Instant::now() + PROBE_MIN,
            backoff: PROBE_MIN,
        });
    }

    /// Fails the appends of `group` when the disk is nearer full than `min_free_bytes` (plus
    /// what they would add); other requests (checkpoints, cursors) go on using the reserve.
    fn refuse_appends_without_room(&mut self, group: Vec<Request>) -> Vec<Request> {
        let is_append = |r: &Request| matches!(r, Request::Append { .. });
        if self.min_free_bytes == 0 || !group.iter().any(is_append) {
            return group;
        }
        let Some(free) = free_bytes(self.db.dir()) else {
            return group;
        };
        let append_bytes: usize = group
            .iter()
            .filter(|r| is_append(r))
            .map(Request::size_bytes)
            .sum();
        let needed = self
            .min_free_bytes
            .saturating_add(u64::try_from(append_bytes).unwrap_or(u64::MAX));
        if free >= needed {
            return group;
        }
        if self
            .last_full_warning
            .is_none_or(|at| at.elapsed() >= FULL_WARNING_EVERY)
        {
            self.last_full_warning = Some(Instant::now());
            tracing::warn!(
                free,
                min_free_bytes = self.min_free_bytes,
                "disk nearly full: refusing appends"
            );
        }
        let err = JournalError::Unavailable(format!(
            "the disk is nearly full ({free} bytes free, storage.min_free_bytes is {})",
            self.min_free_bytes
        ));
        group
            .into_iter()
            .filter_map(|r| {
                if is_append(&r) {
                    fail_request(r, &err);
                    None
                } else {
                    Some(r)
                }
            })
            .collect()
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        let group = self.refuse_appends_without_room(group);
        if group.is_empty() {
            return;
        }
        let start_offset = self.next_offset;
        let start_appended_at_ms = self.last_appended_at_ms;
        let mut replies = Vec::with_capacity(group.len());
        let result = self.write_group(group, &mut replies);
        match result {
            Ok(()) => {
                let appended = self.next_offset != start_offset;
                if appended {
                    let head = self.next_offset - 1;
                    self.head.store(head, Ordering::Release);
                    let _ = self.head_watch.send(head);
                }
                for r in replies {
                    r.succeed();
                }
                if appended {
                    self.wakers.wake_all();
                }
            }
            Err((err, rest)) => {
                // Nothing of the group is durable: roll the offset counter back so offsets
                // stay gapless, and fail every request (including those not yet processed).
                self.next_offset = start_offset;
                self.last_appended_at_ms = start_appended_at_ms;
                if matches!(err, JournalError::Unavailable(_)) {
                    self.mark_broken(&err);
                } else {
                    tracing::error!(error = %err, "journal commit failed");
                }
                for r in replies {
                    r.fail(&err);
                }
                for request in rest {
                    fail_request(request, &err);
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn write_group(
        &mut self,
        group: Vec<Request>,
        replies: &mut Vec<Reply>,
    ) -> Result<(), (JournalError, Vec<Request>)> {
        let mut txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => return Err((JournalError::from(redb::Error::from(e)), group)),
        };
        // One request that needs durability makes the whole group durable.
        let durable = group.iter().any(|r| match r {
            Request::Append { .. } => true,
            Request::Apply { sync, .. } => *sync == Sync::Durable,
            Request::Stop => false,
        });
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        if let Err(e) = txn.set_durability(durability) {
            return Err((JournalError::from(redb::Error::from(e)), group));
        }
        let mut requests = group.into_iter();
        while let Some(request) = requests.next() {
            let outcome = match request {
                Request::Append { events, reply } => match self.append_in(&txn, events) {
                    Ok(outcomes) => {
                        replies.push(Reply::Append(reply, outcomes));
                        Ok(())
                    }
                    Err(e) => {
                        replies.push(Reply::Append(reply, Vec::new()));
                        Err(e)
                    }
                },
                Request::Apply { write, reply, .. } => {
                    replies.push(Reply::Apply(reply));
                    write(&txn).map_err(JournalError::from)
                }
                Request::Stop => Ok(()),
            };
            if let Err(e) = outcome {
                return Err((e, requests.collect()));
            }
        }
        txn.commit()
            .map_err(|e| (JournalError::from(redb::Error::from(e)), Vec::new()))?;
        self.unsynced = !durable;
        Ok(())
    }

    fn append_in(
        &mut self,
        txn: &WriteTransaction,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, JournalError> {
        let mut journal = txn.open_table(JOURNAL)?;
        let mut ids = txn.open_table(EVENT_IDS)?;
        let mut by_type = txn.open_table(EVENTS_BY_TYPE)?;
        let mut blobs = txn.open_table(BLOBS)?;
        let appended_at_ms = clock::now_ms().max(self.last_appended_at_ms);
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            if let Some(existing) = ids.get(event.id.as_str())?.map(|v| v.value()) {
                outcomes.push(Appended {
                    id: event.id,
                    offset: existing,
                    duplicate: true,
                });
                continue;
            }
            let offset = self.next_offset;
            for blob in &event.blobs {
                if blobs.get(blob.sha256_hex.as_str())?.is_none() {
                    blobs.insert(blob.sha256_hex.as_str(), blob.bytes.as_slice())?;
                }
            }
            let indexed = internal::is_indexed(&event.kind);
            let envelope = Envelope {
                offset,
                id: event.id,
                kind: event.kind,
                timestamp_ms: event.timestamp_ms,
                appended_at_ms,
                origin: event.origin,
                assigned_user_id: event.assigned_user_id,
                entity_id: event.entity_id,
                payload: event.payload,
            };
            let bytes = codec::encode(&envelope)?;
            let previous = journal.insert(offset, bytes.as_slice())?;
            // Offsets are handed out only here; an existing entry would mean two writers.
            assert!(previous.is_none(), "journal offset {offset} written twice");
            drop(previous);
            ids.insert(envelope.id.as_str(), offset)?;
            if indexed {
                by_type.insert((envelope.kind.as_str(), offset), ())?;
            }
            self.next_offset += 1;
            self.last_appended_at_ms = appended_at_ms;
            outcomes.push(Appended {
                id: envelope.id,
                offset,
                duplicate: false,
            });
        }
        Ok(outcomes)
    }
}
