//! Runs the fuzz properties of `rev23_webhooks::fuzzing` over the committed seed corpora
//! (`fuzz/seeds/<target>/`) and a bounded number of deterministic mutations of every seed, so the
//! invariants the cargo-fuzz targets check are exercised by plain `cargo test` too (no nightly,
//! no libFuzzer). A failure names the seed and the mutation; the mutated input is written to
//! `target/fuzz-seed-failures/` for `cargo fuzz run <target> <file>`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rev23_webhooks::fuzzing;

/// Mutations per seed (override with `FUZZ_SEED_MUTATIONS`).
const DEFAULT_MUTATIONS: usize = 2000;
/// The signature property does several ed25519 operations per input, each milliseconds in an
/// unoptimized test build: fewer mutations here (cargo-fuzz runs it at volume).
const SIGNATURE_MUTATIONS: usize = 10;

/// xorshift64*: tiny, deterministic, good enough to pick bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes the parsers care about, spliced in often.
const INTERESTING: &[&[u8]] = &[
    b"\n",
    b" ",
    b",",
    b".",
    b":",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\\u0000",
    b"\\u005f",
    b"0",
    b"-1",
    b"1e999",
    b"null",
    b"true",
    b"@",
    b"%2e",
    b"%00",
    b"[::ffff:",
    b"0x",
    b"v1,",
    b"v1a,",
    b"whsec_",
    b"whpk_",
    b"whsk_",
    b"\xff",
    b"\xc3\xa9",
    b"\xfb",
    b"\xfc",
    b"\xfd",
];

fn mutate(seed: &[u8], rng: &mut Rng, pool: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                data.drain(i..i + n);
            }
            4 => {
                let i = rng.below(len + 1);
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                data.splice(i..i, piece.iter().copied());
            }
            5 if len > 0 => {
                // Duplicate a chunk (repeated fields, batches).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            6 if len > 0 => data.truncate(rng.below(len)),
            7 if !pool.is_empty() => {
                // Cross over with another seed of the same target.
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                // Overwrite a byte with an ASCII digit or letter (numbers, hosts, base64).
                let i = rng.below(len);
                data[i] = b"0123456789abcdefxyzAZ+/=-_"[rng.below(26)];
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("seed dir entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("seed file");
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 20,
        "{target}: only {} seeds in {}",
        out.len(),
        dir.display()
    );
    out
}

fn run(target: &str, property: fn(&[u8]), default_mutations: usize) {
    let mutations = std::env::var("FUZZ_SEED_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_mutations);
    let seeds = seeds(target);
    let pool: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    for (n, (path, seed)) in seeds.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy();
        if catch_unwind(|| property(seed)).is_err() {
            panic!("{target}: seed {name} fails its property");
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((n as u64 + 1) << 17) ^ seed.len() as u64);
        for m in 0..mutations {
            let input = mutate(seed, &mut rng, &pool);
            if catch_unwind(AssertUnwindSafe(|| property(&input))).is_err() {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-seed-failures");
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("{target}-{name}-{m}"));
                let _ = std::fs::write(&file, &input);
                panic!(
                    "{target}: mutation {m} of seed {name} fails its property; input saved to {}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn codec_seeds() {
    run("codec", fuzzing::codec, DEFAULT_MUTATIONS);
}

#[test]
fn ingest_seeds() {
    run("ingest", fuzzing::ingest, DEFAULT_MUTATIONS);
}

#[test]
fn signature_seeds() {
    run("signature", fuzzing::signature, SIGNATURE_MUTATIONS);
}

#[test]
fn destination_seeds() {
    run("destination", fuzzing::destination, DEFAULT_MUTATIONS);
}

/// Writes the generated seeds (`fuzz/seeds/codec/enc-*`, `fuzz/seeds/signature/gen-*`) with the
/// real encoder and signers. Run after a format change:
/// `cargo test --test fuzz_seeds -- --ignored write_generated_seeds`.
#[test]
#[ignore]
fn write_generated_seeds() {
    use rev23_webhooks::journal::codec::{encode, Envelope, Origin};
    use rev23_webhooks::sender::signing::{signature_header, HmacSecret, SigningKey};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let base = Envelope {
        offset: 300,
        id: "evt_01JF3ZQ8X4Y5Z6A7B8C9D0E1F2".into(),
        kind: "customer.created".into(),
        timestamp_ms: 1_796_376_051_123,
        appended_at_ms: 1_796_376_051_124,
        origin: Origin {
            key_id: Some("key_01JF3ZQ8X4".into()),
            user_id: Some("usr_01JF3ZQ8X4".into()),
        },
        assigned_user_id: None,
        entity_id: Some("cus_1".into()),
        payload: br#"{"id":"cus_1","first_name":"Ann","email":"ann@example.com"}"#.to_vec(),
    };
    let mut envelopes: Vec<(&str, Envelope)> = vec![("customer-created", base.clone())];
    let mut add = |name: &'static str, f: &dyn Fn(&mut Envelope)| {
        let mut e = base.clone();
        f(&mut e);
        envelopes.push((name, e));
    };
    add("offset-1", &|e| e.offset = 1);
    add("offset-250", &|e| e.offset = 250);
    add("offset-251", &|e| e.offset = 251);
    add("offset-65535", &|e| e.offset = 65_535);
    add("offset-65536", &|e| e.offset = 65_536);
    add("offset-u32max", &|e| e.offset = u32::MAX as u64);
    add("offset-u64max", &|e| e.offset = u64::MAX);
    add("ts-zero", &|e| {
        e.timestamp_ms = 0;
        e.appended_at_ms = 0
    });
    add("ts-negative", &|e| e.timestamp_ms = -1);
    add("ts-min-max", &|e| {
        e.timestamp_ms = i64::MIN;
        e.appended_at_ms = i64::MAX
    });
    add("no-origin", &|e| e.origin = Origin::default());
    add("origin-key-only", &|e| e.origin.user_id = None);
    add("assigned", &|e| {
        e.kind = "lead.created".into();
        e.assigned_user_id = Some("usr_7".into());
        e.entity_id = Some("lead_9".into());
        e.payload = br#"{"id":"lead_9"}"#.to_vec()
    });
    add("internal-key-created", &|e| {
        e.kind = "internal.key_created".into();
        e.entity_id = None;
        e.payload =
            br#"{"key_id":"key_1","prefix":"ca_abcdefghi","permissions":["ingest:event"]}"#.to_vec()
    });
    add("empty-strings", &|e| {
        e.id = String::new();
        e.kind = String::new();
        e.payload = Vec::new()
    });
    add("unicode", &|e| {
        e.id = "évt-ü-日本".into();
        e.payload = "{\"id\":\"c\",\"name\":\"Zoë 🐉\"}".as_bytes().to_vec()
    });
    add("numeric-entity", &|e| {
        e.entity_id = Some("12345678901234567890".into());
        e.payload = br#"{"id":12345678901234567890}"#.to_vec()
    });
    add("release-form", &|e| {
        e.kind = "release_form.generated".into();
        e.entity_id = Some("rf1".into());
        e.payload = br#"{"id":"rf1","customer_id":"c1","pdf":{"sha256":"4b6e7d0b5e6f1d1c2c2ab8a3d1f8b6a5c2a3e4f5a6b7c8d9e0f1a2b3c4d5e6f7","size_bytes":9,"content_type":"application/pdf"}}"#.to_vec()
    });
    add("payload-250", &|e| e.payload = vec![b'x'; 250]);
    add("payload-251", &|e| e.payload = vec![b'y'; 251]);
    add("payload-4k", &|e| {
        e.payload = format!("{{\"id\":\"c\",\"notes\":\"{}\"}}", "n".repeat(4000)).into_bytes()
    });
    add("binary-payload", &|e| e.payload = (0..=255u8).collect());
    add("long-id", &|e| e.id = "a".repeat(300));
    for (name, envelope) in envelopes {
        let path = root.join("codec").join(format!("enc-{name}"));
        std::fs::write(path, encode(&envelope).unwrap()).unwrap();
    }

    // Signatures: lines id, timestamp, signature header, secret, key, then the body.
    let secret_text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let secret = HmacSecret::parse(secret_text).unwrap();
    let key = SigningKey::from_seed(&[7u8; 32]);
    let rotated = HmacSecret::from_bytes(&[42u8; 32]).unwrap();
    /// name, webhook-id, timestamp, body, sign v1, sign v1a
    type Case<'a> = (&'a str, &'a str, i64, &'a [u8], bool, bool);
    let cases: Vec<Case> = vec![
        ("both", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1_796_376_051, br#"{"type":"customer.created","timestamp":"2026-12-04T09:20:51.123Z","data":{"id":"cus_1"}}"#, true, true),
        ("v1-only", "msg_1", 1_614_265_330, br#"{"test": 2432232314}"#, true, false),
        ("v1a-only", "evt_01JF3ZQ8X4", 1_796_376_051, b"{}", false, true),
        ("rotation", "msg_rot", 1_796_376_000, br#"{"id":"x"}"#, true, true),
        ("empty-body", "msg_empty", 1_796_376_051, b"", true, true),
        ("ts-zero", "msg_zero", 0, b"body", true, true),
        ("ts-max", "msg_max", 253_402_300_799, b"body", true, true),
        ("dotted-id", "a.b.c", 1_796_376_051, b"x.y.z", true, true),
        ("binary-body", "msg_bin", 1_796_376_051, b"\x00\xff\n\r\n\x80", true, true),
        ("newlines-body", "msg_nl", 1_796_376_051, b"line1\nline2\nline3\n", true, true),
    ];
    for (name, id, ts, body, v1, v1a) in cases {
        let hmacs: Vec<&HmacSecret> = match (name, v1) {
            ("rotation", _) => vec![&rotated, &secret],
            (_, true) => vec![&secret],
            _ => vec![],
        };
        let header = signature_header(&hmacs, v1a.then_some(&key), id, ts, body);
        let key_line = if name == "v1a-only" {
            key.to_whsk()
        } else {
            key.public_whpk()
        };
        let mut seed = format!("{id}\n{ts}\n{header}\n{secret_text}\n{key_line}\n").into_bytes();
        seed.extend_from_slice(body);
        std::fs::write(root.join("signature").join(format!("gen-{name}")), seed).unwrap();
    }
}
