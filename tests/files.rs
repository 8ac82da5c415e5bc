//! Release-form files (SPEC §12) against the real binary: the PDF bytes are stored once
//! (content-addressed) and never appear in the journal entry or a delivery body; deliveries and
//! reads carry a signed, expiring `data.pdf.url` that serves the bytes; an expired, tampered or
//! unsigned URL is refused with 403; bad files are refused at ingest.

mod common;

use std::time::Duration;

use base64::Engine;
use common::receiver::Receiver;
use common::Daemon;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TTL_CONFIG: &str = "[limits]\nrate_limit_per_minute = 100000\n\
     [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n\
     [files]\nurl_ttl_ms = 1000\n";

fn pdf(n: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..n).map(|i| (i % 251) as u8));
    bytes
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn release_form(d: &Daemon, id: &str, file: &[u8]) -> common::Reply {
    d.owner(
        "POST",
        "/v1/events",
        Some(&json!({"type": "release_form.generated",
                     "data": {"id": id, "customer_id": "cus_1", "pdf_base64": b64(file)}})),
    )
}

/// GET an absolute URL the daemon handed out (it is on the daemon's own address).
fn fetch(d: &Daemon, url: &str) -> common::Reply {
    let path = url
        .strip_prefix(&d.base_url)
        .unwrap_or_else(|| panic!("{url} is not on {}", d.base_url));
    d.raw("GET", path, &[], None)
}

/// Sends only the headers of a release-form POST declaring `length` bytes; returns the status
/// line the daemon answers with.
fn declare_oversized_body(d: &Daemon, length: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let addr = d.base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {}\r\n\
         content-type: application/json\r\ncontent-length: {length}\r\n\r\n\
         {{\"type\":\"release_form.generated\",\"data\":{{\"id\":\"rf\",\"pdf_base64\":\"",
        d.owner_key
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("status line");
    line
}

fn fetch_bytes(url: &str) -> (u16, Vec<u8>) {
    let mut response = common::agent().get(url).call().expect("GET file");
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(20 * 1024 * 1024)
        .read_to_vec()
        .unwrap_or_default();
    (status, bytes)
}

#[test]
fn a_delivered_file_url_serves_the_bytes_which_never_enter_the_journal_or_the_body() {
    let d = common::start_with(
        "[limits]\nrate_limit_per_minute = 100000\n\
         [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n",
    );
    let rx = Receiver::ok();
    let r = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": rx.url("/forms"), "event": "release_form.generated"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let file = pdf(200_000);
    let encoded = b64(&file);
    let r = release_form(&d, "rf_1", &file);
    assert_eq!(r.status, 201, "{}", r.text);
    let event_id = r.json["data"][0]["id"].as_str().unwrap().to_string();

    let got = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    let body = String::from_utf8_lossy(&got[0].body).to_string();
    assert!(
        !body.contains(&encoded[..64]),
        "no PDF bytes in a delivery body"
    );
    assert!(!body.contains("pdf_base64"));
    assert!(body.len() < 2048, "the body carries a link, not the file");
    let delivered: Value = got[0].json();
    let meta = &delivered["data"]["pdf"];
    assert_eq!(meta["sha256"], hex(&Sha256::digest(&file)).as_str());
    assert_eq!(meta["size_bytes"], file.len());
    assert_eq!(meta["content_type"], "application/pdf");
    assert_eq!(delivered["data"]["customer_id"], "cus_1");

    // The journal entry as read holds the metadata and a fresh URL, never the bytes.
    let read = d.owner("GET", &format!("/v1/events/{event_id}"), None);
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(!read.text.contains(&encoded[..64]));
    assert_eq!(read.json["data"]["pdf"]["sha256"], meta["sha256"]);
    // The blob is stored as bytes, outside the event entry: the base64 text is nowhere.
    let db = std::fs::read(d.data_dir.join("journal.redb")).expect("the journal file");
    assert!(
        !db.windows(64).any(|w| w == &encoded.as_bytes()[..64]),
        "the base64 text never reaches the database"
    );

    // The URL serves the bytes (no API key needed: the signature is the credential).
    let url = meta["url"].as_str().unwrap();
    // URLs carry `public_base_url` (the default port); this daemon listens on an ephemeral one.
    let local_url = url.replace("http://127.0.0.1:8023", &d.base_url);
    let (status, bytes) = fetch_bytes(&local_url);
    assert_eq!(status, 200);
    assert_eq!(bytes, file);

    // Tampering with the hash, the expiry or the signature, or dropping it: 403.
    let sig = local_url.split("sig=").nth(1).unwrap().to_string();
    let tampered_sig = {
        let mut s = sig.clone().into_bytes();
        s[0] = if s[0] == b'A' { b'B' } else { b'A' };
        String::from_utf8(s).unwrap()
    };
    let expires: i64 = local_url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let sha = meta["sha256"].as_str().unwrap();
    for path in [
        format!("/v1/files/{sha}?expires={expires}&sig={tampered_sig}"),
        format!("/v1/files/{sha}?expires={}&sig={sig}", expires + 3600),
        format!("/v1/files/{sha}?expires={expires}"),
        format!("/v1/files/{sha}"),
        format!("/v1/files/{}?expires={expires}&sig={sig}", "0".repeat(64)),
    ] {
        let r = d.raw("GET", &path, &[], None);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert_eq!(r.code(), "forbidden");
    }
    let r = d.raw("GET", "/v1/files/not-a-hash", &[], None);
    assert_eq!(r.status, 404);

    // The same file again is stored once and gets the same hash.
    let r = release_form(&d, "rf_2", &file);
    assert_eq!(r.status, 201, "{}", r.text);
    let got = rx.wait_for(2, Duration::from_secs(10));
    assert_eq!(got[1].json()["data"]["pdf"]["sha256"], meta["sha256"]);
}

#[test]
fn a_file_url_expires() {
    let d = common::start_with(TTL_CONFIG);
    let file = pdf(100);
    let r = release_form(&d, "rf_1", &file);
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["data"][0]["id"].as_str().unwrap().to_string();
    let read = d.owner("GET", &format!("/v1/events/{id}"), None);
    let url = read.json["data"]["pdf"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = &url[url.find("/v1/files/").unwrap()..];
    let r = d.raw("GET", path, &[], None);
    assert_eq!(r.status, 200, "fresh link works: {}", r.text);
    // The expiry has one-second resolution; 1 s TTL is past after at most ~2 s.
    std::thread::sleep(Duration::from_millis(2200));
    let r = d.raw("GET", path, &[], None);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
    // A read now hands out a fresh, working link.
    let read = d.owner("GET", &format!("/v1/events/{id}"), None);
    let url = read.json["data"]["pdf"]["url"].as_str().unwrap();
    let r = fetch(&d, &url.replace("http://127.0.0.1:8023", &d.base_url));
    assert_eq!(r.status, 200);
}

#[test]
fn bad_files_are_refused_at_ingest_and_nothing_is_appended() {
    let d = common::start_with("[limits]\nrate_limit_per_minute = 100000\n");
    let head = |d: &Daemon| {
        d.owner("GET", "/v1/events?limit=1000", None).json["data"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = head(&d);
    for data in [
        json!({"id": "rf", "pdf_base64": "!!not base64!!"}),
        json!({"id": "rf", "pdf_base64": 42}),
        json!({"id": "rf", "pdf_base64": ""}),
    ] {
        let r = d.owner(
            "POST",
            "/v1/events",
            Some(&json!({"type": "release_form.generated", "data": data})),
        );
        assert_eq!(r.status, 422, "{data}: {}", r.text);
        assert_eq!(r.code(), "validation_failed");
    }
    // Over the file body limit (10 MiB): refused from the declared length, before the body is
    // read (the client must not have to send 14 MB to hear no).
    let status_line = declare_oversized_body(&d, 14 * 1024 * 1024);
    assert!(status_line.contains(" 413 "), "{status_line}");
    assert_eq!(head(&d), before, "nothing appended");
    // A file on another event type is not a file: the body limit applies.
    let r = d.owner(
        "POST",
        "/v1/events",
        Some(&json!({"type": "customer.created", "data": {"id": "c", "pdf_base64": b64(&pdf(2 * 1024 * 1024))}})),
    );
    assert_eq!(r.status, 413, "{}", r.text);
}
