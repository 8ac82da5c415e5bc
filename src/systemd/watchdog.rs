//! The systemd watchdog: every half `WatchdogSec`, WATCHDOG=1 — but only when the journal
//! writer committed an (empty, durable) transaction within the tick and the sender supervisor
//! is still running. A writer stuck on a dead disk or a sender that died thus stops the pings,
//! and systemd restarts the daemon (`Restart=on-failure`); a daemon that is merely slow keeps
//! pinging.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::notify::Notifier;
use crate::journal::{JournalError, Writer};
use crate::shutdown::Shutdown;

/// What the watchdog checks before each ping.
pub struct Liveness {
    pub writer: Writer,
    /// Cleared when the sender supervisor's task ends (returns or panics).
    pub sender_alive: Arc<AtomicBool>,
}

/// Clears `flag` when dropped: moved into a task, it reports that the task ended, even by panic.
pub struct AliveGuard(pub Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Pings every `interval` while alive, until `shutdown` fires (systemd stops watching a unit
/// that is stopping).
pub async fn run(
    notifier: Arc<Notifier>,
    interval: Duration,
    liveness: Liveness,
    mut shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_head = liveness.writer.head();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait() => break,
        }
        let head = liveness.writer.head();
        let alive = check(&liveness, interval / 2, head != last_head).await;
        last_head = head;
        if shutdown.is_fired() {
            break;
        }
        match alive {
            Ok(()) => {
                if let Err(e) = notifier.notify("WATCHDOG=1") {
                    tracing::warn!(error = %e, "cannot send WATCHDOG=1");
                }
            }
            Err(why) => tracing::error!(%why, "not alive: withholding WATCHDOG=1"),
        }
    }
}

/// Ok when the sender runs and the writer commits within `timeout`. A full write queue counts
/// as alive only while the journal head still moves (heavy ingest, not a hang).
async fn check(liveness: &Liveness, timeout: Duration, head_moved: bool) -> Result<(), String> {
    if !liveness.sender_alive.load(Ordering::Acquire) {
        return Err("the sender has stopped".into());
    }
    let ping = liveness.writer.apply(Box::new(|_| Ok(())));
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(JournalError::Busy)) if head_moved => Ok(()),
        Ok(Err(e)) => Err(format!("the journal writer failed a commit: {e}")),
        Err(_) => Err(format!(
            "the journal writer did not commit within {timeout:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::schema;

    #[tokio::test]
    async fn alive_only_while_the_sender_runs_and_the_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(schema::open(dir.path(), 1 << 20).unwrap());
        let (writer, thread) = Writer::start(db, 0, 0, 0);
        let sender_alive = Arc::new(AtomicBool::new(true));
        let liveness = Liveness {
            writer: writer.clone(),
            sender_alive: sender_alive.clone(),
        };
        let timeout = Duration::from_secs(10);
        assert_eq!(check(&liveness, timeout, false).await, Ok(()));

        // The sender's task ended: its guard cleared the flag.
        drop(AliveGuard(sender_alive.clone()));
        assert!(check(&liveness, timeout, false)
            .await
            .unwrap_err()
            .contains("sender"));
        sender_alive.store(true, Ordering::Release);

        // The writer is gone: no commit, no ping.
        writer.stop();
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
        assert!(check(&liveness, timeout, false)
            .await
            .unwrap_err()
            .contains("journal writer"));
    }
}
