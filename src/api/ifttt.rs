//! The IFTTT service API (SPEC §14) under `/ifttt/v1`: `status`, `test/setup`, `user/info`,
//! `triggers/{slug}`, the trigger-identity DELETE and `actions/create_customer`, with IFTTT's own shapes — `{"data": ...}`
//! and `{"errors":[{"message"}]}`. IFTTT authenticates as the service with `IFTTT-Service-Key`
//! (or the legacy `IFTTT-Channel-Key`); user calls carry the user's REV23 API key as a bearer
//! token. Trigger items are read through the same scoped, redacted path as Zapier's polling.
//! Off (404) while `ifttt.service_key` is empty.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::auth::{authenticate, Access as _};
use super::customers;
use super::error::ApiError;
use super::registry_change;
use super::request::read_json;
use super::response::{json_response, Response};
use super::triggers::{newest_visible, redacts_medical};
use super::AppState;
use crate::clock;
use crate::domain::catalog;
use crate::domain::internal::{self, KeyRecord, KeyRevoked, UserRecord};
use crate::domain::permission::PermissionSet;
use crate::ids;
use crate::ifttt::{self, MAX_IDENTITY_CHARS};
use crate::journal::Envelope;
use crate::projectors::registry::Principal;

const DEFAULT_LIMIT: u64 = 50;
/// Items one trigger request returns at most (IFTTT asks for 50 by default).
const MAX_LIMIT: u64 = 100;
/// The user `test/setup` hands IFTTT's endpoint tests a key for.
const TEST_USER_ID: &str = "usr_ifttt_endpoint_test";
const TEST_USER_PERMISSIONS: [&str; 6] = [
    "subscribe:webhook",
    "read:customer",
    "read:user",
    "read:service",
    "read:lead",
    "write:customer",
];
/// Data fields never copied to a top-level ingredient (they would shadow ours).
const RESERVED_INGREDIENTS: [&str; 6] = [
    "meta",
    "event_id",
    "event_type",
    "occurred_at",
    "entity_id",
    "data_json",
];

/// An IFTTT error: `{"errors":[{"message"}]}` with the status IFTTT expects.
struct IftttError {
    status: StatusCode,
    message: String,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

impl From<ApiError> for IftttError {
    fn from(e: ApiError) -> Self {
        IftttError {
            status: e.status,
            message: e.message,
            allow: None,
        }
    }
}

impl IftttError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        IftttError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    fn into_response(self) -> Response {
        let mut response =
            json_response(self.status, &json!({"errors": [{"message": self.message}]}));
        if let Some(allow) = self.allow {
            response.headers_mut().insert(
                hyper::header::ALLOW,
                hyper::header::HeaderValue::from_static(allow),
            );
        }
        response
    }
}

/// Routes `/ifttt/v1/{rest..}`.
pub async fn handle(state: &Arc<AppState>, req: Request<Incoming>, rest: &[&str]) -> Response {
    if state.config.ifttt.service_key.is_empty() {
        return IftttError::new(
            StatusCode::NOT_FOUND,
            "IFTTT is not enabled on this server (set ifttt.service_key)",
        )
        .into_response();
    }
    let method = req.method().clone();
    let result = match (rest, &method) {
        (["status"], &Method::GET) => status(state, req.headers()),
        (["test", "setup"], &Method::POST) => test_setup(state, req.headers()).await,
        (["user", "info"], &Method::GET) => user_info(state, req.headers()),
        (["triggers", slug], &Method::POST) => {
            let slug = slug.to_string();
            trigger(state, req, &slug).await
        }
        (["actions", "create_customer"], &Method::POST) => create_customer(state, req).await,
        (["triggers", slug, "trigger_identity", identity], &Method::DELETE) => {
            forget_identity(state, req.headers(), slug, identity)
        }
        (["status"] | ["user", "info"], _) => Err(method_not_allowed(&method, "GET")),
        (["test", "setup"] | ["triggers", _] | ["actions", "create_customer"], _) => {
            Err(method_not_allowed(&method, "POST"))
        }
        (["triggers", _, "trigger_identity", _], _) => Err(method_not_allowed(&method, "DELETE")),
        _ => Err(IftttError::new(StatusCode::NOT_FOUND, "no such endpoint")),
    };
    result.unwrap_or_else(IftttError::into_response)
}

fn method_not_allowed(method: &Method, allow: &'static str) -> IftttError {
    IftttError {
        allow: Some(allow),
        ..IftttError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported on this path; use {allow}"),
        )
    }
}

/// The service key, compared in constant time; either header name is accepted.
fn check_service_key(state: &AppState, headers: &HeaderMap) -> Result<(), IftttError> {
    let sent = headers
        .get("ifttt-service-key")
        .or_else(|| headers.get("ifttt-channel-key"))
        .map(|v| v.as_bytes())
        .ok_or_else(|| IftttError::new(StatusCode::UNAUTHORIZED, "missing IFTTT-Service-Key"))?;
    let expected = state.config.ifttt.service_key.as_bytes();
    if bool::from(sent.ct_eq(expected)) {
        Ok(())
    } else {
        Err(IftttError::new(
            StatusCode::UNAUTHORIZED,
            "invalid IFTTT-Service-Key",
        ))
    }
}

/// A user call: the bearer key must be valid, and a service key, when sent, too.
fn user(state: &AppState, headers: &HeaderMap) -> Result<Principal, IftttError> {
    if headers.contains_key("ifttt-service-key") || headers.contains_key("ifttt-channel-key") {
        check_service_key(state, headers)?;
    }
    Ok(authenticate(state, headers)?)
}

fn status(state: &AppState, headers: &HeaderMap) -> Result<Response, IftttError> {
    check_service_key(state, headers)?;
    if !state.started.load(std::sync::atomic::Ordering::Acquire) {
        return Err(IftttError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting up",
        ));
    }
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// IFTTT's endpoint tests: a fresh key for a dedicated test user (its earlier keys revoked, so
/// there is only ever one) and samples for every trigger.
async fn test_setup(state: &AppState, headers: &HeaderMap) -> Result<Response, IftttError> {
    check_service_key(state, headers)?;
    let now = clock::now_ms();
    let _guard = state.registry_lock.lock().await;
    let snapshot = state.registry.snapshot();
    let permissions = PermissionSet::parse_names(&TEST_USER_PERMISSIONS.map(String::from))
        .expect("known permissions")
        .names();
    let mut events = Vec::new();
    let user = match snapshot.users.get(TEST_USER_ID) {
        Some(u) if u.active && u.permissions == permissions => u.clone(),
        existing => {
            let user = UserRecord {
                id: TEST_USER_ID.into(),
                name: "IFTTT endpoint tests".into(),
                email: None,
                owner: false,
                permissions,
                active: true,
                created_at_ms: existing.map_or(now, |u| u.created_at_ms),
                updated_at_ms: now,
            };
            events.push(registry_change::internal_event(
                internal::USER_UPSERTED,
                &user.id,
                &user,
                registry_change::origin_of(None),
            ));
            user
        }
    };
    for old in snapshot
        .keys
        .values()
        .filter(|k| k.user_id == user.id && k.revoked_at_ms.is_none())
    {
        let revoked = KeyRevoked {
            id: old.id.clone(),
            revoked_at_ms: now,
        };
        events.push(registry_change::internal_event(
            internal::KEY_REVOKED,
            &old.id,
            &revoked,
            registry_change::origin_of(None),
        ));
    }
    let secret = ids::new_key_secret();
    let key = KeyRecord {
        id: ids::new_id(ids::KEY_PREFIX),
        user_id: user.id.clone(),
        name: "ifttt test/setup".into(),
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        permissions: None,
        created_at_ms: now,
        revoked_at_ms: None,
    };
    events.push(registry_change::internal_event(
        internal::KEY_CREATED,
        &key.id,
        &key,
        registry_change::origin_of(None),
    ));
    registry_change::commit(state, events).await?;
    let triggers: Map<String, Value> = catalog::CATALOG
        .iter()
        .map(|t| (ifttt::slug_of(t.name), json!({})))
        .collect();
    let body = json!({"data": {
        "accessToken": secret.secret,
        "samples": {
            "triggers": triggers,
            "actions": {"create_customer": {
                "first_name": "Ada", "last_name": "Lovelace",
                "email": "ada@example.com", "phone_number": "+1 555 0100",
            }},
            "actionRecordSkipping": {"create_customer": {
                "first_name": "", "last_name": "", "email": "not-an-email",
            }},
        },
    }});
    Ok(json_response(StatusCode::OK, &body))
}

fn user_info(state: &AppState, headers: &HeaderMap) -> Result<Response, IftttError> {
    let caller = user(state, headers)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"data": {"name": caller.user.name, "id": caller.user.id}}),
    ))
}

/// IFTTT's trigger request; unknown fields are ignored (IFTTT adds some over time), known ones
/// must have their documented types. Maps, not structs, for `user` and `ifttt_source`: serde
/// would accept a struct written as an array.
#[derive(Deserialize)]
struct TriggerRequest {
    trigger_identity: Option<String>,
    #[serde(rename = "triggerFields")]
    trigger_fields: Option<Map<String, Value>>,
    limit: Option<serde_json::Number>,
    user: Option<Map<String, Value>>,
    ifttt_source: Option<Map<String, Value>>,
}

impl TriggerRequest {
    /// `user.timezone`, `ifttt_source.id` and `ifttt_source.url` are strings when present.
    fn check_types(&self) -> Result<(), IftttError> {
        let fields = [
            (&self.user, "user", "timezone"),
            (&self.ifttt_source, "ifttt_source", "id"),
            (&self.ifttt_source, "ifttt_source", "url"),
        ];
        for (map, object, field) in fields {
            if let Some(value) = map.as_ref().and_then(|m| m.get(field)) {
                if !(value.is_string() || value.is_null()) {
                    return Err(IftttError::new(
                        StatusCode::BAD_REQUEST,
                        format!("{object}.{field} must be a string"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A trigger identity is 1 to [`MAX_IDENTITY_CHARS`] characters (IFTTT's are 40-hex hashes).
fn check_identity(identity: &str) -> Result<(), IftttError> {
    let chars = identity.chars().count();
    if chars == 0 || chars > MAX_IDENTITY_CHARS {
        return Err(IftttError::new(
            StatusCode::BAD_REQUEST,
            format!("trigger_identity must be 1 to {MAX_IDENTITY_CHARS} characters"),
        ));
    }
    Ok(())
}

/// `limit`: a non-negative integer, clamped to [`MAX_LIMIT`] (however large it is written).
fn limit_of(limit: Option<&serde_json::Number>) -> Result<usize, IftttError> {
    let Some(n) = limit else {
        return Ok(DEFAULT_LIMIT as usize);
    };
    if let Some(v) = n.as_u64() {
        return Ok(v.min(MAX_LIMIT) as usize);
    }
    let text = n.to_string();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(MAX_LIMIT as usize); // a whole number beyond u64
    }
    Err(IftttError::new(
        StatusCode::BAD_REQUEST,
        "limit must be a non-negative integer",
    ))
}

async fn trigger(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    slug: &str,
) -> Result<Response, IftttError> {
    let caller = user(state, req.headers())?;
    let event_type = ifttt::event_type_of_slug(slug)
        .ok_or_else(|| IftttError::new(StatusCode::NOT_FOUND, format!("no trigger {slug:?}")))?;
    let input: TriggerRequest = read_json(state, req).await.map_err(|e| {
        // IFTTT expects 400 for any request body it cannot use.
        IftttError::new(StatusCode::BAD_REQUEST, e.message)
    })?;
    input.check_types()?;
    if input.trigger_fields.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(IftttError::new(
            StatusCode::BAD_REQUEST,
            "these triggers take no trigger fields",
        ));
    }
    caller.require(event_type.read_permission)?;
    if let Some(identity) = &input.trigger_identity {
        check_identity(identity)?;
        state
            .ifttt_identities
            .seen(identity, &caller.user.id, event_type.name, clock::now_ms());
    }
    let limit = limit_of(input.limit.as_ref())?;
    let envelopes = if limit == 0 {
        Vec::new()
    } else {
        newest_visible(state, &caller, event_type, limit).await?
    };
    let redact = redacts_medical(&caller);
    let items: Vec<Value> = envelopes
        .iter()
        .map(|e| item(state, e, redact))
        .collect::<Result<_, _>>()?;
    Ok(json_response(StatusCode::OK, &json!({"data": items})))
}

/// One trigger item: IFTTT ingredients are flat strings, so the event's fields and the top-level
/// scalar fields of its (redacted) data are copied as strings, with the whole data as JSON text
/// beside them. `meta.timestamp` is the append time, which never goes backwards with the offset,
/// so items are in descending `meta.timestamp` as IFTTT requires.
fn item(state: &AppState, envelope: &Envelope, redact: bool) -> Result<Value, IftttError> {
    let data_bytes = state.outgoing.data(envelope, redact);
    let data: Map<String, Value> = serde_json::from_slice(&data_bytes).map_err(|e| {
        IftttError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("stored event data is not a JSON object: {e}"),
        )
    })?;
    let mut out = Map::new();
    for (name, value) in &data {
        if RESERVED_INGREDIENTS.contains(&name.as_str()) {
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        out.insert(name.clone(), Value::String(text));
    }
    if let Some(url) = data
        .get("pdf")
        .and_then(|p| p.get("url"))
        .and_then(Value::as_str)
    {
        out.insert("pdf_url".into(), Value::String(url.to_string()));
    }
    out.insert("event_id".into(), Value::String(envelope.id.clone()));
    out.insert("event_type".into(), Value::String(envelope.kind.clone()));
    out.insert(
        "occurred_at".into(),
        Value::String(clock::format_ms(envelope.timestamp_ms)),
    );
    out.insert(
        "entity_id".into(),
        Value::String(envelope.entity_id.clone().unwrap_or_default()),
    );
    out.insert(
        "data_json".into(),
        Value::String(String::from_utf8_lossy(&data_bytes).into_owned()),
    );
    out.insert(
        "meta".into(),
        json!({"id": envelope.id, "timestamp": envelope.appended_at_ms.div_euclid(1000)}),
    );
    Ok(Value::Object(out))
}

/// IFTTT's clean-up call: no Applet uses this identity any more. It comes with the service key
/// (or a user's bearer key); either is enough.
fn forget_identity(
    state: &AppState,
    headers: &HeaderMap,
    slug: &str,
    identity: &str,
) -> Result<Response, IftttError> {
    if check_service_key(state, headers).is_err() {
        authenticate(state, headers)?;
    }
    if ifttt::event_type_of_slug(slug).is_none() {
        return Err(IftttError::new(
            StatusCode::NOT_FOUND,
            format!("no trigger {slug:?}"),
        ));
    }
    let identity = percent_encoding::percent_decode_str(identity).decode_utf8_lossy();
    check_identity(&identity)?;
    state.ifttt_identities.forget(&identity);
    Ok(json_response(StatusCode::OK, &json!({"data": {}})))
}

#[derive(Deserialize)]
struct ActionRequest {
    #[serde(rename = "actionFields")]
    action_fields: Map<String, Value>,
}

/// `POST /actions/create_customer`: the same create as `POST /v1/customers` (permission,
/// validation, loop protection, `external_id` upsert). IFTTT sends every field as a string and
/// `""` for one left empty, which counts as absent. A request that can never succeed (invalid
/// data, a missing permission, a stopped loop) is a 400 with `"status": "SKIP"`, so IFTTT does
/// not retry it.
async fn create_customer(
    state: &Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response, IftttError> {
    let caller = user(state, req.headers())?;
    let input: ActionRequest = read_json(state, req)
        .await
        .map_err(|e| IftttError::new(StatusCode::BAD_REQUEST, e.message))?;
    let fields: Map<String, Value> = input
        .action_fields
        .into_iter()
        .filter(|(_, v)| !matches!(v, Value::String(s) if s.trim().is_empty()) && !v.is_null())
        .collect();
    match customers::create_for(state, &caller, fields).await {
        Ok((_, customer)) => Ok(json_response(
            StatusCode::OK,
            &json!({"data": [{"id": customer["id"]}]}),
        )),
        Err(e) if matches!(e.status.as_u16(), 403 | 409 | 422) => Ok(json_response(
            StatusCode::BAD_REQUEST,
            &json!({"errors": [{"status": "SKIP", "message": e.message}]}),
        )),
        Err(e) => Err(e.into()),
    }
}
