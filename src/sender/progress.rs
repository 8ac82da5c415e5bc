//! Delivery progress: each hook's cursor and counters, and the attempt log. Lanes update the
//! in-memory copy (which the API reads) and queue the changed rows; one recorder task folds them
//! into batched writes through the journal writer, so thousands of deliveries a second cost a
//! handful of commits. A cursor row is written only after the deliveries it passes are final.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::journal::Db;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::latency::LatencyHistogram;
use crate::journal::{JournalError, WriteFn, Writer};

/// `hook id → JSON HookProgress`.
pub(crate) const HOOK_PROGRESS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("hook_progress");
/// `(hook id, sequence) → JSON DeliveryRecord`.
pub(crate) const HOOK_DELIVERIES: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("hook_deliveries");

/// Updates queued for the recorder at most; lanes wait (back-pressure) beyond it.
const QUEUE_CAPACITY: usize = 16_384;
/// Rows per write transaction at most.
const MAX_BATCH_ROWS: usize = 4096;
/// How long the recorder gathers rows before writing.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Attempts kept per delivery in the log (the schedule has 8; resends add more).
pub const MAX_ATTEMPTS_KEPT: usize = 20;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct HookProgress {
    /// Every sequence ≤ this is final (succeeded, failed or skipped).
    pub cursor_sequence: u64,
    pub cursor_offset: u64,
    pub consecutive_failures: u32,
    pub last_success_at_ms: Option<i64>,
    pub last_failure_at_ms: Option<i64>,
    pub next_attempt_at_ms: Option<i64>,
    /// First failure since the last success (drives disabling after `disable_after_ms`).
    pub failing_since_ms: Option<i64>,
    pub succeeded_total: u64,
    pub failed_total: u64,
    pub skipped_total: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    Skipped,
}

impl DeliveryStatus {
    pub fn is_final(self) -> bool {
        self != DeliveryStatus::Pending
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        match text {
            "pending" => Some(DeliveryStatus::Pending),
            "succeeded" => Some(DeliveryStatus::Succeeded),
            "failed" => Some(DeliveryStatus::Failed),
            "skipped" => Some(DeliveryStatus::Skipped),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub at_ms: i64,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub sequence: u64,
    pub event_id: String,
    pub offset: u64,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    /// Attempts made in all (the log keeps the last `MAX_ATTEMPTS_KEPT`).
    pub attempt_count: u32,
    pub next_attempt_at_ms: Option<i64>,
    pub reason: Option<String>,
}

enum Row {
    Progress(String, HookProgress),
    Delivery(String, DeliveryRecord),
    /// Write what is pending and exit (after every lane stopped).
    Stop,
}

/// Shared progress state; cheap to clone via `Arc`.
pub struct Progress {
    hooks: Mutex<HashMap<String, HookProgress>>,
    tx: mpsc::Sender<Row>,
    writer: Writer,
    /// Every HTTP attempt's latency since start (for `/metrics`).
    pub latency: LatencyHistogram,
}

impl Progress {
    /// Loads all hooks' progress and starts the recorder task (on the current runtime).
    pub fn start(
        db: &Db,
        writer: Writer,
    ) -> Result<(Arc<Progress>, tokio::task::JoinHandle<()>), JournalError> {
        let hooks = load_all(db)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let progress = Arc::new(Progress {
            hooks: Mutex::new(hooks),
            tx,
            writer: writer.clone(),
            latency: LatencyHistogram::default(),
        });
        let recorder = tokio::spawn(record(rx, writer));
        Ok((progress, recorder))
    }

    pub fn get(&self, hook_id: &str) -> HookProgress {
        self.hooks
            .lock()
            .expect("progress lock")
            .get(hook_id)
            .cloned()
            .unwrap_or_default()
    }

    /// A copy of every hook's progress, deleted hooks included (their counters still count).
    pub fn all(&self) -> HashMap<String, HookProgress> {
        self.hooks.lock().expect("progress lock").clone()
    }

    /// Changes a hook's progress and queues the new row.
    pub async fn update(&self, hook_id: &str, change: impl FnOnce(&mut HookProgress)) {
        let row = {
            let mut hooks = self.hooks.lock().expect("progress lock");
            let p = hooks.entry(hook_id.to_string()).or_default();
            change(p);
            p.clone()
        };
        let _ = self.tx.send(Row::Progress(hook_id.to_string(), row)).await;
    }

    pub async fn record_delivery(&self, hook_id: &str, record: DeliveryRecord) {
        let _ = self
            .tx
            .send(Row::Delivery(hook_id.to_string(), record))
            .await;
    }

    /// Changes a hook's progress and writes the row durably before returning (pull acks).
    pub async fn commit_now(
        &self,
        hook_id: &str,
        change: impl FnOnce(&mut HookProgress),
    ) -> Result<(), JournalError> {
        let row = {
            let mut hooks = self.hooks.lock().expect("progress lock");
            let p = hooks.entry(hook_id.to_string()).or_default();
            change(p);
            p.clone()
        };
        let id = hook_id.to_string();
        let bytes = serde_json::to_vec(&row).expect("progress rows serialise");
        self.writer
            .apply(Box::new(move |txn: &WriteTransaction| {
                txn.open_table(HOOK_PROGRESS)?
                    .insert(id.as_str(), bytes.as_slice())?;
                Ok(())
            }))
            .await
    }

    /// Asks the recorder to write what it holds and exit.
    pub async fn stop(&self) {
        let _ = self.tx.send(Row::Stop).await;
    }
}

/// Serialised rows waiting for a commit, by key (a later row replaces an earlier one).
#[derive(Default, Clone)]
struct Batch {
    progress: BTreeMap<String, Vec<u8>>,
    deliveries: BTreeMap<(String, u64), Vec<u8>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.progress.len() + self.deliveries.len()
    }

    /// Folds a row in; false for `Stop`.
    fn add(&mut self, row: Row) -> bool {
        match row {
            Row::Progress(id, p) => {
                let bytes = serde_json::to_vec(&p).expect("progress rows serialise");
                self.progress.insert(id, bytes);
            }
            Row::Delivery(id, d) => {
                let bytes = serde_json::to_vec(&d).expect("delivery rows serialise");
                self.deliveries.insert((id, d.sequence), bytes);
            }
            Row::Stop => return false,
        }
        true
    }
}

/// First wait after a failed write (the disk is full, say); doubles up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

async fn record(mut rx: mpsc::Receiver<Row>, writer: Writer) {
    let mut batch = Batch::default();
    let mut closed = false;
    let mut backoff = RETRY_MIN;
    loop {
        if batch.len() == 0 {
            if closed {
                break;
            }
            match rx.recv().await {
                Some(row) => closed = !batch.add(row),
                None => break,
            }
        }
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        while !closed && batch.len() < MAX_BATCH_ROWS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(row)) => closed = !batch.add(row),
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        if batch.len() == 0 {
            continue;
        }
        let rows = Arc::new(std::mem::take(&mut batch));
        let written = rows.clone();
        // Delivery rows first in the same transaction as the cursor that passes them.
        let write: WriteFn = Box::new(move |txn: &WriteTransaction| {
            let mut t = txn.open_table(HOOK_DELIVERIES)?;
            for ((id, seq), bytes) in &written.deliveries {
                t.insert((id.as_str(), *seq), bytes.as_slice())?;
            }
            let mut t = txn.open_table(HOOK_PROGRESS)?;
            for (id, bytes) in &written.progress {
                t.insert(id.as_str(), bytes.as_slice())?;
            }
            Ok(())
        });
        match writer.apply(write).await {
            Ok(()) => backoff = RETRY_MIN,
            Err(JournalError::Closed) => break,
            Err(e) => {
                // Keep the rows (newer ones arriving meanwhile replace them) and try again:
                // until written, the cursor on disk stays behind, so a crash now redelivers
                // rather than skips (at-least-once).
                if backoff == RETRY_MIN {
                    tracing::error!(error = %e, "recording delivery progress failed; retrying");
                }
                batch = Arc::try_unwrap(rows).unwrap_or_else(|shared| (*shared).clone());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

fn load_all(db: &Db) -> Result<HashMap<String, HookProgress>, JournalError> {
    let txn = db.begin_read()?;
    let mut out = HashMap::new();
    match txn.open_table(HOOK_PROGRESS) {
        Ok(table) => {
            for item in table.iter()? {
                let (k, v) = item?;
                let p: HookProgress = serde_json::from_slice(v.value())
                    .map_err(|e| JournalError::Corrupt(format!("hook progress row: {e}")))?;
                out.insert(k.value().to_string(), p);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(out)
}

/// Delivery records of `hook_id` with sequence in `from..=to`.
pub fn read_deliveries(
    db: &Db,
    hook_id: &str,
    from: u64,
    to: u64,
    max: usize,
) -> Result<Vec<DeliveryRecord>, JournalError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(HOOK_DELIVERIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in table.range((hook_id, from)..=(hook_id, to))? {
        if out.len() >= max {
            break;
        }
        let (_, v) = item?;
        let record: DeliveryRecord = serde_json::from_slice(v.value())
            .map_err(|e| JournalError::Corrupt(format!("delivery row: {e}")))?;
        out.push(record);
    }
    Ok(out)
}
