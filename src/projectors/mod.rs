//! Projectors: in-process threads that derive state from the journal. Each reads from its own
//! checkpoint, applies entries in bounded chunks, and commits its state *and* its checkpoint in
//! one transaction through the journal writer, so a crash never leaves state and checkpoint apart.
//! A restart resumes from the checkpoint; wiping a projection's tables (and checkpoint) rebuilds
//! the same state from offset 1.

pub mod customers;
pub mod hooks;
pub mod registry;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::journal::Db;
use redb::WriteTransaction;

use crate::journal::schema::CHECKPOINTS;
use crate::journal::writer::Sync;
use crate::journal::{reader, Envelope, JournalError, WriteFn, Writer};

/// Entries read and applied per transaction at most.
const CHUNK_ENTRIES: usize = 4096;
/// How long an idle projector sleeps before re-checking the head (wakes early on commit).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Back-off after a failed commit, before reloading and retrying.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

pub trait Projector: Send + 'static {
    /// Stable name: the checkpoint's key.
    fn name(&self) -> &'static str;
    /// Applies one entry to in-memory state, remembering which rows changed.
    fn apply(&mut self, entry: &Envelope);
    /// The rows changed since the last call, as a write to run in the commit transaction.
    fn take_writes(&mut self) -> Option<WriteFn>;
    /// The last taken writes are durable: publish the state to readers.
    fn on_durable(&mut self);
    /// Discards in-memory state and reloads it from the committed tables (after a failed commit).
    fn reload(&mut self, db: &Db) -> Result<(), JournalError>;
}

/// What a running projector reports: its checkpoint, and how much it applied since start.
pub struct ProjectorStatus {
    pub name: &'static str,
    checkpoint: AtomicU64,
    applied_since_start: AtomicU64,
    applied_watch: tokio::sync::watch::Sender<u64>,
}

impl ProjectorStatus {
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.load(Ordering::Acquire)
    }

    pub fn applied_since_start(&self) -> u64 {
        self.applied_since_start.load(Ordering::Acquire)
    }

    /// Waits until the projection includes `offset`, at most `timeout`. Used by API handlers
    /// so a client reads its own writes (create a user, then give it a key).
    pub async fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.applied_watch.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= offset))
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    }
}

/// Starts `projector` on its own thread. It stops when `stop` is set, after its current chunk.
pub fn spawn<P: Projector>(
    mut projector: P,
    db: Arc<Db>,
    writer: Writer,
    stop: Arc<AtomicBool>,
) -> Result<(Arc<ProjectorStatus>, JoinHandle<()>), JournalError> {
    let name = projector.name();
    let start = reader::checkpoint(&db, name)?;
    let (applied_watch, _) = tokio::sync::watch::channel(start);
    let status = Arc::new(ProjectorStatus {
        name,
        checkpoint: AtomicU64::new(start),
        applied_since_start: AtomicU64::new(0),
        applied_watch,
    });
    let thread_status = status.clone();
    let waker = writer.wakers().subscribe();
    tracing::info!(projector = name, checkpoint = start, "projector resuming");
    let handle = std::thread::Builder::new()
        .name(format!("projector-{name}"))
        .spawn(move || {
            let mut checkpoint = start;
            // State applied but not committed must never be applied again: after a failed
            // commit, or when the writer reopened the database (relaxed commits of the old
            // generation may be gone), reload from the tables before the next chunk.
            let mut generation = db.generation();
            let mut needs_reload = false;
            let mut failing = false;
            while !stop.load(Ordering::Acquire) {
                if needs_reload || db.generation() != generation {
                    let now = db.generation();
                    match projector.reload(&db).and_then(|_| reader::checkpoint(&db, name)) {
                        Ok(cp) => {
                            checkpoint = cp;
                            generation = now;
                            needs_reload = false;
                            thread_status.checkpoint.store(cp, Ordering::Release);
                        }
                        Err(e) => {
                            if !std::mem::replace(&mut failing, true) {
                                tracing::error!(projector = name, error = %e, "projector reload failed; retrying");
                            }
                            std::thread::sleep(RETRY_BACKOFF);
                            continue;
                        }
                    }
                }
                if checkpoint >= writer.head() {
                    let _ = waker.recv_timeout(IDLE_POLL);
                    continue;
                }
                match run_chunk(&mut projector, &db, &writer, checkpoint) {
                    Ok(last) => {
                        failing = false;
                        thread_status
                            .applied_since_start
                            .fetch_add(last - checkpoint, Ordering::AcqRel);
                        checkpoint = last;
                        thread_status.checkpoint.store(last, Ordering::Release);
                        thread_status.applied_watch.send_replace(last);
                    }
                    Err(e) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(projector = name, error = %e, "projector chunk failed; reloading");
                        }
                        std::thread::sleep(RETRY_BACKOFF);
                        needs_reload = true;
                    }
                }
            }
            tracing::debug!(projector = name, checkpoint, "projector stopped");
        })
        .expect("spawn projector thread");
    Ok((status, handle))
}

/// Applies the next chunk after `checkpoint` and commits it; returns the new checkpoint.
fn run_chunk<P: Projector>(
    projector: &mut P,
    db: &Db,
    writer: &Writer,
    checkpoint: u64,
) -> Result<u64, JournalError> {
    let mut last = checkpoint;
    reader::scan_from(db, checkpoint + 1, CHUNK_ENTRIES, |entry| {
        // The journal is gapless; a projector that saw a gap would silently lose state.
        assert_eq!(entry.offset, last + 1, "journal gap seen by a projector");
        projector.apply(&entry);
        last = entry.offset;
        true
    })?;
    if last == checkpoint {
        return Ok(checkpoint);
    }
    let writes = projector.take_writes();
    let name = projector.name();
    let commit: WriteFn = Box::new(move |txn: &WriteTransaction| {
        if let Some(w) = writes {
            w(txn)?;
        }
        txn.open_table(CHECKPOINTS)?.insert(name, last)?;
        Ok(())
    });
    // Relaxed: a crash loses only a suffix of projector commits, which it re-derives.
    writer.apply_blocking(commit, Sync::Relaxed)?;
    projector.on_durable();
    Ok(last)
}

/// Deletes every projection's tables and checkpoints (offline), so the next start rebuilds
/// them from the journal. The journal itself is untouched.
pub fn wipe_all(db: &Db) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    registry::wipe(&txn)?;
    hooks::wipe(&txn)?;
    customers::wipe(&txn)?;
    {
        let mut checkpoints = txn.open_table(CHECKPOINTS)?;
        checkpoints.remove(registry::NAME)?;
        checkpoints.remove(hooks::NAME)?;
        checkpoints.remove(customers::NAME)?;
    }
    txn.commit()?;
    Ok(())
}
