//! The replay worker: for each replay still scanning, and only while its hook's lag is small,
//! scans the next slice of the range and appends a `internal.replay_batch` of the matches. The
//! hooks projector turns a batch into new sequences; the hook's lane (or pull consumer) delivers
//! them like any other. Live events keep flowing: they enter the same sequence between batches.

use std::sync::Arc;
use std::time::Duration;

use crate::journal::Db;

use super::scan;
use crate::clock;
use crate::domain::internal::{self, ReplayBatch};
use crate::journal::{NewEvent, Origin, Writer};
use crate::projectors::hooks::Hooks;
use crate::projectors::registry::Registry;
use crate::projectors::ProjectorStatus;
use crate::sender::progress::Progress;
use crate::shutdown::Shutdown;

/// A replay waits while its hook has more than this many undelivered sequences.
pub const MAX_LAG_FOR_REPLAY: u64 = 1000;
/// Journal entries scanned per batch at most.
const SCAN_SLICE: usize = 50_000;
/// Matches per batch at most.
const BATCH_MATCHES: usize = 500;
/// Pause between rounds.
const TICK: Duration = Duration::from_millis(20);
const WAIT_FOR_PROJECTION: Duration = Duration::from_secs(5);

pub struct ReplayParts {
    pub db: Arc<Db>,
    pub writer: Writer,
    pub hooks: Arc<Hooks>,
    pub hooks_status: Arc<ProjectorStatus>,
    pub registry: Registry,
    pub progress: Arc<Progress>,
}

pub async fn run(parts: ReplayParts, mut shutdown: Shutdown) {
    loop {
        let mut worked = false;
        for row in parts.hooks.replays().values().filter(|r| r.scanning()) {
            if shutdown.is_fired() {
                return;
            }
            let Some(hook) = parts.hooks.get(&row.hook_id) else {
                continue;
            };
            let lag = parts
                .hooks
                .head_sequence(&hook.id)
                .saturating_sub(parts.progress.get(&hook.id).cursor_sequence);
            if lag > MAX_LAG_FOR_REPLAY {
                continue;
            }
            let db = parts.db.clone();
            let registry = parts.registry.snapshot();
            let (from, to) = (row.scanned_through + 1, row.to_offset);
            let scanned = tokio::task::spawn_blocking(move || {
                scan::scan(&db, &registry, &hook, from, to, SCAN_SLICE, BATCH_MATCHES)
            })
            .await;
            let scanned = match scanned {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(replay = %row.replay_id, error = %e, "replay scan failed");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(replay = %row.replay_id, error = %e, "replay scan task failed");
                    continue;
                }
            };
            if scanned.offsets.is_empty() && scanned.scanned_through <= row.scanned_through {
                continue; // No progress possible (nothing more in the journal yet).
            }
            let batch = ReplayBatch {
                replay_id: row.replay_id.clone(),
                hook_id: row.hook_id.clone(),
                offsets: scanned.offsets,
                scanned_through: scanned.scanned_through.max(row.scanned_through),
                at_ms: clock::now_ms(),
            };
            let event = NewEvent::internal(
                internal::REPLAY_BATCH,
                &row.hook_id,
                &batch,
                Origin::default(),
            );
            match parts.writer.append(vec![event]).await {
                Ok(outcome) => {
                    let offset = outcome.last().map(|o| o.offset).unwrap_or(0);
                    parts
                        .hooks_status
                        .wait_for(offset, WAIT_FOR_PROJECTION)
                        .await;
                    worked = true;
                }
                Err(e) => {
                    tracing::warn!(replay = %row.replay_id, error = %e, "replay batch not written")
                }
            }
        }
        if !worked {
            tokio::select! {
                _ = tokio::time::sleep(TICK * 5) => {}
                _ = shutdown.wait() => return,
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.wait() => return,
            }
        }
    }
}
