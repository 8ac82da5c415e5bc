//! `Type=notify` (SPEC §13) against the real binary, with a fake systemd: a Unix datagram socket
//! bound by the test and named in `NOTIFY_SOCKET` (a path, or `@abstract`). The daemon sends
//! READY=1 once it listens, WATCHDOG=1 every half `WATCHDOG_USEC` (only when `WATCHDOG_PID`,
//! if set, is its own pid), and STOPPING=1 on SIGTERM before it exits 0. A bad `NOTIFY_SOCKET`
//! is logged, not fatal.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Half of it is the ping interval: 200 ms.
const WATCHDOG_USEC: &str = "400000";
const WAIT: Duration = Duration::from_secs(15);

/// Datagrams received until `done` says enough, at most `timeout`.
fn collect(
    socket: &UnixDatagram,
    timeout: Duration,
    mut done: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    got
}

fn has(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

/// Receives every datagram on `socket` in a thread (the kernel queues only a few, and a full
/// queue drops the daemon's next message), until `stop` or `WAIT` twice over.
fn drain(socket: UnixDatagram, stop: Arc<AtomicBool>) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT * 2;
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            let batch = collect(&socket, Duration::from_millis(50), |m| !m.is_empty());
            sink.lock().unwrap().extend(batch);
        }
    });
    (got, handle)
}

/// Waits (bounded) until `done` holds for what `got` has gathered; returns a copy.
fn wait_for(got: &Mutex<Vec<String>>, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    common::wait_until(WAIT, || {
        let now = got.lock().unwrap().clone();
        done(&now).then_some(())
    });
    got.lock().unwrap().clone()
}

#[test]
fn ready_watchdog_and_stopping_reach_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (got, drainer) = drain(socket, stop.clone());
    let mut d = common::start_in_env(
        dir.path(),
        "",
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
        ],
    );
    let seen = wait_for(&got, |m| has(m, "WATCHDOG=1") >= 3);
    assert_eq!(has(&seen, "READY=1"), 1, "one READY=1: {seen:?}");
    assert!(has(&seen, "WATCHDOG=1") >= 3, "watchdog pings: {seen:?}");
    let ready_at = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    let first_ping = seen.iter().position(|m| m == "WATCHDOG=1").unwrap();
    assert!(ready_at < first_ping, "READY=1 comes first: {seen:?}");
    assert!(
        seen[ready_at].contains(&format!("STATUS=listening on {}", d.base_url)),
        "status names the address: {seen:?}"
    );
    assert_eq!(has(&seen, "STOPPING=1"), 0);
    // Ready means serving.
    assert_eq!(d.call("GET", "/healthz", None, None).status, 200);

    assert_eq!(d.stop(), Some(0), "SIGTERM exits 0");
    let all = wait_for(&got, |m| has(m, "STOPPING=1") > 0);
    stop.store(true, Ordering::Release);
    drainer.join().unwrap();
    assert_eq!(has(&all, "STOPPING=1"), 1, "STOPPING=1 on SIGTERM: {all:?}");
    assert_eq!(has(&all, "READY=1"), 1);
}

#[test]
fn abstract_socket_and_a_watchdog_meant_for_another_pid() {
    let name = format!(
        "rev23-notify-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let socket =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = format!("@{name}");
    let mut d = common::start_in_env(
        dir.path(),
        "",
        &[
            ("NOTIFY_SOCKET", target.as_str()),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
            // Pid 1 is never the daemon: the watchdog is someone else's.
            ("WATCHDOG_PID", "1"),
        ],
    );
    let got = collect(&socket, WAIT, |m| has(m, "READY=1") > 0);
    assert_eq!(has(&got, "READY=1"), 1, "READY=1 via @abstract: {got:?}");
    // Seven ping intervals: a watchdog that ignored WATCHDOG_PID would have pinged by now.
    let quiet = collect(&socket, Duration::from_millis(1400), |_| false);
    assert_eq!(
        has(&quiet, "WATCHDOG=1"),
        0,
        "no pings for pid 1: {quiet:?}"
    );
    assert_eq!(d.stop(), Some(0));
    let after = collect(&socket, WAIT, |m| has(m, "STOPPING=1") > 0);
    assert_eq!(has(&after, "STOPPING=1"), 1, "{after:?}");
}

#[test]
fn a_bad_notify_socket_does_not_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = common::start_in_env(
        dir.path(),
        "",
        &[
            ("NOTIFY_SOCKET", "not/absolute"),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    assert_eq!(d.call("GET", "/healthz", None, None).status, 200);
    assert_eq!(d.stop(), Some(0));
}
