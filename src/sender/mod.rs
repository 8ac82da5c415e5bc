//! The sender: delivers each active push hook's sequence to its target. Split by concern:
//! [`access`] (may this hook's user receive this event now), [`lane`] (one hook's ordered delivery loop and cursor), [`attempt`] (one delivery: permission
//! re-check, body, signature, POST, retries), [`retry`] (what an answer means, how long to wait),
//! [`signing`] (Standard Webhooks `v1`/`v1a`), [`client`] (hyper over rustls), [`progress`]
//! (cursors and the attempt log, batched through the journal writer), [`resolve`] (the
//! destination policy at connect time) and [`latency`] (the attempt latency histogram of
//! `/metrics`). This file is the
//! supervisor that starts a lane for every active hook and stops them all on shutdown.

pub mod access;
pub mod attempt;
pub mod client;
pub mod lane;
pub mod latency;
pub mod progress;
pub mod resolve;
pub mod retry;
pub mod signing;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::journal::Db;

use crate::config::Config;
use crate::domain::internal::{DeliveryMode, HookState};
use crate::domain::outgoing::Outgoing;
use crate::journal::{JournalError, Writer};
use crate::projectors::hooks::Hooks;
use crate::projectors::registry::Registry;
use crate::shutdown::Shutdown;
use lane::LaneCtx;
use progress::Progress;
use signing::SigningKeyFile;

/// How often the supervisor re-checks for hooks without a running lane.
const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

pub struct SenderParts {
    pub db: Arc<Db>,
    pub writer: Writer,
    pub hooks: Arc<Hooks>,
    pub registry: Registry,
    pub signing: Arc<SigningKeyFile>,
    pub outgoing: Arc<Outgoing>,
    pub progress: Arc<Progress>,
    pub config: Arc<Config>,
    pub destinations: resolve::Destinations,
    pub loops: Arc<crate::loops::LoopGuard>,
}

/// Runs until `shutdown` fires, then waits for every lane to drain.
pub async fn run(parts: SenderParts, shutdown: Shutdown) {
    let delivery = Arc::new(parts.config.delivery.clone());
    let client = Arc::new(client::HttpClient::new(
        Duration::from_millis(delivery.connect_timeout_ms),
        Duration::from_millis(delivery.timeout_ms),
        parts.destinations.clone(),
    ));
    let policy = Arc::new(retry::RetryPolicy::new(delivery.retry_schedule_ms.clone()));
    let mut lanes: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut changes = parts.hooks.config_changes();
    let mut stop = shutdown.clone();
    loop {
        lanes.retain(|_, handle| !handle.is_finished());
        for (id, hook) in parts.hooks.snapshot().iter() {
            let wanted = hook.state == HookState::Active && hook.delivery == DeliveryMode::Push;
            if !wanted || lanes.contains_key(id) {
                continue;
            }
            let ctx = Arc::new(LaneCtx {
                hook_id: id.clone(),
                db: parts.db.clone(),
                writer: parts.writer.clone(),
                hooks: parts.hooks.clone(),
                registry: parts.registry.clone(),
                client: client.clone(),
                signing: parts.signing.clone(),
                outgoing: parts.outgoing.clone(),
                progress: parts.progress.clone(),
                policy: policy.clone(),
                delivery: delivery.clone(),
                shutdown: shutdown.clone(),
                loops: parts.loops.clone(),
            });
            lanes.insert(id.clone(), tokio::spawn(lane::run(ctx)));
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(RESCAN_INTERVAL) => {}
            _ = stop.wait() => break,
        }
    }
    for (_, handle) in lanes {
        let _ = tokio::time::timeout(lane::DRAIN_TIMEOUT + Duration::from_secs(1), handle).await;
    }
}

/// Loads (or creates) the daemon's ed25519 signing key in the data dir.
pub fn load_signing_key(config: &Config) -> Result<SigningKeyFile, JournalError> {
    SigningKeyFile::load_or_create(&config.data_dir)
        .map_err(|e| JournalError::Storage(format!("signing key: {e}")))
}
