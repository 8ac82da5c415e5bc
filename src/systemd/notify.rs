//! The sd_notify protocol (sd_notify(3)), without libsystemd: one datagram of `KEY=value`
//! lines to the Unix socket named by `$NOTIFY_SOCKET` — a path, or an abstract name when it
//! starts with `@`. The watchdog interval comes from `$WATCHDOG_USEC`, and applies only to the
//! process `$WATCHDOG_PID` names (when set), as libsystemd's `sd_watchdog_enabled` does.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Longest message we send; real ones are a few dozen bytes.
const MAX_MESSAGE_BYTES: usize = 4096;
/// Shortest watchdog interval we honour (a typo like `WATCHDOG_USEC=10` must not spin).
const MIN_WATCHDOG: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET {0:?} is not a usable socket address (a path or @abstract-name)")]
    BadAddress(String),
    #[error("sd_notify message is longer than {MAX_MESSAGE_BYTES} bytes")]
    TooLong,
    #[error("sd_notify socket: {0}")]
    Io(#[from] std::io::Error),
}

/// A connection-less sender to systemd's notify socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; None when the variable is unset or empty (not
    /// started by systemd).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => {
                let text = v
                    .to_str()
                    .ok_or_else(|| NotifyError::BadAddress(v.to_string_lossy().into_owned()))?;
                Notifier::new(text).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// `target` as `$NOTIFY_SOCKET` spells it: `/path` or `@abstract`.
    pub fn new(target: &str) -> Result<Notifier, NotifyError> {
        let bad = || NotifyError::BadAddress(target.to_string());
        let addr = if let Some(name) = target.strip_prefix('@') {
            SocketAddr::from_abstract_name(name.as_bytes()).map_err(|_| bad())?
        } else if target.starts_with('/') {
            SocketAddr::from_pathname(target).map_err(|_| bad())?
        } else {
            return Err(bad());
        };
        let socket = UnixDatagram::unbound()?;
        // Sent from async tasks: a full receive queue must fail the send, not block a thread.
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, addr })
    }

    /// Sends `state` (newline-separated `KEY=value` lines).
    pub fn notify(&self, state: &str) -> Result<(), NotifyError> {
        if state.len() > MAX_MESSAGE_BYTES {
            return Err(NotifyError::TooLong);
        }
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// How often to send WATCHDOG=1: half of `$WATCHDOG_USEC` (systemd's advice), or None when no
/// watchdog is asked of this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some((Duration::from_micros(usec) / 2).max(MIN_WATCHDOG))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_for_this_process_only() {
        let half = Some(Duration::from_millis(200));
        assert_eq!(watchdog_interval_from(Some("400000"), None, 7), half);
        assert_eq!(watchdog_interval_from(Some("400000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval_from(Some("400000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("400000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(
            watchdog_interval_from(Some("2"), None, 7),
            Some(MIN_WATCHDOG)
        );
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(Notifier::new("/run/systemd/notify").is_ok());
        assert!(Notifier::new("@rev23-test").is_ok());
        assert!(matches!(
            Notifier::new("relative/path"),
            Err(NotifyError::BadAddress(_))
        ));
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(
            Notifier::new(&long),
            Err(NotifyError::BadAddress(_))
        ));
    }

    #[test]
    fn sends_one_datagram_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        n.notify("READY=1\nSTATUS=up").unwrap();
        let mut buf = [0u8; 64];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
        assert!(matches!(
            n.notify(&"x".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(NotifyError::TooLong)
        ));
    }
}
