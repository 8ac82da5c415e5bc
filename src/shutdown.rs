//! Graceful shutdown as a first-class piece: one [`ShutdownSignal`] is fired (by SIGTERM, SIGINT
//! or a caller), and every task holding a [`Shutdown`] listener sees it. The daemon then stops
//! accepting, lets in-flight requests finish their commits, stops projectors, drains the writer.

use tokio::sync::watch;

#[derive(Clone)]
pub struct ShutdownSignal(watch::Sender<bool>);

#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownSignal, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownSignal(tx), Shutdown(rx))
}

impl ShutdownSignal {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }

    pub fn listener(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal has fired.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

/// Fires `signal` on the first SIGTERM or SIGINT.
pub async fn fire_on_os_signal(signal: ShutdownSignal) {
    use tokio::signal::unix::{signal as unix_signal, SignalKind};
    let mut term = match unix_signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            return;
        }
    };
    let mut int = match unix_signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGINT handler");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    signal.fire();
}
