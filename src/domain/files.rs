//! Release-form files (SPEC §12). A `release_form.generated` event may carry `data.pdf_base64`;
//! ingest stores the bytes once (content-addressed by SHA-256, in the same transaction as the
//! event) and the journal keeps only `data.pdf = {sha256, size_bytes, content_type}`. The signed,
//! expiring `url` is added when the data leaves the daemon, so a replay a month later still
//! carries a URL that works, and the PDF bytes are never inside a journal entry or a body.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::journal::Blob;

pub const RELEASE_FORM_TYPE: &str = "release_form.generated";
pub const BASE64_FIELD: &str = "pdf_base64";
pub const FILE_FIELD: &str = "pdf";
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
const CONTENT_TYPE: &str = "application/pdf";

/// Replaces `data.pdf_base64` by `data.pdf`; `Ok(None)` when the event carries no file.
pub fn extract(data: &[u8]) -> Result<Option<(Vec<u8>, Blob)>, String> {
    let mut value: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let Some(map) = value.as_object_mut() else {
        return Ok(None);
    };
    let Some(encoded) = map.shift_remove(BASE64_FIELD) else {
        return Ok(None);
    };
    let Value::String(encoded) = encoded else {
        return Err("data.pdf_base64 must be a base64 string".into());
    };
    // Refuse before decoding what cannot fit.
    if encoded.len() > MAX_FILE_BYTES / 3 * 4 + 4 {
        return Err(format!("data.pdf_base64 exceeds {MAX_FILE_BYTES} bytes"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "data.pdf_base64 is not valid base64".to_string())?;
    if bytes.is_empty() || bytes.len() > MAX_FILE_BYTES {
        return Err(format!(
            "data.pdf_base64 must decode to 1 to {MAX_FILE_BYTES} bytes"
        ));
    }
    let sha256_hex = hex(&Sha256::digest(&bytes));
    let mut pdf = Map::new();
    pdf.insert("sha256".into(), Value::String(sha256_hex.clone()));
    pdf.insert("size_bytes".into(), Value::from(bytes.len()));
    pdf.insert("content_type".into(), Value::String(CONTENT_TYPE.into()));
    map.insert(FILE_FIELD.into(), Value::Object(pdf));
    let payload = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    Ok(Some((payload, Blob { sha256_hex, bytes })))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Signs and checks file URLs: `<base>/v1/files/<sha256>?expires=<unix secs>&sig=<b64url>`,
/// `sig` = HMAC-SHA256 over `<sha256>.<expires>` with a key only the daemon holds.
#[derive(Clone)]
pub struct FileSigner {
    key: Vec<u8>,
    base_url: String,
    ttl_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum UrlError {
    Malformed,
    Expired,
    BadSignature,
}

impl FileSigner {
    pub fn new(key: Vec<u8>, public_base_url: &str, ttl_ms: u64) -> FileSigner {
        FileSigner {
            key,
            base_url: public_base_url.trim_end_matches('/').to_string(),
            ttl_ms,
        }
    }

    fn sign(&self, sha256: &str, expires: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{sha256}.{expires}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn url(&self, sha256: &str, now_ms: i64) -> String {
        let expires = (now_ms + self.ttl_ms as i64).div_euclid(1000);
        format!(
            "{}/v1/files/{sha256}?expires={expires}&sig={}",
            self.base_url,
            self.sign(sha256, expires)
        )
    }

    pub fn check(
        &self,
        sha256: &str,
        expires: Option<&str>,
        sig: Option<&str>,
        now_ms: i64,
    ) -> Result<(), UrlError> {
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Err(UrlError::Malformed);
        };
        let expires: i64 = expires.parse().map_err(|_| UrlError::Malformed)?;
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| UrlError::Malformed)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{sha256}.{expires}").as_bytes());
        mac.verify_slice(&given)
            .map_err(|_| UrlError::BadSignature)?;
        if now_ms.div_euclid(1000) > expires {
            return Err(UrlError::Expired);
        }
        Ok(())
    }

    /// Adds a fresh `url` to `data.pdf` (when it names a stored file); None if nothing to add.
    pub fn with_url(&self, data: &[u8], now_ms: i64) -> Option<Vec<u8>> {
        let mut value: Value = serde_json::from_slice(data).ok()?;
        let pdf = value.get_mut(FILE_FIELD)?.as_object_mut()?;
        let sha = pdf.get("sha256")?.as_str()?.to_string();
        if !is_sha256_hex(&sha) {
            return None;
        }
        pdf.insert("url".into(), Value::String(self.url(&sha, now_ms)));
        serde_json::to_vec(&value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_file_and_keeps_the_rest() {
        let data = br#"{"id":"rf1","customer_id":"c1","pdf_base64":"JVBERi0xLjQK"}"#;
        let (payload, blob) = extract(data).unwrap().unwrap();
        assert_eq!(blob.bytes, b"%PDF-1.4\n");
        let v: Value = serde_json::from_slice(&payload).unwrap();
        assert!(v.get("pdf_base64").is_none());
        assert_eq!(v["pdf"]["sha256"], blob.sha256_hex.as_str());
        assert_eq!(v["pdf"]["size_bytes"], 9);
        assert_eq!(v["customer_id"], "c1");
        assert!(extract(br#"{"id":"x"}"#).unwrap().is_none());
        assert!(extract(br#"{"id":"x","pdf_base64":"!!"}"#).is_err());
        assert!(extract(br#"{"id":"x","pdf_base64":5}"#).is_err());
    }

    #[test]
    fn urls_verify_expire_and_resist_tampering() {
        let signer = FileSigner::new(b"k".to_vec(), "http://h:1/", 1000);
        let sha = "a".repeat(64);
        let url = signer.url(&sha, 10_000);
        assert!(url.starts_with(&format!("http://h:1/v1/files/{sha}?expires=11&sig=")));
        let sig = url.split("sig=").nth(1).unwrap();
        assert_eq!(signer.check(&sha, Some("11"), Some(sig), 10_500), Ok(()));
        assert_eq!(
            signer.check(&sha, Some("11"), Some(sig), 12_000),
            Err(UrlError::Expired)
        );
        assert_eq!(
            signer.check(&sha, Some("12"), Some(sig), 10_500),
            Err(UrlError::BadSignature)
        );
        assert_eq!(
            signer.check(&"b".repeat(64), Some("11"), Some(sig), 10_500),
            Err(UrlError::BadSignature)
        );
        assert_eq!(
            signer.check(&sha, None, Some(sig), 10_500),
            Err(UrlError::Malformed)
        );
        let other = FileSigner::new(b"other".to_vec(), "http://h:1", 1000);
        assert_eq!(
            other.check(&sha, Some("11"), Some(sig), 10_500),
            Err(UrlError::BadSignature)
        );
    }
}
