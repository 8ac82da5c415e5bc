//! `GET /v1/signing-keys` (no auth): the daemon's ed25519 public keys, so receivers can verify
//! `v1a` signatures.

use hyper::StatusCode;
use serde_json::json;

use super::response::{json_response, Response};
use super::AppState;
use crate::clock;

pub fn list(state: &AppState) -> Response {
    let key = &state.signing;
    let body = json!({
        "data": [{
            "id": key.id,
            "public_key": key.key.public_whpk(),
            "created_at": clock::format_ms(key.created_at_ms),
            "expires_at": null,
        }]
    });
    json_response(StatusCode::OK, &body)
}
