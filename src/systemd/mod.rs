//! Running under systemd as `Type=notify`: [`notify`] speaks the sd_notify protocol (READY=1,
//! WATCHDOG=1, STOPPING=1 to `$NOTIFY_SOCKET`), and [`watchdog`] sends WATCHDOG=1 only while the
//! parts that must not hang — the journal writer and the sender — show they are alive, so
//! systemd restarts a wedged daemon. Outside systemd (no `$NOTIFY_SOCKET`) both do nothing.

pub mod notify;
pub mod watchdog;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::journal::Writer;
use crate::shutdown::Shutdown;

/// Called once the journal is open, projectors caught up and the listener bound: sends
/// READY=1, starts the watchdog when systemd asked for one, and sends STOPPING=1 when
/// `shutdown` fires. Notification failures are logged, never fatal.
pub fn announce_ready(
    status: &str,
    writer: Writer,
    sender_alive: Arc<AtomicBool>,
    shutdown: Shutdown,
) {
    let notifier = match notify::Notifier::from_env() {
        Ok(Some(n)) => Arc::new(n),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot notify systemd");
            return;
        }
    };
    // STATUS is one line: keep it so whatever `status` holds.
    let status = status.replace('\n', " ");
    if let Err(e) = notifier.notify(&format!("READY=1\nSTATUS={status}")) {
        tracing::warn!(error = %e, "cannot send READY=1");
    }
    if let Some(interval) = notify::watchdog_interval() {
        tracing::info!(?interval, "systemd watchdog enabled");
        tokio::spawn(watchdog::run(
            notifier.clone(),
            interval,
            watchdog::Liveness {
                writer,
                sender_alive,
            },
            shutdown.clone(),
        ));
    }
    let mut shutdown = shutdown;
    tokio::spawn(async move {
        shutdown.wait().await;
        if let Err(e) = notifier.notify("STOPPING=1\nSTATUS=draining and stopping") {
            tracing::warn!(error = %e, "cannot send STOPPING=1");
        }
    });
}
