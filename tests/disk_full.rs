//! A full disk (issue 6): on a small tmpfs data dir that fills up, ingest answers 503
//! `unavailable` with `Retry-After`, nothing already acknowledged is lost or corrupted, and the
//! daemon recovers by itself — no restart — once space returns.
//!
//! - `ingest_survives_a_full_disk_and_recovers_by_itself`: no free-space reserve
//!   (`storage.min_free_bytes = 0`), so redb itself hits ENOSPC mid-commit and the writer must
//!   reopen the database once the filler is deleted.
//! - `the_free_space_reserve_refuses_ingest_before_the_disk_is_full`: with a reserve, ingest is
//!   refused before redb ever sees ENOSPC, and accepted again as soon as there is room.
//!
//! Both need root (to mount a tmpfs); without it they print a NOTICE and pass, except that with
//! `CI` set a root run whose mount fails is a failure.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::Daemon;

/// Size of the tmpfs the data dir lives on.
const TMPFS_MB: u64 = 16;
/// Room the filler leaves.
const LEAVE_FREE: u64 = 512 * 1024;
/// Requests sent while filling, at most.
const MAX_FILL_REQUESTS: usize = 3000;
/// 503s wanted in a row before freeing space (the daemon keeps refusing, and survives it).
const REFUSALS_WANTED: usize = 20;
/// How long the daemon gets to accept writes again after the filler is gone.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);
const PHASE_TIMEOUT: Duration = Duration::from_secs(90);

/// A tmpfs mounted on a temp dir, unmounted (then removed) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(test: &str) -> Option<Tmpfs> {
        let ci = std::env::var_os("CI").is_some();
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("NOTICE: {test} skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_MB}m"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs { dir }),
            other => {
                assert!(
                    !ci,
                    "{test}: CI is set and we are root, but mounting a tmpfs failed: {other:?}"
                );
                eprintln!("NOTICE: {test} skipped: mounting a tmpfs failed: {other:?}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for _ in 0..50 {
            let ok = Command::new("umount")
                .arg(self.dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Still busy: detach it so the machine is not left with a mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    rev23_webhooks::journal::writer::free_bytes(dir).expect("statvfs")
}

/// Fills `dir`'s file system with real bytes (tmpfs does not count holes) until `leave` remain.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0x5au8; 64 * 1024];
    let mut left = free_bytes(dir).saturating_sub(leave);
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).expect("small");
        if file.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = file.sync_all();
    path
}

struct Ingest {
    /// event id → acknowledged offset.
    acked: BTreeMap<String, u64>,
    /// ids answered 503 (nothing written).
    refused: Vec<String>,
    next: usize,
}

impl Ingest {
    fn new() -> Ingest {
        Ingest {
            acked: BTreeMap::new(),
            refused: Vec::new(),
            next: 0,
        }
    }

    /// Posts one ~2 KB event with a fresh id; its status. A 503 must be a well-formed
    /// `unavailable` error with `Retry-After`.
    fn post(&mut self, d: &Daemon) -> u16 {
        self.next += 1;
        let id = format!("df-{:06}", self.next);
        let body = json!({
            "id": id,
            "type": "customer.created",
            "data": {"id": format!("cus_{}", self.next), "notes": "n".repeat(2000)},
        });
        let r = d.owner("POST", "/v1/events", Some(&body));
        match r.status {
            201 => {
                let item = &r.json["data"][0];
                assert_eq!(item["id"], id.as_str(), "{}", r.text);
                assert_eq!(item["duplicate"], false, "{}", r.text);
                let offset = item["offset"].as_u64().expect("offset");
                self.acked.insert(id, offset);
            }
            503 => {
                assert_eq!(r.code(), "unavailable", "503 body: {}", r.text);
                assert!(
                    r.json["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "503 without a message: {}",
                    r.text
                );
                let retry_after = r.header("retry-after").unwrap_or("");
                assert!(
                    retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
                    "503 without a Retry-After in seconds: {:?}",
                    r.headers
                );
                self.refused.push(id);
            }
            other => panic!("ingest answered {other}: {}", r.text),
        }
        r.status
    }
}

/// Every public event of the journal, by id: (offset, data.id).
fn list_all(d: &Daemon) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut after = 0u64;
    for _ in 0..1000 {
        let r = d.owner("GET", &format!("/v1/events?after={after}&limit=1000"), None);
        assert_eq!(r.status, 200, "list: {}", r.text);
        for e in r.json["data"].as_array().expect("data") {
            let offset = e["offset"].as_u64().expect("offset");
            let entity = e["data"]["id"].as_str().unwrap_or("").to_string();
            out.insert(e["id"].as_str().expect("id").to_string(), (offset, entity));
        }
        match r.json["next_cursor"].as_str() {
            Some(c) => after = c.parse().expect("cursor"),
            None => return out,
        }
    }
    panic!("the event list did not end within 1000 pages");
}

fn journal_head(d: &Daemon) -> u64 {
    let r = d.call("GET", "/readyz", None, None);
    r.json["journal_head"].as_u64().expect("journal_head")
}

/// Every acknowledged event is listed at its offset with its data; public offsets are exactly
/// `first..=head` (the owner user and key take offsets 1 and 2); refused ids are absent.
fn verify(d: &Daemon, ingest: &Ingest) -> BTreeMap<String, (u64, String)> {
    let listed = list_all(d);
    for (id, offset) in &ingest.acked {
        let Some((listed_offset, entity)) = listed.get(id) else {
            panic!("acknowledged event {id} (offset {offset}) is missing");
        };
        assert_eq!(listed_offset, offset, "event {id} moved");
        let n: usize = id.trim_start_matches("df-").parse().expect("our id");
        assert_eq!(entity, &format!("cus_{n}"), "event {id} has other data");
    }
    let head = journal_head(d);
    let mut offsets: Vec<u64> = listed.values().map(|(o, _)| *o).collect();
    offsets.sort_unstable();
    let expected: Vec<u64> = (3..=head).collect();
    assert_eq!(
        offsets, expected,
        "public offsets are not gapless up to the head"
    );
    for id in ingest.refused.iter().take(50) {
        assert!(
            !listed.contains_key(id),
            "event {id} was answered 503 but is in the journal"
        );
    }
    listed
}

fn ready(d: &Daemon) -> Value {
    d.call("GET", "/readyz", None, None).json
}

fn run(test: &str, extra_toml: &str, expect_storage_failure: bool) {
    let Some(tmpfs) = Tmpfs::mount(test) else {
        return;
    };
    let started = Instant::now();
    let mut d = common::start_in(tmpfs.path(), extra_toml);
    let mut ingest = Ingest::new();
    for _ in 0..5 {
        assert_eq!(ingest.post(&d), 201, "ingest before the disk filled");
    }

    // Fill the disk, then ingest until the daemon refuses (bounded in count and time).
    let filler = fill(tmpfs.path(), LEAVE_FREE);
    let mut refusals_in_a_row = 0;
    for _ in 0..MAX_FILL_REQUESTS {
        if refusals_in_a_row >= REFUSALS_WANTED || started.elapsed() > PHASE_TIMEOUT {
            break;
        }
        match ingest.post(&d) {
            503 => refusals_in_a_row += 1,
            _ => refusals_in_a_row = 0,
        }
    }
    assert!(
        refusals_in_a_row >= REFUSALS_WANTED,
        "no run of {REFUSALS_WANTED} 503s on a full disk ({} acked, {} refused)",
        ingest.acked.len(),
        ingest.refused.len()
    );
    assert_eq!(
        d.call("GET", "/healthz", None, None).status,
        200,
        "the daemon is alive"
    );
    let readyz = ready(&d);
    if expect_storage_failure {
        assert_eq!(readyz["storage"], "unavailable", "readyz: {readyz}");
        assert_eq!(readyz["status"], "not_ready", "readyz: {readyz}");
    }
    // Reads still answer (or refuse cleanly) while the disk is full.
    let r = d.owner("GET", "/v1/events?limit=1", None);
    assert!(
        r.status == 200 || (r.status == 503 && r.code() == "unavailable"),
        "list while full: {} {}",
        r.status,
        r.text
    );

    // Space returns: the daemon accepts writes again by itself.
    std::fs::remove_file(&filler).expect("delete the filler");
    let recovered = common::wait_until(RECOVERY_TIMEOUT, || {
        std::thread::sleep(Duration::from_millis(50));
        (ingest.post(&d) == 201).then_some(())
    });
    assert!(
        recovered.is_some(),
        "ingest did not recover within {RECOVERY_TIMEOUT:?} of space returning"
    );
    for _ in 0..20 {
        assert_eq!(ingest.post(&d), 201, "ingest after recovery");
    }
    let readyz = common::wait_until(Duration::from_secs(10), || {
        let r = ready(&d);
        (r["status"] == "ready").then_some(r)
    });
    assert!(readyz.is_some(), "readyz after recovery: {}", ready(&d));
    assert_eq!(readyz.unwrap()["storage"], "ok");

    let before = verify(&d, &ingest);
    assert!(
        ingest.acked.len() >= 26,
        "too few acknowledged events: {}",
        ingest.acked.len()
    );

    // A restart on the same dir finds exactly the same journal, and takes more.
    assert_eq!(d.stop(), Some(0), "clean stop after recovery");
    let mut d = common::start_in(tmpfs.path(), extra_toml);
    let after = verify(&d, &ingest);
    assert_eq!(before, after, "the journal changed across the restart");
    assert_eq!(ingest.post(&d), 201, "ingest after the restart");
    verify(&d, &ingest);
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn ingest_survives_a_full_disk_and_recovers_by_itself() {
    run(
        "ingest_survives_a_full_disk_and_recovers_by_itself",
        "[storage]\nmin_free_bytes = 0\n",
        true,
    );
}

#[test]
fn the_free_space_reserve_refuses_ingest_before_the_disk_is_full() {
    run(
        "the_free_space_reserve_refuses_ingest_before_the_disk_is_full",
        "[storage]\nmin_free_bytes = 2097152\n",
        false,
    );
}
