//! Fuzz properties of the parsers that face untrusted bytes, shared by the cargo-fuzz targets in
//! `fuzz/` (each a three-line wrapper) and by `tests/fuzz_seeds.rs`, which runs the committed
//! seed corpora (`fuzz/seeds/<target>/`) and deterministic mutations of them in plain
//! `cargo test`. Every function takes arbitrary bytes, must never panic on its own, and `assert!`s
//! the invariants of what the code under test accepts:
//!
//! - [`codec`]: the journal envelope codec — decoding never panics; whatever decodes re-encodes
//!   (canonically, no longer than the input) to bytes that decode to the same envelope; any
//!   envelope round-trips.
//! - [`ingest`]: `POST /v1/events` validation ([`parse_batch`]) — accepted events have a catalog
//!   type, an object `data` whose `id` is the entity id, valid ids unique in the batch, no inline
//!   PDF left in a release form, a timestamp that renders as RFC 3339, and journal round-trip.
//! - [`signature`]: Standard Webhooks parsing and verification — arbitrary headers and keys never
//!   panic; what `HmacSecret::sign` / `SigningKey::sign` produce verifies; a changed body,
//!   timestamp or id does not.
//! - [`destination`]: target URL validation, the destination policy and the SSRF address
//!   classifier — a URL accepted under the default policy never reaches a forbidden address
//!   (loopback, RFC 1918, link-local, CGNAT, ULA, multicast, unspecified, broadcast, embedded
//!   IPv4 in any of them), neither as a literal nor through the resolver.
//!
//! Inputs with several parts are newline-separated text so seeds stay readable (see each
//! function). Nothing here runs in the daemon.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::api::events::parse_batch;
use crate::api::hooks::validate_target_url;
use crate::clock;
use crate::domain::policy::{Policy, PolicyHandle, PolicyRecord, Violation};
use crate::domain::{address, catalog, files, visibility};
use crate::ids;
use crate::journal::codec::{self as journal_codec, Envelope, Origin};
use crate::sender::resolve::{Destinations, GuardedResolver, StaticLookup};
use crate::sender::signing::{self, DeliveryHeaders, HmacSecret, SigningKey, VerifyingKey};

/// The batch limit [`ingest`] uses (the config default of `limits.max_batch_events`).
pub const INGEST_MAX_EVENTS: usize = 1000;
/// The target URL limit [`destination`] uses (the default of `limits.max_target_url_bytes`).
pub const TARGET_URL_MAX_BYTES: usize = 2048;

/// Splits off the first `n` newline-terminated lines; the rest (possibly empty) is returned last.
fn lines(data: &[u8], n: usize) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None => {
                out.push(rest);
                rest = &[];
            }
        }
    }
    (out, rest)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// A little reader for building structured values out of the input.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        let mut v = [0u8; 8];
        for b in &mut v {
            *b = self.byte();
        }
        u64::from_le_bytes(v)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = usize::from(self.byte()).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head.to_vec()
    }

    fn string(&mut self) -> String {
        text(&self.bytes())
    }

    fn opt_string(&mut self) -> Option<String> {
        (self.byte() & 1 == 1).then(|| self.string())
    }
}

/// The journal envelope codec. `data` is tried as an encoded entry, and read as the fields of an
/// envelope that must round-trip.
pub fn codec(data: &[u8]) {
    if let Ok(envelope) = journal_codec::decode(data) {
        let bytes = journal_codec::encode(&envelope).expect("a decoded envelope re-encodes");
        assert!(
            bytes.len() <= data.len(),
            "the canonical encoding is never longer than an accepted one"
        );
        assert_eq!(journal_codec::decode(&bytes).as_ref(), Ok(&envelope));
    }
    let mut c = Cursor(data);
    let envelope = Envelope {
        offset: c.u64(),
        id: c.string(),
        kind: c.string(),
        timestamp_ms: c.u64() as i64,
        appended_at_ms: c.u64() as i64,
        origin: Origin {
            key_id: c.opt_string(),
            user_id: c.opt_string(),
        },
        assigned_user_id: c.opt_string(),
        entity_id: c.opt_string(),
        payload: c.0.to_vec(),
    };
    let bytes = journal_codec::encode(&envelope).expect("every small envelope encodes");
    assert_eq!(bytes[0], journal_codec::FORMAT_VERSION);
    assert_eq!(journal_codec::decode(&bytes), Ok(envelope));
    // No strict prefix of an entry decodes (truncation is always detected).
    if bytes.len() > 1 {
        let cut = 1 + data.len() % (bytes.len() - 1);
        assert!(journal_codec::decode(&bytes[..cut]).is_err());
    }
}

/// `POST /v1/events` validation: `data` is the request body.
pub fn ingest(data: &[u8]) {
    let origin = Origin {
        key_id: Some("key_fuzz".into()),
        user_id: Some("usr_fuzz".into()),
    };
    let Ok(events) = parse_batch(data, INGEST_MAX_EVENTS, &origin) else {
        return;
    };
    assert!(!events.is_empty() && events.len() <= INGEST_MAX_EVENTS);
    if events.len() > 1 {
        let status = parse_batch(data, events.len() - 1, &origin)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(status.status, hyper::StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut seen = HashSet::new();
    for (i, e) in events.into_iter().enumerate() {
        assert!(
            seen.insert(e.id.clone()),
            "duplicate id {:?} accepted",
            e.id
        );
        assert!(ids::is_valid_client_id(&e.id), "bad id {:?}", e.id);
        let kind = catalog::lookup(&e.kind).expect("accepted types are in the catalog");
        assert_eq!(kind.name, e.kind);
        assert_eq!(e.origin, origin);
        if let Some(user) = &e.assigned_user_id {
            assert!(!user.is_empty() && user.len() <= 256);
        }
        let entity = e.entity_id.as_deref().expect("public events carry data.id");
        assert!(!entity.is_empty() && entity.len() <= 256);

        let payload = std::str::from_utf8(&e.payload).expect("the stored payload is UTF-8");
        assert!(
            serde_json::value::RawValue::from_string(payload.to_string()).is_ok(),
            "the stored payload is JSON"
        );
        let value: serde_json::Value = serde_json::from_str(payload).expect("payload is JSON");
        // Receivers (and `listen`) parse the delivery body, which wraps `data` one level deeper.
        let body = visibility::delivery_body(
            &e.id,
            &e.kind,
            "2026-12-04T09:20:51.123Z",
            payload.as_bytes(),
        );
        assert!(
            serde_json::from_slice::<serde_json::Value>(&body).is_ok(),
            "the delivery body parses"
        );
        let object = value.as_object().expect("data is an object");
        let id = match object.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            other => panic!("events[{i}]: data.id is {other:?}"),
        };
        assert_eq!(id, entity, "the entity id is data.id");
        if e.kind == files::RELEASE_FORM_TYPE {
            assert!(
                !object.contains_key(files::BASE64_FIELD),
                "a release form's PDF is never stored inline in the journal"
            );
        } else {
            assert!(e.blobs.is_empty(), "only release forms carry files");
        }
        for blob in &e.blobs {
            assert!(!blob.bytes.is_empty() && blob.bytes.len() <= files::MAX_FILE_BYTES);
            let digest = Sha256::digest(&blob.bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(blob.sha256_hex, hex);
            assert_eq!(object["pdf"]["sha256"], hex.as_str());
        }
        // The timestamp renders (events are read back as RFC 3339) and parses back unchanged.
        let shown = clock::format_ms(e.timestamp_ms);
        assert_eq!(
            clock::parse_rfc3339_ms(&shown),
            Some(e.timestamp_ms),
            "timestamp {} renders as {shown:?}",
            e.timestamp_ms
        );
        // And the event survives the journal.
        let envelope = Envelope {
            offset: i as u64 + 1,
            id: e.id,
            kind: e.kind,
            timestamp_ms: e.timestamp_ms,
            appended_at_ms: e.timestamp_ms,
            origin: e.origin,
            assigned_user_id: e.assigned_user_id,
            entity_id: e.entity_id,
            payload: e.payload,
        };
        let bytes = journal_codec::encode(&envelope).expect("accepted events encode");
        assert_eq!(journal_codec::decode(&bytes), Ok(envelope));
    }
}

/// Standard Webhooks signatures. `data` is lines: `webhook-id`, `webhook-timestamp`,
/// `webhook-signature`, a secret (`whsec_...`), a public or signing key (`whpk_...` /
/// `whsk_...`), then the body (everything after the fifth newline).
pub fn signature(data: &[u8]) {
    let (parts, body) = lines(data, 5);
    let [id_line, ts_line, sig_line, secret_line, key_line] =
        [0, 1, 2, 3, 4].map(|i| text(parts[i]));

    // 1. Arbitrary headers and keys: parsers and the verifier never panic, and agree.
    let entries: Vec<(&str, &str)> = signing::signature_entries(&sig_line).collect();
    for (version, b64) in &entries {
        let split = |s: &str| s.bytes().any(|b| b.is_ascii_whitespace());
        assert!(!split(version) && !split(b64) && !version.is_empty() || version.is_empty());
    }
    let parsed_ts = signing::parse_timestamp(&ts_line);
    if let Ok(ts) = parsed_ts {
        assert!((0..=signing::MAX_TIMESTAMP_SECS).contains(&ts));
    }
    let secret = HmacSecret::parse(&secret_line).ok();
    if let Some(s) = &secret {
        let again = HmacSecret::parse(&s.to_whsec()).expect("to_whsec parses");
        assert_eq!(again.to_whsec(), s.to_whsec());
    }
    let public = VerifyingKey::from_whpk(&key_line).ok();
    if let Some(p) = &public {
        assert_eq!(VerifyingKey::from_whpk(&p.to_whpk()).as_ref(), Ok(p));
    }
    let signer = SigningKey::from_whsk(&key_line).ok();
    if let Some(k) = &signer {
        let again = SigningKey::from_whsk(&k.to_whsk()).expect("to_whsk parses");
        assert_eq!(again.verifying_key(), k.verifying_key());
    }
    let now = parsed_ts.clone().unwrap_or(1_796_376_051);
    let headers = DeliveryHeaders {
        id: Some(&id_line),
        timestamp: Some(&ts_line),
        signature: Some(&sig_line),
    };
    let verifier = signing::Verifier::from_strings(
        (!secret_line.is_empty()).then_some(secret_line.as_str()),
        (!key_line.is_empty()).then_some(key_line.as_str()),
    );
    if let Ok(v) = &verifier {
        // Tolerance is checked before any signature, so one verification covers both modes.
        let tolerance = (now % 2 == 0).then_some(signing::DEFAULT_TOLERANCE_SECS);
        if let Ok(ok) = v
            .clone()
            .with_tolerance(tolerance)
            .verify(&headers, body, now)
        {
            assert!(ok.v1 || ok.v1a);
            assert_eq!(Ok(ok.timestamp_secs), parsed_ts);
        }
    }
    if let Ok(ts) = parsed_ts {
        let now = now.wrapping_add(i64::from(data.len() as u16) - 400);
        let tolerance = u64::from(data.first().copied().unwrap_or(0)) * 5;
        let within = signing::check_tolerance(ts, now, Some(tolerance)).is_ok();
        assert_eq!(within, ts.abs_diff(now) <= tolerance);
    }

    // 2. What the sender signs verifies, and a change of one byte does not.
    let secret = secret.unwrap_or_else(|| {
        HmacSecret::from_bytes(&sha256(&[b"secret", secret_line.as_bytes()])).expect("32 bytes")
    });
    let key = signer.unwrap_or_else(|| SigningKey::from_seed(&sha256(&[key_line.as_bytes()])));
    let public = key.verifying_key();
    // Header values arrive trimmed and non-empty (HTTP strips surrounding whitespace).
    let msg_id = match id_line.trim() {
        "" => "msg_fuzz",
        id => id,
    };
    let ts = parsed_ts.unwrap_or_else(|_| {
        let h = sha256(&[ts_line.as_bytes()]);
        (u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
            % (signing::MAX_TIMESTAMP_SECS as u64 + 1)) as i64
    });
    let ts_text = ts.to_string();
    let ours = signing::signature_header(&[&secret], Some(&key), msg_id, ts, body);
    // Ed25519 is the costly part (and slow in unoptimized test builds): each check below is one
    // verification with both keys (Err = neither version matched).
    let check = |id: &str, ts_text: &str, header: &str, body: &[u8]| {
        let headers = DeliveryHeaders {
            id: Some(id),
            timestamp: Some(ts_text),
            signature: Some(header),
        };
        signing::verify(&headers, body, Some(&secret), Some(&public), None, 0)
    };
    let hmac_only = |header: &str| {
        let headers = DeliveryHeaders {
            id: Some(msg_id),
            timestamp: Some(&ts_text),
            signature: Some(header),
        };
        signing::verify(&headers, body, Some(&secret), None, Some(300), ts)
    };
    let fresh = check(msg_id, &ts_text, &ours, body).expect("a fresh signature verifies");
    assert!(
        fresh.v1 && fresh.v1a && fresh.timestamp_secs == ts,
        "{fresh:?}"
    );
    assert!(hmac_only(&ours).is_ok_and(|v| v.v1 && !v.v1a));
    // Our entries first, then whatever the header line held: still both.
    let extended = check(msg_id, &ts_text, &format!("{ours} {sig_line}"), body);
    assert!(extended.is_ok_and(|v| v.v1 && v.v1a));
    // Whatever comes first, every v1 entry is tried.
    assert!(hmac_only(&format!("{sig_line} {ours}")).is_ok());

    let h = sha256(&[data]);
    let mut changed = body.to_vec();
    if changed.is_empty() {
        changed.push(h[0]);
    } else {
        let at = usize::from(u16::from_le_bytes([h[0], h[1]])) % changed.len();
        changed[at] ^= h[2].max(1);
    }
    assert_eq!(
        check(msg_id, &ts_text, &ours, &changed),
        Err(signing::VerifyError::NoMatchingSignature),
        "a changed body must not verify"
    );
    let other_ts = if ts == 0 { 1 } else { ts - 1 };
    assert!(
        check(msg_id, &other_ts.to_string(), &ours, body).is_err(),
        "a changed timestamp must not verify"
    );
    assert!(
        check(&format!("{msg_id}x"), &ts_text, &ours, body).is_err(),
        "a changed id must not verify"
    );
}

/// An independent statement of the addresses SPEC §11 forbids, from `std`'s predicates.
pub fn forbidden(ip: IpAddr) -> bool {
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || (a == 100 && (64..128).contains(&b))
            || ip.is_multicast()
            || ip.is_broadcast()
            || a == 0
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            let s = ip.segments();
            let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || s[0] & 0xfe00 == 0xfc00
                || s[0] & 0xffc0 == 0xfe80
                || ip.to_ipv4_mapped().is_some_and(v4)
                || (s[..6] == [0; 6] && v4(tail))
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] && v4(tail))
        }
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a tokio runtime")
        });
        rt.block_on(f)
    })
}

/// Addresses derived from raw bytes, so the classifier sees every bit pattern.
fn raw_addresses(data: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut v6 = [0u8; 16];
    for (i, b) in data.iter().rev().take(16).enumerate() {
        v6[i] = *b;
    }
    let v6 = Ipv6Addr::from(v6);
    out.push(IpAddr::V6(v6));
    let [a, b, c, d] = [
        v6.octets()[0],
        v6.octets()[1],
        v6.octets()[2],
        v6.octets()[3],
    ];
    let v4 = Ipv4Addr::new(a, b, c, d);
    out.push(IpAddr::V4(v4));
    out.push(IpAddr::V6(v4.to_ipv6_mapped()));
    out.push(IpAddr::V6(v4.to_ipv6_compatible()));
    let mut nat64 = [0u8; 16];
    nat64[..4].copy_from_slice(&[0, 0x64, 0xff, 0x9b]);
    nat64[12..].copy_from_slice(&v4.octets());
    out.push(IpAddr::V6(Ipv6Addr::from(nat64)));
    out
}

/// Target URLs and the destination policy. `data` is lines: the target URL, then optional
/// directives: `allow: <host pattern>`, `net: <CIDR>` (allow_private_networks), `https_only`,
/// `dns: <ip>` (what the URL's host name resolves to; several allowed). Without `allow:`/`net:`/
/// `https_only` lines the policy is the default one.
pub fn destination(data: &[u8]) {
    let mut parts = data.split(|&b| b == b'\n');
    let url_text = text(parts.next().unwrap_or_default());
    let mut record = PolicyRecord::default();
    let mut dns: Vec<IpAddr> = Vec::new();
    for line in parts.take(64) {
        let line = text(line);
        if let Some(p) = line.strip_prefix("allow:") {
            record.allowed_destinations.push(p.trim().to_string());
        } else if let Some(n) = line.strip_prefix("net:") {
            record.allow_private_networks.push(n.trim().to_string());
        } else if line.trim() == "https_only" {
            record.https_only = true;
        } else if let Some(ip) = line.strip_prefix("dns:") {
            if let Ok(ip) = ip.trim().parse() {
                dns.push(ip);
            }
        }
    }
    if dns.is_empty() {
        dns = raw_addresses(data);
    }

    // 1. The classifier: everything forbidden is classified, and the default policy refuses
    //    exactly what is classified.
    let default = Policy::new(PolicyRecord::default()).expect("the default policy is valid");
    let mut candidates = raw_addresses(data);
    candidates.extend(dns.iter().copied());
    if let Ok(ip) = url_text.trim().parse::<IpAddr>() {
        candidates.push(ip);
    }
    for &ip in &candidates {
        let class = address::classify(ip);
        if forbidden(ip) {
            assert!(class.is_some(), "{ip} is forbidden but classified public");
        }
        assert_eq!(default.check_ip(ip).is_err(), class.is_some(), "{ip}");
        let _ = class.map(address::Restricted::name);
    }

    // 2. The policy this input describes (it may be invalid).
    let policy = Policy::new(record.clone());
    let defaulted = record == PolicyRecord::default();
    let policy = match policy {
        Ok(p) => p,
        Err(_) => default.clone(),
    };
    let in_allowed_net = |ip: IpAddr| {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        policy.record().allow_private_networks.iter().any(|n| {
            let net = n
                .trim()
                .parse::<ipnet::IpNet>()
                .or_else(|_| n.trim().parse::<IpAddr>().map(ipnet::IpNet::from));
            net.is_ok_and(|net| net.contains(&ip) || net.contains(&canonical))
        })
    };
    for &ip in &candidates {
        if policy.check_ip(ip).is_ok() && forbidden(ip) {
            assert!(
                in_allowed_net(ip),
                "{ip} allowed outside allow_private_networks"
            );
        }
    }

    // 3. The target URL, as the API validates it and the sender then uses it.
    let Ok(normalized) = validate_target_url(&url_text, TARGET_URL_MAX_BYTES) else {
        return;
    };
    let url = url::Url::parse(&normalized).expect("the normalized URL parses");
    assert_eq!(url.as_str(), normalized, "normalization is idempotent");
    assert!(matches!(url.scheme(), "http" | "https"));
    let accepted = policy.check_url(&url);
    if let Err(Violation::RestrictedAddress { ip, .. }) = &accepted {
        assert!(address::classify(*ip).is_some());
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if accepted.is_ok() {
        if policy.record().https_only {
            assert_eq!(url.scheme(), "https");
        }
        if let Some(ip) = literal {
            if forbidden(ip) {
                assert!(!defaulted, "{normalized:?} reaches forbidden {ip}");
                assert!(in_allowed_net(ip), "{normalized:?} reaches {ip}");
            }
        }
    }

    // What hyper connects to: an IP-literal host directly (judged by the sender's
    // check_literal), anything else through the guarded resolver.
    let uri: hyper::Uri = normalized
        .parse()
        .expect("validate_target_url checked this");
    let host = uri.host().expect("a target names a host").to_string();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let destinations = Destinations::new(
        Arc::new(PolicyHandle::new(policy.clone())),
        Arc::new(StaticLookup(HashMap::from([(
            url.host_str().unwrap_or_default().to_string(),
            dns.clone(),
        )]))),
    );
    let literal_check = destinations.check_literal(&host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => {
            assert_eq!(Some(ip), literal, "hyper and url agree on the literal host");
            assert_eq!(literal_check.is_ok(), policy.check_ip(ip).is_ok());
            if defaulted && literal_check.is_ok() {
                assert!(!forbidden(ip), "the sender would connect to {ip}");
            }
        }
        Err(_) => {
            assert!(
                literal.is_none(),
                "url saw an IP literal where hyper sees {host:?}"
            );
            assert!(literal_check.is_ok());
        }
    }
    if literal.is_none() {
        // Creation-time vetting resolves the name: one forbidden address refuses it.
        let vetted = block_on(destinations.vet(&policy, &url));
        if vetted.is_ok() {
            assert!(accepted.is_ok());
            for &ip in &dns {
                assert!(
                    policy.check_ip(ip).is_ok(),
                    "vet accepted a name resolving to {ip}"
                );
            }
        }
        // Connect time: the resolver only hands hyper allowed addresses.
        if let Ok(name) = hyper_util::client::legacy::connect::dns::Name::from_str(&host) {
            let mut resolver = GuardedResolver(destinations.clone());
            let call = tower_service::Service::call(&mut resolver, name);
            if let Ok(addrs) = block_on(call) {
                for addr in addrs {
                    assert!(policy.check_ip(addr.ip()).is_ok());
                    if defaulted {
                        assert!(!forbidden(addr.ip()), "the resolver handed out {addr}");
                    }
                }
            }
        }
    }
}
