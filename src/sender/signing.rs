//! Standard Webhooks signatures (spec 1.0.0), for both ends of a delivery: the sender signs with
//! an HMAC secret (`v1`, `whsec_...`) and the daemon's ed25519 key (`v1a`, `whsk_...`), and the
//! `verify` / `listen` commands (and any Rust receiver) check them. It lives in one file so the
//! signed bytes, `{webhook-id}.{webhook-timestamp}.{body}`, are defined in exactly one place, and
//! so every parser a receiver exposes to the network can be tested (and fuzzed) together.
//!
//! Compatibility with the reference libraries (`standardwebhooks` 1.3.0 for Python and JS):
//! secrets are accepted with or without `whsec_`, padded or unpadded standard base64; the
//! timestamp must be integer seconds and is checked 5 minutes both ways by default; the header is a
//! space-separated list of `<version>,<base64>` entries, unknown versions are ignored, and one
//! matching entry is enough. Unlike them, this verifier also checks `v1a` (ed25519) entries, with
//! strict verification (no malleable signatures, no small-order public keys).
//!
//! Nothing in here panics on untrusted input, and no error message contains key material.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header names of a Standard Webhooks delivery.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The prefixes of the three key formats.
pub const SECRET_PREFIX: &str = "whsec_";
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Prefix of [`SigningKey::key_id`].
pub const KEY_ID_PREFIX: &str = "sk_";

/// The spec allows HMAC secrets of 24 to 64 bytes; `generate` makes 32.
pub const MIN_SECRET_BYTES: usize = 24;
pub const MAX_SECRET_BYTES: usize = 64;
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The reference libraries' tolerance, both past and future.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;
/// 9999-12-31T23:59:59Z. Larger values are not seconds (a millisecond timestamp is ~1.7e12);
/// the Python library rejects them the same way, as a malformed timestamp.
pub const MAX_TIMESTAMP_SECS: i64 = 253_402_300_799;
/// At most this many well-formed `v1a` entries are tried per header (each costs an ed25519
/// verification); a sender has one key, two during rotation.
pub const MAX_V1A_ATTEMPTS: usize = 8;

/// The file [`SigningKeyFile`] keeps in the data directory.
pub const KEY_FILE_NAME: &str = "signing.key";
/// A key file is a few hundred bytes; anything far larger is not ours.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Standard base64 that accepts input with or without padding (like the reference libraries).
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a `whsec_` / `whsk_` / `whpk_` string was rejected. Never contains key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("expected a key starting with `{expected}`")]
    MissingPrefix { expected: &'static str },
    #[error("the key is not valid standard base64")]
    Base64,
    #[error(
        "the secret decodes to {len} bytes; Standard Webhooks secrets are {MIN_SECRET_BYTES} to \
         {MAX_SECRET_BYTES} bytes"
    )]
    SecretLength { len: usize },
    #[error(
        "an ed25519 key is 32 bytes (a `whsk_` key may also be 64: seed + public key), not {len}"
    )]
    KeyLength { len: usize },
    #[error("the 64-byte `whsk_` key's public half does not belong to its seed")]
    KeyPairMismatch,
    #[error("the public key is not a valid ed25519 point")]
    InvalidPoint,
    #[error("the public key is a weak (small-order) ed25519 point")]
    WeakKey,
}

/// Why a delivery did not verify (or could not be checked).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum VerifyError {
    #[error("missing required header `{0}`")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not integer unix seconds")]
    BadTimestamp,
    #[error("message timestamp too old ({age_secs} s ago; tolerance {tolerance_secs} s)")]
    TimestampTooOld { age_secs: u64, tolerance_secs: u64 },
    #[error("message timestamp too new ({ahead_secs} s ahead; tolerance {tolerance_secs} s)")]
    TimestampTooNew {
        ahead_secs: u64,
        tolerance_secs: u64,
    },
    #[error("no matching signature found")]
    NoMatchingSignature,
    #[error("invalid secret: {0}")]
    BadSecret(KeyError),
    #[error("invalid public key: {0}")]
    BadPublicKey(KeyError),
    #[error("no secret or public key to verify with")]
    NoKeys,
}

/// Strips `prefix` (if `prefix_required`, it must be there) and decodes the rest as standard
/// base64, padding optional. Surrounding whitespace (a pasted newline) is ignored.
fn decode_key(
    text: &str,
    prefix: &'static str,
    prefix_required: bool,
) -> Result<Vec<u8>, KeyError> {
    let text = text.trim();
    let body = match text.strip_prefix(prefix) {
        Some(rest) => rest,
        None if text.is_empty() => return Err(KeyError::Empty),
        None if prefix_required => return Err(KeyError::MissingPrefix { expected: prefix }),
        None => text,
    };
    if body.is_empty() {
        return Err(KeyError::Empty);
    }
    BASE64_LENIENT.decode(body).map_err(|_| KeyError::Base64)
}

/// The exact bytes both signatures cover: `{msg_id}.{timestamp}.{body}`.
pub fn signed_content(msg_id: &str, timestamp_secs: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp_secs.to_string();
    let mut out = Vec::with_capacity(msg_id.len() + ts.len() + body.len() + 2);
    out.extend_from_slice(msg_id.as_bytes());
    out.push(b'.');
    out.extend_from_slice(ts.as_bytes());
    out.push(b'.');
    out.extend_from_slice(body);
    out
}

/// A symmetric `v1` secret (HMAC-SHA256), shown as `whsec_` + standard base64.
#[derive(Clone)]
pub struct HmacSecret {
    bytes: Vec<u8>,
}

impl HmacSecret {
    /// 32 fresh random bytes, and their `whsec_` form.
    pub fn generate() -> (HmacSecret, String) {
        let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let secret = HmacSecret { bytes };
        let shown = secret.to_whsec();
        (secret, shown)
    }

    /// Parses `whsec_<base64>` or bare `<base64>` (padded or not); 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<HmacSecret, KeyError> {
        Self::from_bytes(&decode_key(text, SECRET_PREFIX, false)?)
    }

    /// A secret from raw bytes (24 to 64 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<HmacSecret, KeyError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(KeyError::SecretLength { len: bytes.len() });
        }
        Ok(HmacSecret {
            bytes: bytes.to_vec(),
        })
    }

    /// `whsec_` + padded standard base64.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.bytes))
    }

    fn mac(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.bytes).expect("HMAC accepts any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `v1,<base64>` signature entry.
    pub fn sign(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(msg_id, timestamp_secs, body))
        )
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacSecret({} bytes, redacted)", self.bytes.len())
    }
}

/// The daemon's asymmetric `v1a` key (ed25519). Shown as `whsk_` + base64 of the 32-byte seed.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A fresh key from 32 random bytes.
    pub fn generate() -> SigningKey {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Parses `whsk_<base64>` (prefix required) of a 32-byte seed, or of the 64-byte seed +
    /// public key form some libraries (libsodium, NaCl) use; the public half must match.
    pub fn from_whsk(text: &str) -> Result<SigningKey, KeyError> {
        let bytes = decode_key(text, SIGNING_KEY_PREFIX, true)?;
        let seed: [u8; 32] = match bytes.len() {
            32 | 64 => bytes[..32]
                .try_into()
                .map_err(|_| KeyError::KeyLength { len: bytes.len() })?,
            len => return Err(KeyError::KeyLength { len }),
        };
        let key = Self::from_seed(&seed);
        if bytes.len() == 64 && key.inner.verifying_key().as_bytes()[..] != bytes[32..] {
            return Err(KeyError::KeyPairMismatch);
        }
        Ok(key)
    }

    /// `whsk_` + padded standard base64 of the 32-byte seed.
    pub fn to_whsk(&self) -> String {
        format!(
            "{SIGNING_KEY_PREFIX}{}",
            STANDARD.encode(self.inner.to_bytes())
        )
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// `whpk_` + padded standard base64 of the 32-byte public key.
    pub fn public_whpk(&self) -> String {
        self.verifying_key().to_whpk()
    }

    /// `sk_` + the first 16 hex digits of SHA-256(public key): stable for the key's lifetime.
    pub fn key_id(&self) -> String {
        self.verifying_key().key_id()
    }

    /// The `v1a,<base64 of the 64-byte signature>` entry.
    pub fn sign(&self, msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        let signature = self
            .inner
            .sign(&signed_content(msg_id, timestamp_secs, body));
        format!("v1a,{}", STANDARD.encode(signature.to_bytes()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, redacted)", self.key_id())
    }
}

/// An ed25519 public key, shown as `whpk_` + base64 (what `GET /v1/signing-keys` lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl VerifyingKey {
    /// Parses `whpk_<base64>` (prefix required) of a 32-byte key; rejects invalid and weak points.
    pub fn from_whpk(text: &str) -> Result<VerifyingKey, KeyError> {
        let bytes = decode_key(text, PUBLIC_KEY_PREFIX, true)?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::KeyLength { len: bytes.len() })?;
        Self::from_bytes(&array)
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
        let inner =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        if inner.is_weak() {
            return Err(KeyError::WeakKey);
        }
        Ok(VerifyingKey { inner })
    }

    pub fn to_whpk(&self) -> String {
        format!(
            "{PUBLIC_KEY_PREFIX}{}",
            STANDARD.encode(self.inner.as_bytes())
        )
    }

    /// See [`SigningKey::key_id`].
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.inner.as_bytes());
        let mut out = String::with_capacity(KEY_ID_PREFIX.len() + 16);
        out.push_str(KEY_ID_PREFIX);
        for byte in &digest[..8] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }

    fn verify_raw(&self, content: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.inner.verify_strict(content, &signature).is_ok()
    }
}

/// The `webhook-signature` value the sender puts on a delivery: one `v1,` entry per HMAC secret
/// (the current one first, then the previous one during a rotation), then the `v1a,` entry.
pub fn signature_header(
    hmacs: &[&HmacSecret],
    key: Option<&SigningKey>,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> String {
    let mut entries: Vec<String> = hmacs
        .iter()
        .map(|secret| secret.sign(msg_id, timestamp_secs, body))
        .collect();
    if let Some(key) = key {
        entries.push(key.sign(msg_id, timestamp_secs, body));
    }
    entries.join(" ")
}

/// The `(version, base64 signature)` entries of a `webhook-signature` value, in order. Any ASCII
/// whitespace separates entries; an entry without a comma is skipped.
pub fn signature_entries(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
}

/// The three Standard Webhooks headers of a delivery, as received (`None` when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveryHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Which signature versions verified. At least one is true in an `Ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The parsed `webhook-timestamp`.
    pub timestamp_secs: i64,
    pub v1: bool,
    pub v1a: bool,
}

impl Verified {
    /// `["v1"]`, `["v1a"]` or `["v1", "v1a"]`.
    pub fn versions(&self) -> Vec<&'static str> {
        let mut out = Vec::with_capacity(2);
        if self.v1 {
            out.push("v1");
        }
        if self.v1a {
            out.push("v1a");
        }
        out
    }
}

/// Parses `webhook-timestamp`: ASCII digits only (surrounding whitespace allowed), seconds.
pub fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    match text.parse::<i64>() {
        Ok(secs) if secs <= MAX_TIMESTAMP_SECS => Ok(secs),
        _ => Err(VerifyError::BadTimestamp),
    }
}

/// Checks `timestamp_secs` against `now_secs`; `None` skips the check (old captures).
pub fn check_tolerance(
    timestamp_secs: i64,
    now_secs: i64,
    tolerance_secs: Option<u64>,
) -> Result<(), VerifyError> {
    let Some(tolerance_secs) = tolerance_secs else {
        return Ok(());
    };
    let diff = i128::from(now_secs) - i128::from(timestamp_secs);
    let saturate = |v: i128| u64::try_from(v).unwrap_or(u64::MAX);
    if diff > i128::from(tolerance_secs) {
        return Err(VerifyError::TimestampTooOld {
            age_secs: saturate(diff),
            tolerance_secs,
        });
    }
    if -diff > i128::from(tolerance_secs) {
        return Err(VerifyError::TimestampTooNew {
            ahead_secs: saturate(-diff),
            tolerance_secs,
        });
    }
    Ok(())
}

/// Longest base64 text considered for a signature entry (a 64-byte signature is 88 chars).
const MAX_ENTRY_B64_LEN: usize = 128;

fn decode_entry<const N: usize>(b64: &str) -> Option<[u8; N]> {
    if b64.len() > MAX_ENTRY_B64_LEN {
        return None;
    }
    BASE64_LENIENT.decode(b64).ok()?.as_slice().try_into().ok()
}

/// Verifies a delivery: headers present, timestamp within `tolerance_secs` of `now_secs` (`None`
/// = unchecked), and at least one `v1` entry matching `secret` (constant-time) or one `v1a`
/// entry verifying under `public_key`. Both key kinds are checked when both are given, so the
/// result says which versions verified.
pub fn verify(
    headers: &DeliveryHeaders<'_>,
    body: &[u8],
    secret: Option<&HmacSecret>,
    public_key: Option<&VerifyingKey>,
    tolerance_secs: Option<u64>,
    now_secs: i64,
) -> Result<Verified, VerifyError> {
    if secret.is_none() && public_key.is_none() {
        return Err(VerifyError::NoKeys);
    }
    let msg_id = present(headers.id, HEADER_ID)?;
    let timestamp = present(headers.timestamp, HEADER_TIMESTAMP)?;
    let signature = present(headers.signature, HEADER_SIGNATURE)?;
    let timestamp_secs = parse_timestamp(timestamp)?;
    check_tolerance(timestamp_secs, now_secs, tolerance_secs)?;

    let mut v1 = false;
    if let Some(secret) = secret {
        let expected = secret.mac(msg_id, timestamp_secs, body);
        for (_, b64) in signature_entries(signature).filter(|(v, _)| *v == "v1") {
            if let Some(given) = decode_entry::<32>(b64) {
                v1 |= bool::from(given.ct_eq(&expected));
            }
        }
    }
    let mut v1a = false;
    if let Some(public_key) = public_key {
        let candidates: Vec<[u8; 64]> = signature_entries(signature)
            .filter(|(v, _)| *v == "v1a")
            .filter_map(|(_, b64)| decode_entry::<64>(b64))
            .take(MAX_V1A_ATTEMPTS)
            .collect();
        if !candidates.is_empty() {
            let content = signed_content(msg_id, timestamp_secs, body);
            v1a = candidates
                .iter()
                .any(|sig| public_key.verify_raw(&content, sig));
        }
    }
    if v1 || v1a {
        Ok(Verified {
            timestamp_secs,
            v1,
            v1a,
        })
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

/// A header's trimmed value, or `MissingHeader` when absent or blank (like the reference libs).
fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, VerifyError> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// Unix seconds now, for [`verify`].
pub fn now_secs() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}

/// A receiver's keys and tolerance, parsed once: what `verify` and `listen` hold.
#[derive(Clone, Debug)]
pub struct Verifier {
    pub secret: Option<HmacSecret>,
    pub public_key: Option<VerifyingKey>,
    /// `None` = no timestamp check.
    pub tolerance_secs: Option<u64>,
}

impl Verifier {
    /// From the command-line forms (`whsec_...`, `whpk_...`); at least one is required. The
    /// tolerance starts at [`DEFAULT_TOLERANCE_SECS`].
    pub fn from_strings(
        secret: Option<&str>,
        public_key: Option<&str>,
    ) -> Result<Verifier, VerifyError> {
        let secret = secret
            .map(HmacSecret::parse)
            .transpose()
            .map_err(VerifyError::BadSecret)?;
        let public_key = public_key
            .map(VerifyingKey::from_whpk)
            .transpose()
            .map_err(VerifyError::BadPublicKey)?;
        if secret.is_none() && public_key.is_none() {
            return Err(VerifyError::NoKeys);
        }
        Ok(Verifier {
            secret,
            public_key,
            tolerance_secs: Some(DEFAULT_TOLERANCE_SECS),
        })
    }

    pub fn with_tolerance(mut self, tolerance_secs: Option<u64>) -> Verifier {
        self.tolerance_secs = tolerance_secs;
        self
    }

    pub fn verify(
        &self,
        headers: &DeliveryHeaders<'_>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<Verified, VerifyError> {
        verify(
            headers,
            body,
            self.secret.as_ref(),
            self.public_key.as_ref(),
            self.tolerance_secs,
            now_secs,
        )
    }
}

/// Why the signing key file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is corrupt ({reason}); it is never replaced automatically: restore it from a \
         backup, or move it away to make a new key (receivers pinned to the old public key will \
         then reject deliveries)"
    )]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFileJson {
    id: String,
    secret: String,
    created_at_ms: i64,
}

/// The daemon's ed25519 signing key, kept in `<data_dir>/signing.key` (mode 0600) as
/// `{"id":"sk_...","secret":"whsk_...","created_at_ms":...}`.
#[derive(Debug)]
pub struct SigningKeyFile {
    pub path: PathBuf,
    /// [`SigningKey::key_id`] of `key`.
    pub id: String,
    pub key: SigningKey,
    pub created_at_ms: i64,
}

impl SigningKeyFile {
    /// Loads `<data_dir>/signing.key`, or creates it (and `data_dir`, 0700) if it does not exist.
    /// A file that exists but does not parse is an error, never replaced.
    pub fn load_or_create(data_dir: &Path) -> Result<SigningKeyFile, KeyFileError> {
        let path = data_dir.join(KEY_FILE_NAME);
        match Self::load(&path) {
            Err(KeyFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|source| KeyFileError::Io {
                path: data_dir.to_path_buf(),
                source,
            })?;
        let key = SigningKey::generate();
        let record = KeyFileJson {
            id: key.key_id(),
            secret: key.to_whsk(),
            created_at_ms: crate::clock::now_ms(),
        };
        let mut text = serde_json::to_string(&record).map_err(|e| KeyFileError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        if create_exclusive(&path, text.as_bytes())? {
            Ok(SigningKeyFile {
                path,
                id: record.id,
                key,
                created_at_ms: record.created_at_ms,
            })
        } else {
            // Another process created it first: use its key, not ours.
            Self::load(&path)
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<SigningKeyFile, KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |reason: String| KeyFileError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => corrupt("not UTF-8".into()),
                _ => io(e),
            })?;
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(corrupt(format!("larger than {MAX_KEY_FILE_BYTES} bytes")));
        }
        if text.trim().is_empty() {
            return Err(corrupt("empty file".into()));
        }
        // Only the position of a JSON error: serde's messages can quote values, i.e. the secret.
        let record: KeyFileJson = serde_json::from_str(&text).map_err(|e| {
            corrupt(format!(
                "not the expected JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let key =
            SigningKey::from_whsk(&record.secret).map_err(|e| corrupt(format!("`secret`: {e}")))?;
        if key.key_id() != record.id {
            return Err(corrupt(format!(
                "`id` is {:?} but the key's id is {}",
                record.id,
                key.key_id()
            )));
        }
        Ok(SigningKeyFile {
            path: path.to_path_buf(),
            id: record.id,
            key,
            created_at_ms: record.created_at_ms,
        })
    }
}

/// Writes `contents` to `path` only if `path` does not exist: a 0600 temp file, fsync, then a
/// hard link (which, unlike rename, never replaces an existing file), then fsync the directory.
/// Falls back to rename where hard links are unsupported. `Ok(false)`: `path` already existed.
fn create_exclusive(path: &Path, contents: &[u8]) -> Result<bool, KeyFileError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| KeyFileError::Io { path: p, source }
    };
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let tmp_name = format!(
        ".{KEY_FILE_NAME}.tmp-{}-{}",
        std::process::id(),
        suffix
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    let created = match std::fs::hard_link(&tmp, path) {
        Ok(()) => {
            let _ = std::fs::remove_file(&tmp);
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&tmp);
            false
        }
        Err(_) => {
            if path.exists() {
                let _ = std::fs::remove_file(&tmp);
                false
            } else {
                std::fs::rename(&tmp, path).map_err(io(path))?;
                true
            }
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SECRET_BARE: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR1_TS: i64 = 1696200454;
    const VECTOR1_BODY: &[u8] = br#"{"type": "example.created", "timestamp":"2023-09-28T19:20:22+00:00", "data":{"str":"string","bool":true,"int":42}}"#;
    const VECTOR1_SIG: &str = "v1,GgjvufBlIj71MBIVQotYGb+xEC3LNXCsIZp0HsDC8qs=";
    const VECTOR2_TS: i64 = 1614265330;
    const VECTOR2_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR2_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const V1A_SEED: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const V1A_PUBLIC: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    const V1A_BODY: &[u8] = br#"{"type":"appointment.created","data":{"id":"apt_1"}}"#;
    const V1A_SIG: &str = "v1a,gbxjmWqpPw8mVgwiL2N5PRpwaa6DQi7jregrb6q4tH4ZFOVH6KlAi6dYHn3TTh/H7UIgc5/9gf8YZryN19PqAg==";

    fn seed_0_to_31() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> DeliveryHeaders<'a> {
        DeliveryHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    fn vector_secret() -> HmacSecret {
        HmacSecret::parse(VECTOR_SECRET).unwrap()
    }

    /// Verifies the first v1 vector as if `now` were `VECTOR1_TS + offset`.
    fn verify_v1_at(sig: &str, offset: i64) -> Result<Verified, VerifyError> {
        let ts = VECTOR1_TS.to_string();
        verify(
            &headers(VECTOR_ID, &ts, sig),
            VECTOR1_BODY,
            Some(&vector_secret()),
            None,
            Some(DEFAULT_TOLERANCE_SECS),
            VECTOR1_TS + offset,
        )
    }

    #[test]
    fn v1_reference_vectors_sign_exactly() {
        let bare = HmacSecret::parse(VECTOR_SECRET_BARE).unwrap();
        assert_eq!(bare.sign(VECTOR_ID, VECTOR1_TS, VECTOR1_BODY), VECTOR1_SIG);
        assert_eq!(
            vector_secret().sign(VECTOR_ID, VECTOR2_TS, VECTOR2_BODY),
            VECTOR2_SIG
        );
        assert_eq!(bare.to_whsec(), VECTOR_SECRET);
    }

    #[test]
    fn v1_reference_vectors_verify() {
        let ok = verify_v1_at(VECTOR1_SIG, 0).unwrap();
        assert_eq!(
            ok,
            Verified {
                timestamp_secs: VECTOR1_TS,
                v1: true,
                v1a: false
            }
        );
        assert_eq!(ok.versions(), vec!["v1"]);
        let ts = VECTOR2_TS.to_string();
        let ok = verify(
            &headers(VECTOR_ID, &ts, VECTOR2_SIG),
            VECTOR2_BODY,
            Some(&vector_secret()),
            None,
            None,
            0,
        );
        assert!(ok.unwrap().v1);
    }

    #[test]
    fn wrong_signature_last_char_changed() {
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        let ts = VECTOR2_TS.to_string();
        let result = verify(
            &headers(VECTOR_ID, &ts, wrong),
            VECTOR2_BODY,
            Some(&vector_secret()),
            None,
            None,
            0,
        );
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }

    #[test]
    fn tampered_body_or_id_fails() {
        let ts = VECTOR1_TS.to_string();
        let mut body = VECTOR1_BODY.to_vec();
        body[10] ^= 1;
        let check = |id: &str, body: &[u8]| {
            verify(
                &headers(id, &ts, VECTOR1_SIG),
                body,
                Some(&vector_secret()),
                None,
                None,
                0,
            )
        };
        assert_eq!(
            check(VECTOR_ID, &body),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            check("msg_other", VECTOR1_BODY),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(check(VECTOR_ID, VECTOR1_BODY).is_ok());
    }

    #[test]
    fn timestamp_tolerance_is_five_minutes_both_ways() {
        assert!(verify_v1_at(VECTOR1_SIG, 300).is_ok());
        assert!(verify_v1_at(VECTOR1_SIG, -300).is_ok());
        assert_eq!(
            verify_v1_at(VECTOR1_SIG, 301),
            Err(VerifyError::TimestampTooOld {
                age_secs: 301,
                tolerance_secs: 300
            })
        );
        assert_eq!(
            verify_v1_at(VECTOR1_SIG, -301),
            Err(VerifyError::TimestampTooNew {
                ahead_secs: 301,
                tolerance_secs: 300
            })
        );
        // The timestamp is checked before the signature, like the reference libraries.
        assert!(matches!(
            verify_v1_at("v1,garbage", 10_000),
            Err(VerifyError::TimestampTooOld { .. })
        ));
    }

    #[test]
    fn missing_headers() {
        let secret = vector_secret();
        let ts = VECTOR1_TS.to_string();
        let full = headers(VECTOR_ID, &ts, VECTOR1_SIG);
        let cases = [
            (DeliveryHeaders { id: None, ..full }, HEADER_ID),
            (
                DeliveryHeaders {
                    id: Some(" "),
                    ..full
                },
                HEADER_ID,
            ),
            (
                DeliveryHeaders {
                    timestamp: None,
                    ..full
                },
                HEADER_TIMESTAMP,
            ),
            (
                DeliveryHeaders {
                    signature: None,
                    ..full
                },
                HEADER_SIGNATURE,
            ),
            (
                DeliveryHeaders {
                    signature: Some(""),
                    ..full
                },
                HEADER_SIGNATURE,
            ),
            (DeliveryHeaders::default(), HEADER_ID),
        ];
        for (h, name) in cases {
            assert_eq!(
                verify(&h, VECTOR1_BODY, Some(&secret), None, None, 0),
                Err(VerifyError::MissingHeader(name))
            );
        }
    }

    #[test]
    fn non_numeric_and_millisecond_timestamps_are_malformed() {
        let secret = vector_secret();
        for ts in [
            "",
            "abc",
            "1696200454.5",
            "-1696200454",
            "+1696200454",
            "1e9",
            "1696200454000",
            "99999999999999999999",
        ] {
            let result = verify(
                &headers(VECTOR_ID, ts, VECTOR1_SIG),
                VECTOR1_BODY,
                Some(&secret),
                None,
                None,
                0,
            );
            let expected = if ts.is_empty() {
                VerifyError::MissingHeader(HEADER_TIMESTAMP)
            } else {
                VerifyError::BadTimestamp
            };
            assert_eq!(result, Err(expected), "timestamp {ts:?}");
        }
        assert_eq!(parse_timestamp(" 1696200454 "), Ok(1696200454));
        assert_eq!(parse_timestamp("253402300799"), Ok(MAX_TIMESTAMP_SECS));
        assert_eq!(
            parse_timestamp("253402300800"),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn multi_signature_header_with_one_valid_entry() {
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,dGVzdA==  junk\tv1a,AAAA {VECTOR1_SIG}  v1,"
        );
        assert!(verify_v1_at(&header, 0).unwrap().v1);
        // Unpadded base64 is accepted too.
        assert!(verify_v1_at(VECTOR1_SIG.trim_end_matches('='), 0).is_ok());
        // Unknown versions alone never match, and neither does the right value under `v1a`.
        let as_v2 = VECTOR1_SIG.replacen("v1,", "v2,", 1);
        assert_eq!(
            verify_v1_at(&as_v2, 0),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn v1a_vector_key_and_signature_exact() {
        let key = SigningKey::from_seed(&seed_0_to_31());
        assert_eq!(key.to_whsk(), V1A_SEED);
        assert_eq!(key.public_whpk(), V1A_PUBLIC);
        assert_eq!(key.sign(VECTOR_ID, VECTOR1_TS, V1A_BODY), V1A_SIG);
        let parsed = SigningKey::from_whsk(V1A_SEED).unwrap();
        assert_eq!(parsed.public_whpk(), V1A_PUBLIC);
        assert_eq!(parsed.key_id(), key.key_id());
        assert!(key.key_id().starts_with("sk_"));
        assert_eq!(key.key_id().len(), 3 + 16);

        let public = VerifyingKey::from_whpk(V1A_PUBLIC).unwrap();
        assert_eq!(public.to_whpk(), V1A_PUBLIC);
        assert_eq!(public.key_id(), key.key_id());
        let ts = VECTOR1_TS.to_string();
        let ok = verify(
            &headers(VECTOR_ID, &ts, V1A_SIG),
            V1A_BODY,
            None,
            Some(&public),
            None,
            0,
        )
        .unwrap();
        assert_eq!(ok.versions(), vec!["v1a"]);
        let mut tampered = V1A_BODY.to_vec();
        tampered[0] = b' ';
        assert_eq!(
            verify(
                &headers(VECTOR_ID, &ts, V1A_SIG),
                &tampered,
                None,
                Some(&public),
                None,
                0
            ),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn full_header_verifies_both_versions() {
        let secret = vector_secret();
        let key = SigningKey::from_seed(&seed_0_to_31());
        let header = signature_header(&[&secret], Some(&key), VECTOR_ID, VECTOR1_TS, V1A_BODY);
        assert_eq!(
            header,
            format!("{} {V1A_SIG}", secret.sign(VECTOR_ID, VECTOR1_TS, V1A_BODY))
        );
        let ts = VECTOR1_TS.to_string();
        let public = key.verifying_key();
        let ok = verify(
            &headers(VECTOR_ID, &ts, &header),
            V1A_BODY,
            Some(&secret),
            Some(&public),
            None,
            0,
        )
        .unwrap();
        assert_eq!(ok.versions(), vec!["v1", "v1a"]);
        // A wrong secret still passes on v1a, and says so.
        let (other, _) = HmacSecret::generate();
        let ok = verify(
            &headers(VECTOR_ID, &ts, &header),
            V1A_BODY,
            Some(&other),
            Some(&public),
            None,
            0,
        )
        .unwrap();
        assert_eq!(ok.versions(), vec!["v1a"]);
        // Another key's public key does not verify v1a.
        let stranger = SigningKey::generate().verifying_key();
        assert_eq!(
            verify(
                &headers(VECTOR_ID, &ts, &header),
                V1A_BODY,
                None,
                Some(&stranger),
                None,
                0
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(
                &headers(VECTOR_ID, &ts, &header),
                V1A_BODY,
                None,
                None,
                None,
                0
            ),
            Err(VerifyError::NoKeys)
        );
    }

    #[test]
    fn rotation_header_verifies_with_either_secret() {
        let (current, current_text) = HmacSecret::generate();
        let (previous, _) = HmacSecret::generate();
        let header = signature_header(&[&current, &previous], None, "msg_1", 1_700_000_000, b"{}");
        let entries: Vec<_> = signature_entries(&header).collect();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|(v, _)| *v == "v1"));
        assert_eq!(
            header.split(' ').next().unwrap(),
            current.sign("msg_1", 1_700_000_000, b"{}")
        );
        for secret in [&current, &previous] {
            let result = verify(
                &headers("msg_1", "1700000000", &header),
                b"{}",
                Some(secret),
                None,
                Some(300),
                1_700_000_100,
            );
            assert!(result.unwrap().v1);
        }
        let (unrelated, _) = HmacSecret::generate();
        assert_eq!(
            verify(
                &headers("msg_1", "1700000000", &header),
                b"{}",
                Some(&unrelated),
                None,
                None,
                0
            ),
            Err(VerifyError::NoMatchingSignature)
        );
        assert!(current_text.starts_with("whsec_"));
        assert_eq!(
            HmacSecret::parse(&current_text).unwrap().to_whsec(),
            current_text
        );
    }

    #[test]
    fn generated_secret_shape() {
        let (secret, text) = HmacSecret::generate();
        assert_eq!(secret.bytes.len(), 32);
        assert_eq!(text.len(), 6 + 44);
        assert_ne!(HmacSecret::generate().1, text);
        assert!(!format!("{secret:?}").contains(&text[6..]));
    }

    #[test]
    fn secret_parsing() {
        assert!(HmacSecret::parse(VECTOR_SECRET_BARE).is_ok());
        assert!(HmacSecret::parse(&format!(" {VECTOR_SECRET}\n")).is_ok());
        let unpadded = STANDARD.encode([7u8; 32]).trim_end_matches('=').to_string();
        assert!(HmacSecret::parse(&format!("whsec_{unpadded}")).is_ok());
        assert_eq!(HmacSecret::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(HmacSecret::parse("whsec_").unwrap_err(), KeyError::Empty);
        assert_eq!(
            HmacSecret::parse("whsec_not base64!").unwrap_err(),
            KeyError::Base64
        );
        assert_eq!(
            HmacSecret::parse(&STANDARD.encode([1u8; 23])).unwrap_err(),
            KeyError::SecretLength { len: 23 }
        );
        assert!(HmacSecret::parse(&STANDARD.encode([1u8; 64])).is_ok());
        assert_eq!(
            HmacSecret::parse(&STANDARD.encode([1u8; 65])).unwrap_err(),
            KeyError::SecretLength { len: 65 }
        );
        // URL-safe base64 is not standard base64.
        assert_eq!(
            HmacSecret::parse("whsec_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_").unwrap_err(),
            KeyError::Base64
        );
    }

    #[test]
    fn key_parsing() {
        assert_eq!(
            SigningKey::from_whsk("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap_err(),
            KeyError::MissingPrefix {
                expected: SIGNING_KEY_PREFIX
            }
        );
        assert_eq!(
            SigningKey::from_whsk(V1A_PUBLIC).unwrap_err(),
            KeyError::MissingPrefix {
                expected: SIGNING_KEY_PREFIX
            }
        );
        assert_eq!(
            VerifyingKey::from_whpk(V1A_SEED).unwrap_err(),
            KeyError::MissingPrefix {
                expected: PUBLIC_KEY_PREFIX
            }
        );
        assert_eq!(
            VerifyingKey::from_whpk("whpk_AAAA").unwrap_err(),
            KeyError::KeyLength { len: 3 }
        );
        assert_eq!(SigningKey::from_whsk("").unwrap_err(), KeyError::Empty);
        // 64-byte form: seed + public key.
        let key = SigningKey::from_seed(&seed_0_to_31());
        let mut both = seed_0_to_31().to_vec();
        both.extend_from_slice(key.verifying_key().inner.as_bytes());
        let parsed = SigningKey::from_whsk(&format!("whsk_{}", STANDARD.encode(&both))).unwrap();
        assert_eq!(parsed.public_whpk(), V1A_PUBLIC);
        both[40] ^= 1;
        assert_eq!(
            SigningKey::from_whsk(&format!("whsk_{}", STANDARD.encode(&both))).unwrap_err(),
            KeyError::KeyPairMismatch
        );
        // The identity point is small-order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            VerifyingKey::from_bytes(&identity).unwrap_err(),
            KeyError::WeakKey
        );
        assert!(!format!("{key:?}").contains("AAECAw"));
    }

    #[test]
    fn verifier_from_strings() {
        assert_eq!(
            Verifier::from_strings(None, None).unwrap_err(),
            VerifyError::NoKeys
        );
        assert_eq!(
            Verifier::from_strings(Some("whsec_x"), None).unwrap_err(),
            VerifyError::BadSecret(KeyError::Base64)
        );
        assert!(matches!(
            Verifier::from_strings(None, Some("whpk_AAAA")),
            Err(VerifyError::BadPublicKey(KeyError::KeyLength { len: 3 }))
        ));
        let verifier = Verifier::from_strings(Some(VECTOR_SECRET), Some(V1A_PUBLIC))
            .unwrap()
            .with_tolerance(None);
        let ts = VECTOR1_TS.to_string();
        assert!(verifier
            .verify(&headers(VECTOR_ID, &ts, VECTOR1_SIG), VECTOR1_BODY, 0)
            .is_ok());
        assert!(verifier
            .verify(&headers(VECTOR_ID, &ts, V1A_SIG), V1A_BODY, 0)
            .is_ok());
    }

    #[test]
    fn odd_inputs_never_panic() {
        let secret = vector_secret();
        let public = VerifyingKey::from_whpk(V1A_PUBLIC).unwrap();
        let long = "v1a,".to_string() + &"A".repeat(10_000);
        let many = "v1a,".to_string() + &STANDARD.encode([0u8; 64]) + " ";
        let many = many.repeat(100);
        let inputs = [
            "",
            ",",
            "v1,",
            ",,,",
            "v1,====",
            "v1a,=",
            "\u{feff}v1,é",
            long.as_str(),
            many.as_str(),
        ];
        for sig in inputs {
            for ts in ["0", "1", "9223372036854775807", "253402300799"] {
                let _ = verify(
                    &headers("id", ts, sig),
                    b"",
                    Some(&secret),
                    Some(&public),
                    Some(u64::MAX),
                    i64::MIN,
                );
                let _ = verify(
                    &headers("id", ts, sig),
                    b"",
                    Some(&secret),
                    Some(&public),
                    Some(0),
                    i64::MAX,
                );
            }
            let _ = HmacSecret::parse(sig);
            let _ = SigningKey::from_whsk(sig);
            let _ = VerifyingKey::from_whpk(sig);
        }
        assert_eq!(
            check_tolerance(0, i64::MAX, Some(0)).unwrap_err(),
            VerifyError::TimestampTooOld {
                age_secs: i64::MAX as u64,
                tolerance_secs: 0
            }
        );
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_file_round_trip_and_mode() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let created = SigningKeyFile::load_or_create(&dir).unwrap();
        assert_eq!(created.path, dir.join(KEY_FILE_NAME));
        assert_eq!(mode_of(&created.path), 0o600);
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(created.id, created.key.key_id());
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&created.path).unwrap()).unwrap();
        assert_eq!(json["id"], created.id.as_str());
        assert_eq!(json["secret"], created.key.to_whsk().as_str());
        assert_eq!(json["created_at_ms"], created.created_at_ms);

        let loaded = SigningKeyFile::load_or_create(&dir).unwrap();
        assert_eq!(loaded.id, created.id);
        assert_eq!(loaded.key.to_whsk(), created.key.to_whsk());
        assert_eq!(loaded.created_at_ms, created.created_at_ms);
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE_NAME)]);
    }

    #[test]
    fn corrupt_key_file_is_an_error_and_kept() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join(KEY_FILE_NAME);
        let good = SigningKeyFile::load_or_create(temp.path()).unwrap();
        let other = SigningKey::generate();
        let cases = [
            String::new(),
            "{not json".to_string(),
            r#"{"id":"sk_0","secret":"whsk_AAAA","created_at_ms":1}"#.to_string(),
            format!(
                r#"{{"id":"sk_0000000000000000","secret":"{}","created_at_ms":1}}"#,
                other.to_whsk()
            ),
            format!(
                r#"{{"id":"x","secret":"{0}","created_at_ms":"{0}"}}"#,
                other.to_whsk()
            ),
        ];
        for text in cases {
            std::fs::write(&path, &text).unwrap();
            let err = SigningKeyFile::load_or_create(temp.path()).unwrap_err();
            assert!(
                matches!(err, KeyFileError::Corrupt { .. }),
                "{text:?}: {err}"
            );
            assert!(!err.to_string().contains(&other.to_whsk()[5..]), "{err}");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                text,
                "never replaced"
            );
        }
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            SigningKeyFile::load_or_create(temp.path()),
            Err(KeyFileError::Corrupt { .. })
        ));
        drop(good);
    }

    #[test]
    fn create_exclusive_never_replaces() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("x");
        assert!(create_exclusive(&path, b"first").unwrap());
        assert!(!create_exclusive(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }
}
