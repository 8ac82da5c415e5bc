//! PLACEHOLDER until the signing branch merges: same API.
use base64::Engine;
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use sha2::Sha256;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub struct HmacSecret(Vec<u8>);
impl HmacSecret {
    pub fn generate() -> (HmacSecret, String) {
        let bytes: [u8; 32] = rand::random();
        let s = HmacSecret(bytes.to_vec());
        let text = s.to_whsec();
        (s, text)
    }
    pub fn parse(text: &str) -> Result<HmacSecret, String> {
        let raw = text.strip_prefix("whsec_").unwrap_or(text);
        B64.decode(raw).map(HmacSecret).map_err(|e| e.to_string())
    }
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", B64.encode(&self.0))
    }
    pub fn sign(&self, msg_id: &str, ts: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key");
        mac.update(format!("{msg_id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}
pub struct SigningKey(ed25519_dalek::SigningKey);
impl SigningKey {
    pub fn generate() -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
    }
    pub fn public_whpk(&self) -> String {
        format!("whpk_{}", B64.encode(self.0.verifying_key().as_bytes()))
    }
    pub fn key_id(&self) -> String {
        "sk_placeholder".into()
    }
    pub fn sign(&self, msg_id: &str, ts: i64, body: &[u8]) -> String {
        let mut content = format!("{msg_id}.{ts}.").into_bytes();
        content.extend_from_slice(body);
        format!("v1a,{}", B64.encode(self.0.sign(&content).to_bytes()))
    }
}
pub fn signature_header(hmacs: &[&HmacSecret], key: Option<&SigningKey>, msg_id: &str, ts: i64, body: &[u8]) -> String {
    let mut parts: Vec<String> = hmacs.iter().map(|h| h.sign(msg_id, ts, body)).collect();
    if let Some(k) = key {
        parts.push(k.sign(msg_id, ts, body));
    }
    parts.join(" ")
}
pub struct SigningKeyFile {
    pub id: String,
    pub key: SigningKey,
    pub created_at_ms: i64,
}
impl SigningKeyFile {
    pub fn load_or_create(_dir: &std::path::Path) -> Result<SigningKeyFile, String> {
        let key = SigningKey::generate();
        Ok(SigningKeyFile { id: key.key_id(), key, created_at_ms: crate::clock::now_ms() })
    }
}
