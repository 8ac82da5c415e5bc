//! Retention: trims public journal entries that are older than `retention.min_age_ms` *and*
//! behind every hook's cursor (push and pull cursors both live in the sender's progress), every
//! pending replay and every projector. A hook that is not active (paused, disabled, suspended,
//! awaiting approval) holds its backlog for `max_hold_ms` after its last change; then its
//! `state_reason` becomes `retention_expired` and it no longer holds.
//!
//! Trimming keeps the entry's offset and replaces it with a small tombstone: the same type,
//! assigned user and times, with no data, no id and no entity. Its id leaves the id index and its
//! type-index row goes, so reads (`GET /v1/events`, triggers, polling) no longer see it, and a
//! delivery that reaches one (a resumed expired hook, a resend) is skipped as
//! `retention_removed`. The tombstone is what lets a rebuilt hooks projection number every hook's
//! sequence exactly as before (matching needs only the type and the assigned user), so cursors
//! stay valid. Internal entries (users, keys, hooks, replays) are never trimmed. Release-form
//! files stay in the blob table (they are shared by content and not reference-counted).
//! Every trim is one bounded transaction through the journal writer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};

use crate::api::AppState;
use crate::clock;
use crate::domain::internal::{self, HookState, HookStateChange};
use crate::journal::codec::{self, Envelope};
use crate::journal::schema::{EVENTS_BY_TYPE, EVENT_IDS, JOURNAL};
use crate::journal::{JournalError, NewEvent, Origin};
use crate::projectors::hooks;
use crate::shutdown::Shutdown;

/// Journal entries examined per trimming transaction at most.
pub const MAX_BATCH_ENTRIES: usize = 10_000;
/// Payload bytes read into one trimming transaction at most.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// Trimming transactions per round at most (then the next round goes on).
const MAX_BATCHES_PER_ROUND: usize = 100;
/// A hook's pending entries examined for its oldest held offset; beyond, it holds everything.
const MAX_PENDING_SCAN: usize = 100_000;
/// The `state_reason` of a hook that stopped holding entries.
pub const RETENTION_EXPIRED: &str = "retention_expired";
const WAIT_FOR_PROJECTION: Duration = Duration::from_secs(5);

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Entries below this offset could be trimmed (what every holder has passed).
    pub horizon: u64,
    pub trimmed: u64,
}

/// Whether a journal entry is a trimmed tombstone (public events always carry a `data` object).
pub fn is_tombstone(envelope: &Envelope) -> bool {
    envelope.payload.is_empty() && !internal::is_internal(&envelope.kind)
}

/// Runs rounds every `check_interval_ms` until shutdown; does nothing when `min_age_ms` is 0.
pub async fn run(state: Arc<AppState>, mut shutdown: Shutdown) {
    let config = state.config.retention.clone();
    if config.min_age_ms == 0 {
        return;
    }
    let interval = Duration::from_millis(config.check_interval_ms.max(1));
    // Everything at or below is internal or trimmed already (in memory: a restart rescans).
    let mut done_through = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait() => return,
        }
        match round(&state, &mut done_through).await {
            Ok(r) if r.trimmed > 0 => {
                tracing::info!(
                    trimmed = r.trimmed,
                    horizon = r.horizon,
                    "retention trimmed"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention round failed"),
        }
    }
}

/// One round: tell expired hooks, work out the horizon, trim in bounded batches.
pub async fn round(state: &Arc<AppState>, done_through: &mut u64) -> Result<Round, JournalError> {
    let config = &state.config.retention;
    let now = clock::now_ms();
    let cutoff = now.saturating_sub(i64::try_from(config.min_age_ms).unwrap_or(i64::MAX));
    let checkpoint = state
        .projectors
        .iter()
        .map(|p| p.checkpoint())
        .min()
        .unwrap_or(0);
    let mut horizon = checkpoint.saturating_add(1);
    for row in state.hooks.replays().values().filter(|r| r.scanning()) {
        horizon = horizon.min(row.scanned_through.saturating_add(1));
    }
    for hook in state.hooks.snapshot().values() {
        let cursor = state.progress.get(&hook.id).cursor_sequence;
        let head = state.hooks.head_sequence(&hook.id);
        if cursor >= head {
            continue;
        }
        if hook.state != HookState::Active {
            if hook.state_reason.as_deref() == Some(RETENTION_EXPIRED) {
                continue;
            }
            let held_for = now.saturating_sub(hook.updated_at_ms);
            if config.max_hold_ms > 0
                && u64::try_from(held_for).unwrap_or(0) >= config.max_hold_ms
                && tell_expired(state, &hook.id).await?
            {
                continue;
            }
        }
        let db = state.db.clone();
        let id = hook.id.clone();
        let pending = tokio::task::spawn_blocking(move || {
            hooks::read_entries(&db, &id, cursor + 1, MAX_PENDING_SCAN)
        })
        .await
        .map_err(|e| JournalError::Storage(format!("retention task: {e}")))??;
        let complete = head - cursor <= pending.len() as u64;
        let oldest = pending.iter().map(|(_, offset)| *offset).min();
        horizon = match (complete, oldest) {
            (true, Some(offset)) => horizon.min(offset),
            (true, None) => horizon,
            (false, _) => 0,
        };
    }
    let mut out = Round {
        horizon,
        trimmed: 0,
    };
    for _ in 0..MAX_BATCHES_PER_ROUND {
        if *done_through + 1 >= horizon {
            break;
        }
        let (through, trimmed) = trim_batch(state, *done_through + 1, horizon, cutoff).await?;
        out.trimmed += trimmed;
        if through <= *done_through {
            break; // the next entry is too young (or the journal ends)
        }
        *done_through = through;
    }
    Ok(out)
}

/// Journals `retention_expired` as the hook's state reason (its state unchanged), under the
/// hooks lock so a concurrent resume wins. True if the hook no longer holds entries.
async fn tell_expired(state: &Arc<AppState>, hook_id: &str) -> Result<bool, JournalError> {
    let _guard = state.hooks_lock.lock().await;
    let Some(hook) = state.hooks.get(hook_id) else {
        return Ok(false);
    };
    if hook.state == HookState::Active {
        return Ok(false);
    }
    let change = HookStateChange {
        id: hook.id.clone(),
        state: hook.state,
        reason: Some(RETENTION_EXPIRED.to_string()),
        at_ms: clock::now_ms(),
    };
    let event = NewEvent::internal(
        internal::HOOK_STATE_CHANGED,
        &hook.id,
        &change,
        Origin::default(),
    );
    let outcome = state.writer.append(vec![event]).await?;
    let offset = outcome.last().map(|o| o.offset).unwrap_or(0);
    state
        .hooks_status
        .wait_for(offset, WAIT_FOR_PROJECTION)
        .await;
    tracing::warn!(hook = %hook.id, state = hook.state.name(), "retention no longer holds this hook's backlog");
    Ok(true)
}

/// Trims, in one transaction, the public entries from `from` on that are below `horizon` and
/// were appended before `cutoff`, examining at most `MAX_BATCH_ENTRIES`. Returns the last offset
/// examined that needs no more work (or `from - 1`) and how many it trimmed.
async fn trim_batch(
    state: &Arc<AppState>,
    from: u64,
    horizon: u64,
    cutoff: i64,
) -> Result<(u64, u64), JournalError> {
    let result = Arc::new(Mutex::new((from - 1, 0u64)));
    let out = result.clone();
    let write = Box::new(move |txn: &WriteTransaction| -> Result<(), redb::Error> {
        let mut journal = txn.open_table(JOURNAL)?;
        let mut trim: Vec<Envelope> = Vec::new();
        let mut through = from - 1;
        let mut bytes = 0usize;
        for (examined, item) in journal.range(from..horizon)?.enumerate() {
            if examined >= MAX_BATCH_ENTRIES || bytes >= MAX_BATCH_BYTES {
                break;
            }
            let (key, value) = item?;
            let envelope =
                codec::decode(value.value()).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            if envelope.appended_at_ms >= cutoff {
                break; // append times ascend with offsets: the rest is younger
            }
            through = key.value();
            if internal::is_internal(&envelope.kind) || is_tombstone(&envelope) {
                continue;
            }
            bytes += envelope.payload.len();
            trim.push(envelope);
        }
        let mut ids = txn.open_table(EVENT_IDS)?;
        let mut by_type = txn.open_table(EVENTS_BY_TYPE)?;
        let trimmed = trim.len() as u64;
        for e in trim {
            ids.remove(e.id.as_str())?;
            by_type.remove((e.kind.as_str(), e.offset))?;
            let tombstone = Envelope {
                offset: e.offset,
                id: String::new(),
                kind: e.kind,
                timestamp_ms: e.timestamp_ms,
                appended_at_ms: e.appended_at_ms,
                origin: Origin::default(),
                assigned_user_id: e.assigned_user_id,
                entity_id: None,
                payload: Vec::new(),
            };
            let encoded =
                codec::encode(&tombstone).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            journal.insert(tombstone.offset, encoded.as_slice())?;
        }
        *out.lock().expect("retention result") = (through, trimmed);
        Ok(())
    });
    state.writer.apply(write).await?;
    let outcome = *result.lock().expect("retention result");
    Ok(outcome)
}
