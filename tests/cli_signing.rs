//! The `verify` and `listen` commands, run as the real binary: `verify` on the Standard Webhooks
//! reference vectors (and tampered copies), and `listen` receiving signed, badly signed and
//! oversized deliveries over real HTTP on 127.0.0.1. Every wait is bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rev23_webhooks::sender::signing::{signature_header, HmacSecret, SigningKey};

const BIN: &str = env!("CARGO_BIN_EXE_rev23-webhooks");
const WAIT: Duration = Duration::from_secs(30);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const V1_TS: &str = "1696200454";
const V1_BODY: &[u8] = br#"{"type": "example.created", "timestamp":"2023-09-28T19:20:22+00:00", "data":{"str":"string","bool":true,"int":42}}"#;
const V1_SIG: &str = "v1,GgjvufBlIj71MBIVQotYGb+xEC3LNXCsIZp0HsDC8qs=";
const V1A_PUBLIC: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
const V1A_BODY: &[u8] = br#"{"type":"appointment.created","data":{"id":"apt_1"}}"#;
const V1A_SIG: &str =
    "v1a,gbxjmWqpPw8mVgwiL2N5PRpwaa6DQi7jregrb6q4tH4ZFOVH6KlAi6dYHn3TTh/H7UIgc5/9gf8YZryN19PqAg==";

/// Waits for `child` at most `timeout`; kills it and panics if it is still running.
fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args`, feeding `stdin`, bounded in time.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("REV23_WEBHOOK_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rev23-webhooks");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    let code = wait_bounded(&mut child, WAIT, "rev23-webhooks verify");
    let _ = writer.join();
    Output {
        code,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn verify_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["verify", "--id", MSG_ID, "--timestamp", V1_TS];
    args.extend_from_slice(extra);
    args
}

#[test]
fn verify_accepts_the_reference_vector_and_rejects_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let body_path = temp.path().join("body.json");
    std::fs::write(&body_path, V1_BODY).unwrap();
    let body = body_path.to_str().unwrap();

    let ok = run(
        &verify_args(&[
            "--secret",
            SECRET,
            "--signature",
            V1_SIG,
            "--body",
            body,
            "--tolerance-secs",
            "0",
        ]),
        b"",
    );
    assert_eq!(
        ok.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        ok.stdout,
        ok.stderr
    );
    assert!(ok.stdout.contains("OK: verified v1"), "{}", ok.stdout);

    let mut tampered = V1_BODY.to_vec();
    tampered[2] = b'T';
    std::fs::write(&body_path, &tampered).unwrap();
    let bad = run(
        &verify_args(&[
            "--secret",
            SECRET,
            "--signature",
            V1_SIG,
            "--body",
            body,
            "--tolerance-secs",
            "0",
        ]),
        b"",
    );
    assert_eq!(bad.code, Some(1), "stdout: {}", bad.stdout);
    assert!(
        bad.stderr.contains("no matching signature"),
        "{}",
        bad.stderr
    );

    // The default 5-minute tolerance rejects the 2023 vector as too old.
    let old = run(
        &verify_args(&["--secret", SECRET, "--signature", V1_SIG, "--body", "-"]),
        V1_BODY,
    );
    assert_eq!(old.code, Some(1));
    assert!(old.stderr.contains("too old"), "{}", old.stderr);
}

#[test]
fn verify_checks_v1a_from_stdin() {
    let header = format!("v1,AAAA {V1A_SIG}");
    let base = [
        "--public-key",
        V1A_PUBLIC,
        "--signature",
        &header,
        "--body",
        "-",
        "--tolerance-secs",
        "0",
    ];
    let ok = run(&verify_args(&base), V1A_BODY);
    assert_eq!(
        ok.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        ok.stdout,
        ok.stderr
    );
    assert!(ok.stdout.contains("OK: verified v1a"), "{}", ok.stdout);
    let bad = run(&verify_args(&base), b"{}");
    assert_ne!(bad.code, Some(0));
    let no_key = run(
        &verify_args(&["--signature", V1A_SIG, "--body", "-"]),
        V1A_BODY,
    );
    assert_ne!(no_key.code, Some(0));
    assert!(
        no_key.stderr.contains("no secret or public key"),
        "{}",
        no_key.stderr
    );
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Sends `body` to `url` with `headers`; returns the status and the response body.
fn send(url: &str, method: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        builder = builder.header(*n, v.as_str());
    }
    let request = builder.body(body.to_vec()).expect("request");
    let mut response = agent().run(request).expect("HTTP request to the listener");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(WAIT)
        .expect("a line from the listener within the time limit")
}

#[test]
fn listen_verifies_prints_and_answers() {
    let (secret, secret_text) = HmacSecret::generate();
    let key = SigningKey::generate();
    let mut child = Command::new(BIN)
        .args(["listen", "--port", "0", "--bind", "127.0.0.1"])
        .args(["--secret", &secret_text, "--public-key", &key.public_whpk()])
        .args(["--max-body-bytes", "256", "--max-deliveries", "3"])
        .env_remove("REV23_WEBHOOK_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn listen");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = next_line(&lines);
    let base = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let url = format!("{base}/hooks/test");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts = now.to_string();
    let body = br#"{"id":"msg_good","type":"appointment.created","timestamp":"2026-01-01T00:00:00.000Z","data":{"id":"apt_1"}}"#;
    let good_sig = signature_header(&[&secret], Some(&key), "msg_good", now, body);
    let delivery = |id: &str, sig: String| {
        vec![
            ("content-type", "application/json".to_string()),
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", sig),
            ("rev23-event-type", "appointment.created".to_string()),
            ("rev23-sequence", "7".to_string()),
        ]
    };

    // Not a POST: refused, not counted.
    let (status, _) = send(&url, "GET", &[], b"");
    assert_eq!(status, 405);

    let headers = delivery("msg_good", good_sig);
    let (status, text) = send(&url, "POST", &headers, body);
    assert_eq!(status, 204, "{text}");
    assert_eq!(
        next_line(&lines),
        "OK id=msg_good event_type=appointment.created sequence=7 verified=v1,v1a"
    );
    assert_eq!(next_line(&lines).as_bytes(), body);

    let (wrong, _) = HmacSecret::generate();
    let bad_sig = signature_header(&[&wrong], None, "msg_bad", now, body);
    let headers = delivery("msg_bad", bad_sig);
    let (status, text) = send(&url, "POST", &headers, body);
    assert_eq!(status, 401, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).expect("JSON error body");
    assert_eq!(error["error"]["code"], "unauthorized");
    assert_eq!(
        next_line(&lines),
        "FAIL id=msg_bad event_type=appointment.created sequence=7 reason: no matching signature found"
    );
    assert_eq!(next_line(&lines).as_bytes(), body);

    let big = vec![b'x'; 1000];
    let big_sig = signature_header(&[&secret], Some(&key), "msg_big", now, &big);
    let headers = delivery("msg_big", big_sig);
    let (status, text) = send(&url, "POST", &headers, &big);
    assert_eq!(status, 413, "{text}");
    let line = next_line(&lines);
    assert!(line.starts_with("FAIL id=msg_big "), "{line}");
    assert!(line.contains("over 256 bytes"), "{line}");

    // Three deliveries: it exits by itself, successfully.
    assert_eq!(wait_bounded(&mut child, WAIT, "listen"), Some(0));
}
