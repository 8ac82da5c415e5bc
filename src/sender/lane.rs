//! A lane: the delivery loop of one active push hook. It reads the hook's sequence from its
//! cursor in a bounded window, dispatches deliveries by the hook's ordering mode (`strict`: one
//! at a time; `entity`: one at a time per `data.id`; `none`: any), at most `max_in_flight` at
//! once, and moves the cursor over the contiguous prefix of final deliveries only — so a crash
//! never skips a sequence, and redelivers at most what was in flight.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::journal::Db;
use tokio::task::JoinSet;

use super::attempt::{self, Outcome};
use super::client::HttpClient;
use super::progress::{read_deliveries, DeliveryRecord, DeliveryStatus, Progress};
use super::retry::RetryPolicy;
use super::signing::SigningKeyFile;
use crate::clock;
use crate::config::Delivery;
use crate::domain::internal::{self, HookState, HookStateChange, Ordering};
use crate::domain::outgoing::Outgoing;
use crate::journal::{reader, Envelope, JournalError, NewEvent, Origin, Writer};
use crate::projectors::hooks::{self, Hooks};
use crate::projectors::registry::Registry;
use crate::shutdown::Shutdown;

/// Sequences loaded beyond the cursor at most (bounds memory per hook, and how far `entity`
/// ordering can run ahead of one stuck entity).
const WINDOW: usize = 1024;
/// A lane re-checks its hook at least this often, even without a wake-up.
const IDLE_RECHECK: Duration = Duration::from_secs(2);
/// In-flight HTTP attempts get this long to finish when the lane stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// Everything a lane and its deliveries need.
pub struct LaneCtx {
    pub hook_id: String,
    pub db: Arc<Db>,
    pub writer: Writer,
    pub hooks: Arc<Hooks>,
    pub registry: Registry,
    pub client: Arc<HttpClient>,
    pub signing: Arc<SigningKeyFile>,
    pub outgoing: Arc<Outgoing>,
    pub progress: Arc<Progress>,
    pub policy: Arc<RetryPolicy>,
    pub delivery: Arc<Delivery>,
    pub shutdown: Shutdown,
    /// Notes the customers sent, for loop protection.
    pub loops: Arc<crate::loops::LoopGuard>,
}

struct Slot {
    envelope: Arc<Envelope>,
    entity: String,
    prior: Option<DeliveryRecord>,
    state: SlotState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Waiting,
    InFlight,
    Done,
}

pub async fn run(ctx: Arc<LaneCtx>) {
    let signal = ctx.hooks.signal(&ctx.hook_id);
    let mut config_changes = ctx.hooks.config_changes();
    let mut shutdown = ctx.shutdown.clone();
    let mut cursor = ctx.progress.get(&ctx.hook_id).cursor_sequence;
    let mut loaded_to = cursor;
    let mut window: BTreeMap<u64, Slot> = BTreeMap::new();
    let mut tasks: JoinSet<(u64, Outcome)> = JoinSet::new();
    tracing::debug!(hook = %ctx.hook_id, cursor, "lane started");
    // Runs while the hook is active and the daemon is not stopping.
    while let Some(hook) = ctx
        .hooks
        .get(&ctx.hook_id)
        .filter(|h| h.state == HookState::Active && !shutdown.is_fired())
    {
        let head = signal.head();
        if loaded_to < head && window.len() < WINDOW {
            match load(&ctx, loaded_to + 1, WINDOW - window.len()).await {
                Ok(slots) => {
                    for (seq, mut slot) in slots {
                        // Deliveries already final before a restart pass without being sent
                        // again (decided once, here: a loaded slot's prior record is fixed).
                        if slot.state == SlotState::Waiting
                            && slot.prior.as_ref().is_some_and(|p| p.status.is_final())
                        {
                            slot.state = SlotState::Done;
                        }
                        loaded_to = seq;
                        window.insert(seq, slot);
                    }
                }
                Err(e) => {
                    tracing::warn!(hook = %ctx.hook_id, error = %e, "lane could not read its entries");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        if advance_cursor(&ctx, &mut window, &mut cursor).await {
            continue;
        }
        dispatch(&ctx, hook.ordering, &mut window, &mut tasks);
        tokio::select! {
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let Ok((seq, outcome)) = joined else { continue };
                if let Some(stop) = settle(&ctx, &mut window, seq, outcome).await {
                    advance_cursor(&ctx, &mut window, &mut cursor).await;
                    change_state(&ctx, stop.0, stop.1).await;
                    break;
                }
            }
            _ = signal.notify.notified() => {}
            _ = config_changes.changed() => {}
            _ = tokio::time::sleep(IDLE_RECHECK) => {}
            _ = shutdown.wait() => break,
        }
    }
    // Let in-flight HTTP attempts finish (retry waits end at once on shutdown), then record.
    let drain = async {
        while let Some(joined) = tasks.join_next().await {
            if let Ok((seq, outcome)) = joined {
                let _ = settle(&ctx, &mut window, seq, outcome).await;
            }
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tasks.abort_all();
    }
    advance_cursor(&ctx, &mut window, &mut cursor).await;
    tracing::debug!(hook = %ctx.hook_id, cursor, "lane stopped");
}

/// Starts deliveries allowed by the ordering mode and the in-flight limit.
fn dispatch(
    ctx: &Arc<LaneCtx>,
    ordering: Ordering,
    window: &mut BTreeMap<u64, Slot>,
    tasks: &mut JoinSet<(u64, Outcome)>,
) {
    let max_in_flight = match ordering {
        Ordering::Strict => 1,
        Ordering::Entity | Ordering::None => ctx.delivery.max_in_flight.clamp(1, 16),
    };
    let mut busy_entities: HashSet<&str> = HashSet::new();
    let mut start = Vec::new();
    let mut in_flight = tasks.len();
    for (seq, slot) in window.iter() {
        if slot.state == SlotState::Done {
            continue;
        }
        match ordering {
            Ordering::Strict => {
                if slot.state == SlotState::Waiting && in_flight == 0 {
                    start.push(*seq);
                }
                break;
            }
            Ordering::Entity => {
                // An earlier unfinished delivery of the same entity holds this one back.
                if !busy_entities.insert(slot.entity.as_str()) {
                    continue;
                }
            }
            Ordering::None => {}
        }
        if in_flight >= max_in_flight {
            break;
        }
        if slot.state == SlotState::Waiting {
            start.push(*seq);
            in_flight += 1;
        }
    }
    for seq in start {
        let slot = window.get_mut(&seq).expect("slot exists");
        slot.state = SlotState::InFlight;
        let (ctx, envelope, prior) = (ctx.clone(), slot.envelope.clone(), slot.prior.take());
        tasks.spawn(async move { (seq, attempt::deliver(ctx, envelope, seq, prior).await) });
    }
}

/// Records an outcome; returns the state the hook must move to, if any.
async fn settle(
    ctx: &LaneCtx,
    window: &mut BTreeMap<u64, Slot>,
    seq: u64,
    outcome: Outcome,
) -> Option<(HookState, String)> {
    let slot = window.get_mut(&seq)?;
    match outcome {
        Outcome::Final(record) => {
            slot.state = SlotState::Done;
            count(ctx, record.status).await;
            ctx.progress.record_delivery(&ctx.hook_id, record).await;
            None
        }
        Outcome::StopHook {
            record,
            state,
            reason,
        } => {
            if record.status.is_final() {
                slot.state = SlotState::Done;
                count(ctx, record.status).await;
            } else {
                slot.state = SlotState::Waiting;
                slot.prior = Some(record.clone());
            }
            ctx.progress.record_delivery(&ctx.hook_id, record).await;
            Some((state, reason))
        }
        Outcome::Cancelled => {
            slot.state = SlotState::Waiting;
            None
        }
    }
}

async fn count(ctx: &LaneCtx, status: DeliveryStatus) {
    ctx.progress
        .update(&ctx.hook_id, |p| match status {
            DeliveryStatus::Succeeded => p.succeeded_total += 1,
            DeliveryStatus::Failed => p.failed_total += 1,
            DeliveryStatus::Skipped => p.skipped_total += 1,
            DeliveryStatus::Pending => {}
        })
        .await;
}

/// Moves the cursor over the contiguous final prefix; true if it moved.
async fn advance_cursor(ctx: &LaneCtx, window: &mut BTreeMap<u64, Slot>, cursor: &mut u64) -> bool {
    let mut moved_to = None;
    while let Some(entry) = window.first_entry() {
        if entry.get().state != SlotState::Done {
            break;
        }
        let (seq, slot) = entry.remove_entry();
        assert_eq!(seq, *cursor + 1, "the cursor moves one sequence at a time");
        *cursor = seq;
        moved_to = Some((seq, slot.envelope.offset));
    }
    let Some((seq, offset)) = moved_to else {
        return false;
    };
    ctx.progress
        .update(&ctx.hook_id, |p| {
            p.cursor_sequence = seq;
            p.cursor_offset = offset;
        })
        .await;
    true
}

/// Loads up to `max` entries from `from`, with their events and any prior delivery records.
async fn load(ctx: &Arc<LaneCtx>, from: u64, max: usize) -> Result<Vec<(u64, Slot)>, JournalError> {
    let db = ctx.db.clone();
    let hook_id = ctx.hook_id.clone();
    tokio::task::spawn_blocking(move || {
        let entries = hooks::read_entries(&db, &hook_id, from, max)?;
        let Some(&(last, _)) = entries.last() else {
            return Ok(Vec::new());
        };
        let mut priors: BTreeMap<u64, DeliveryRecord> =
            read_deliveries(&db, &hook_id, from, last, max)?
                .into_iter()
                .map(|r| (r.sequence, r))
                .collect();
        let offsets: Vec<u64> = entries.iter().map(|(_, offset)| *offset).collect();
        let envelopes = reader::get_many(&db, &offsets)?;
        let mut out = Vec::with_capacity(entries.len());
        for ((seq, _), envelope) in entries.into_iter().zip(envelopes) {
            let entity = envelope.entity_id.clone().unwrap_or_default();
            out.push((
                seq,
                Slot {
                    envelope: Arc::new(envelope),
                    entity,
                    prior: priors.remove(&seq),
                    state: SlotState::Waiting,
                },
            ));
        }
        Ok(out)
    })
    .await
    .map_err(|e| JournalError::Storage(format!("lane load task: {e}")))?
}

/// Journals an engine-made state change of the hook (disabled, suspended).
async fn change_state(ctx: &LaneCtx, state: HookState, reason: String) {
    tracing::warn!(hook = %ctx.hook_id, state = state.name(), %reason, "hook leaves active");
    let change = HookStateChange {
        id: ctx.hook_id.clone(),
        state,
        reason: Some(reason),
        at_ms: clock::now_ms(),
    };
    let event = NewEvent::internal(
        internal::HOOK_STATE_CHANGED,
        &ctx.hook_id,
        &change,
        Origin::default(),
    );
    for attempt in 0..50u32 {
        match ctx.writer.append(vec![event.clone()]).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(hook = %ctx.hook_id, error = %e, attempt, "could not journal the hook state; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
