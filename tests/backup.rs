//! Backup and restore (SPEC §13) with the real binary: `rev23-webhooks backup --to FILE` taken
//! while events stream in and deliveries go out, `restore --from FILE --data-dir DIR` into a new
//! dir, and a daemon started there has the same events (exactly the journal up to the backup's
//! head), hooks, cursors (never ahead of what was delivered), signing key and owner key. Bad
//! input gets clear errors: a non-empty dir, a file that is not a backup, an existing target,
//! and the `/v1/backups` API's auth, limits and unknown ids.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::Daemon;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// Ingest batches at most while the backup runs (bounds the test whatever the machine's speed).
const MAX_BATCHES: u64 = 400;
const BATCH_EVENTS: u64 = 10;

fn config() -> &'static str {
    "[limits]\nrate_limit_per_minute = 100000\n\
     [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n"
}

/// Runs the binary with `args`, bounded; returns (success, stdout, stderr).
fn run_cli(args: &[&str]) -> (bool, String, String) {
    common::run_bounded(
        Command::new(common::BIN)
            .args(args)
            .env_remove("REV23_API_KEY"),
        Duration::from_secs(120),
    )
    .expect("spawn the CLI")
}

/// Every public event, oldest first, paged through `GET /v1/events` (bounded pages).
fn all_events(d: &Daemon) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let path = match &cursor {
            Some(c) => format!("/v1/events?limit=1000&cursor={c}"),
            None => "/v1/events?limit=1000".to_string(),
        };
        let r = d.owner("GET", &path, None);
        assert_eq!(r.status, 200, "{}", r.text);
        out.extend(r.json["data"].as_array().unwrap().iter().cloned());
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out.sort_by_key(|e| e["offset"].as_u64().unwrap());
    out
}

fn head(d: &Daemon) -> u64 {
    d.call("GET", "/readyz", None, None).json["journal_head"]
        .as_u64()
        .unwrap()
}

fn hook(d: &Daemon, id: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

#[test]
fn a_backup_taken_during_ingest_and_delivery_restores_the_same_state() {
    let temp = tempfile::tempdir().unwrap();
    let a = common::start_in(&temp.path().join("a").tap_create(), config());
    let rx = Receiver::start(|_, _| Answer::status(200).with_delay(Duration::from_millis(2)));
    let r = a.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": rx.url("/in"), "event": "customer.created", "ordering": "strict"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let live = r.json["id"].as_str().unwrap().to_string();
    let r = a.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": rx.url("/paused"), "event": "customer.created"})),
    );
    let paused = r.json["id"].as_str().unwrap().to_string();
    let r = a.owner(
        "PATCH",
        &format!("/v1/hooks/{paused}"),
        Some(&json!({"state": "paused"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Ingest in the background, from before the backup until after it.
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let ingest = {
        let (url, key) = (a.url("/v1/events"), a.owner_key.clone());
        let (stop, batches) = (stop.clone(), batches.clone());
        std::thread::spawn(move || {
            let agent = common::agent();
            for b in 0..MAX_BATCHES {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let batch: Vec<Value> = (0..BATCH_EVENTS)
                    .map(|i| json!({"type": "customer.created", "data": {"id": format!("cus_{b}_{i}"), "first_name": "Ann"}}))
                    .collect();
                let response = agent
                    .post(&url)
                    .header("x-api-key", &key)
                    .header("content-type", "application/json")
                    .send(json!(batch).to_string())
                    .expect("ingest");
                assert_eq!(response.status().as_u16(), 201);
                batches.fetch_add(1, Ordering::AcqRel);
            }
        })
    };
    let started = common::wait_until(WAIT, || {
        (batches.load(Ordering::Acquire) >= 5).then_some(())
    });
    assert!(started.is_some(), "ingest did not start");
    assert!(
        common::wait_until(WAIT, || (rx.count() > 0).then_some(())).is_some(),
        "deliveries did not start"
    );
    // Some delivery is final and its cursor recorded (the recorder writes every few ms), so the
    // snapshot has a cursor past 0 to compare.
    assert!(
        common::wait_until(WAIT, || (hook(&a, &live)["cursor"]["sequence"].as_u64()
            >= Some(1))
        .then_some(()))
        .is_some(),
        "no delivery became final"
    );
    std::thread::sleep(Duration::from_millis(500));
    let head_before = head(&a);
    let file = temp.path().join("snapshot.rev23");
    let (ok, out, err) = run_cli(&[
        "backup",
        "--to",
        file.to_str().unwrap(),
        "--url",
        &a.base_url,
        "--key",
        &a.owner_key,
    ]);
    assert!(ok, "backup failed: {out} {err}");
    let head_after = head(&a);
    let batches_during = batches.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    ingest.join().unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the backup holds secrets"
    );
    // "backup bak_... written to FILE: N bytes, journal head H, ..."
    let backup_head: u64 = out
        .split("journal head ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no journal head in {out:?}"));
    assert!(
        head_before <= backup_head && backup_head <= head_after,
        "the snapshot is a point during the run: {head_before} ≤ {backup_head} ≤ {head_after}"
    );
    assert!(batches_during > 5, "ingest ran during the backup");
    // The daemon's copy was deleted after the download.
    let backups_dir = a.data_dir.join("backups");
    let left: Vec<_> = std::fs::read_dir(&backups_dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "backups left on the daemon: {left:?}");

    // Let A finish delivering, then stop its receiver so the restored daemon cannot move its
    // cursors before we read them (its attempts fail and wait out the retry schedule).
    let a_events = all_events(&a);
    assert!(
        common::wait_until(WAIT, || (hook(&a, &live)["lag"] == 0).then_some(())).is_some(),
        "A did not catch up"
    );
    let a_live = hook(&a, &live);
    let delivered: std::collections::BTreeSet<u64> =
        rx.received().iter().map(|r| r.sequence()).collect();
    drop(rx);

    let restored_dir = temp.path().join("b");
    let (ok, out, err) = run_cli(&[
        "restore",
        "--from",
        file.to_str().unwrap(),
        "--data-dir",
        restored_dir.join("data").to_str().unwrap(),
    ]);
    assert!(ok, "restore failed: {out} {err}");
    assert!(
        out.contains(&format!("journal head {backup_head}")),
        "{out}"
    );
    // Slow retries: the restored cursor stays put (the old receiver is gone) while we read it.
    let b = common::start_in(
        &restored_dir,
        &format!(
            "{}[delivery]\nretry_schedule_ms = [0, 3000, 3000, 3000, 3000, 3000, 3000]\n",
            config()
        ),
    );
    assert_eq!(b.owner_key, a.owner_key, "owner.key restored");
    assert_eq!(
        head(&b),
        backup_head,
        "the restored journal ends at the backup's head"
    );

    // Events: exactly A's journal up to the backup's head, byte for byte in the API.
    let b_events = all_events(&b);
    let expected: Vec<Value> = a_events
        .iter()
        .filter(|e| e["offset"].as_u64().unwrap() <= backup_head)
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(b_events, expected, "the same events");

    // Hooks: the same configuration; the paused one still paused with its backlog.
    let list = |d: &Daemon| {
        let r = d.owner("GET", "/v1/hooks", None);
        assert_eq!(r.status, 200);
        let mut hooks: Vec<Value> = r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| json!([h["id"], h["target_url"], h["events"], h["ordering"]]))
            .collect();
        hooks.sort_by_key(|h| h.to_string());
        hooks
    };
    assert_eq!(list(&b), list(&a));
    let b_paused = hook(&b, &paused);
    assert_eq!(b_paused["state"], "paused");
    assert_eq!(b_paused["cursor"]["sequence"], 0);
    let matched = expected.len() as u64;
    assert_eq!(
        b_paused["head_sequence"], matched,
        "every restored event matched"
    );

    // Cursors: consistent with the restored deliveries, never ahead of what A delivered.
    let b_live = hook(&b, &live);
    let cursor = b_live["cursor"]["sequence"].as_u64().unwrap();
    assert!(cursor >= 1, "the cursor came along: {b_live}");
    assert_eq!(b_live["head_sequence"], matched);
    assert!(cursor <= a_live["cursor"]["sequence"].as_u64().unwrap());
    assert!(
        b_live["deliveries"]["succeeded"].as_u64().unwrap() >= cursor,
        "counters travel with the cursor: {b_live}"
    );
    for seq in 1..=cursor {
        assert!(
            delivered.contains(&seq),
            "sequence {seq} ≤ cursor was delivered"
        );
    }
    let r = b.owner(
        "GET",
        &format!("/v1/hooks/{live}/deliveries?status=succeeded&limit=1000"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let logged = r.json["data"].as_array().unwrap().len() as u64;
    assert!(
        logged >= cursor.min(1000),
        "the attempt log came along: {logged} logged, cursor {cursor}"
    );

    // The same signing key: receivers that pinned it keep verifying.
    let keys = |d: &Daemon| d.call("GET", "/v1/signing-keys", None, None).json;
    assert_eq!(keys(&b), keys(&a));

    // Delivery resumes from the restored cursor, in order, with no gap, to a new receiver.
    let rx2 = Receiver::ok();
    let r = b.owner(
        "PATCH",
        &format!("/v1/hooks/{live}"),
        Some(&json!({"target_url": rx2.url("/in")})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let pending = (matched - cursor) as usize;
    let got = rx2.wait_for(pending, WAIT);
    let sequences: Vec<u64> = got.iter().map(|r| r.sequence()).collect();
    let expected: Vec<u64> = (cursor + 1..=matched).collect();
    assert_eq!(
        sequences, expected,
        "resumed at cursor + 1, strictly in order"
    );
}

/// `Path` helper: creates the dir and returns it.
trait TapCreate {
    fn tap_create(self) -> Self;
}

impl TapCreate for std::path::PathBuf {
    fn tap_create(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn restore_and_backup_refuse_bad_input() {
    let d = common::start_with(config());
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("ok.rev23");
    let (ok, out, err) = run_cli(&[
        "backup",
        "--to",
        file.to_str().unwrap(),
        "--url",
        &d.base_url,
        "--key",
        &d.owner_key,
    ]);
    assert!(ok, "{out} {err}");

    // An existing target is never overwritten.
    let (ok, _, err) = run_cli(&[
        "backup",
        "--to",
        file.to_str().unwrap(),
        "--url",
        &d.base_url,
        "--key",
        &d.owner_key,
    ]);
    assert!(!ok);
    assert!(err.contains("refusing to overwrite"), "{err}");
    // A wrong key: the daemon's 401, reported.
    let (ok, _, err) = run_cli(&[
        "backup",
        "--to",
        temp.path().join("x").to_str().unwrap(),
        "--url",
        &d.base_url,
        "--key",
        "ca_wrong",
    ]);
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    assert!(!temp.path().join("x").exists());

    // A non-empty data dir is refused and left as it was.
    let busy = temp.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("something"), "x").unwrap();
    let (ok, _, err) = restore(&file, &busy);
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // A file that is not a backup: refused, and the empty dir gets no database.
    let junk = temp.path().join("junk");
    std::fs::write(&junk, "not a database").unwrap();
    let empty = temp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = restore(&junk, &empty);
    assert!(!ok);
    assert!(err.contains("not a rev23-webhooks backup"), "{err}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // A missing file.
    let (ok, _, err) = restore(&temp.path().join("missing"), &empty);
    assert!(!ok);
    assert!(err.contains("is not a file"), "{err}");

    // And the good one restores into that same (still empty) dir.
    let (ok, out, err) = restore(&file, &empty);
    assert!(ok, "{out} {err}");
    assert!(empty.join("journal.redb").exists());
    assert!(empty.join("signing.key").exists() && empty.join("owner.key").exists());
}

fn restore(from: &Path, dir: &Path) -> (bool, String, String) {
    run_cli(&[
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ])
}

#[test]
fn the_backups_api_checks_auth_limits_and_ids() {
    let d = common::start_with(config());
    let (_, reader) = d.user_with_key("reader", &["read:customer"]);
    let r = d.call("POST", "/v1/backups", None, None);
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let r = d.call("POST", "/v1/backups", Some(&reader), None);
    assert_eq!((r.status, r.code()), (403, "forbidden"));

    let first = d.owner("POST", "/v1/backups", None);
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.json["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("bak_"));
    let size = first.json["size_bytes"].as_u64().unwrap();
    assert!(size > 0);
    let second = d.owner("POST", "/v1/backups", None);
    assert_eq!(second.status, 201, "{}", second.text);
    let r = d.owner("POST", "/v1/backups", None);
    assert_eq!(
        (r.status, r.code()),
        (409, "conflict"),
        "two are held at most"
    );

    let r = d.call("GET", &format!("/v1/backups/{id}"), Some(&reader), None);
    assert_eq!(r.status, 403);
    let r = d.owner("GET", &format!("/v1/backups/{id}?offset=0&length=16"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("rev23-backup-size"),
        Some(size.to_string().as_str())
    );
    let r = d.owner("GET", &format!("/v1/backups/{id}?length=0"), None);
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    let r = d.owner("GET", &format!("/v1/backups/{id}?length=99999999999"), None);
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    let r = d.owner(
        "GET",
        &format!("/v1/backups/{id}?offset={}", size + 1),
        None,
    );
    assert_eq!((r.status, r.code()), (422, "validation_failed"));
    let r = d.owner("GET", &format!("/v1/backups/{id}?offset=abc"), None);
    assert_eq!(r.status / 100, 4, "{}", r.text);
    assert!(r.json["error"]["message"].is_string());

    let r = d.owner("DELETE", &format!("/v1/backups/{id}"), None);
    assert_eq!(r.status, 204);
    let r = d.owner("GET", &format!("/v1/backups/{id}"), None);
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = d.owner("DELETE", &format!("/v1/backups/{id}"), None);
    assert_eq!(r.status, 404);
    // One slot is free again.
    let r = d.owner("POST", "/v1/backups", None);
    assert_eq!(r.status, 201, "{}", r.text);
    let r = d.owner("PUT", "/v1/backups", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}
