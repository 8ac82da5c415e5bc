//! `/v1/customers` (SPEC §9): inbound actions. Create (`write:customer`; `Idempotency-Key`;
//! `external_id` upsert), patch (a no-op appends nothing), get and find (`read:customer`). A
//! write appends a `customer.created` / `customer.updated` event carrying the caller's origin
//! and answers from the customer view once it includes the write. Reads are redacted by the
//! shared visibility rules (no `medical:customer`: `medical_conditions` → its count). Every
//! write that would append passes loop protection first (409 `loop_detected`).

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde_json::{Map, Value};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::idempotency::{self, Lookup, Stored};
use super::request::{parse_json, read_json_bytes, Query};
use super::response::{json_bytes, json_response, Response};
use super::{AppState, READ_YOUR_WRITES_TIMEOUT};
use crate::clock;
use crate::domain::customer::{self, normalize_email, phone_digits, CUSTOMER_PREFIX};
use crate::domain::permission::Permission;
use crate::domain::visibility;
use crate::ids;
use crate::journal::{NewEvent, Origin};
use crate::projectors::customers::{self as view_store, CustomerRow, Index};
use crate::projectors::registry::Principal;

/// Customers one search returns at most (and the default).
pub const MAX_SEARCH_RESULTS: usize = 100;
/// Index entries one search filter reads at most.
const MAX_INDEX_MATCHES: usize = 1000;

/// A customer as the caller may see it.
fn view(row: &CustomerRow, caller: &Principal) -> Value {
    let redact = !caller.permissions.contains(Permission::MedicalCustomer);
    let bytes = serde_json::to_vec(&row.data).unwrap_or_else(|_| b"{}".to_vec());
    let visible = visibility::visible_data(&bytes, redact);
    let mut out: Map<String, Value> = serde_json::from_slice(&visible).unwrap_or_default();
    out.insert(
        "created_at".into(),
        Value::String(clock::format_ms(row.created_at_ms)),
    );
    out.insert(
        "updated_at".into(),
        Value::String(clock::format_ms(row.updated_at_ms)),
    );
    Value::Object(out)
}

async fn read_object(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<(HeaderMap, bytes::Bytes, Map<String, Value>), ApiError> {
    let (headers, bytes) = read_json_bytes(state, req).await?;
    let value: Value = parse_json(&bytes)?;
    let Value::Object(map) = value else {
        return Err(ApiError::validation("the body must be a JSON object"));
    };
    Ok((headers, bytes, map))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("");
    if text.is_empty()
        || text.len() > idempotency::MAX_KEY_BYTES
        || !text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid_request(format!(
            "Idempotency-Key must be 1 to {} visible ASCII characters",
            idempotency::MAX_KEY_BYTES
        )));
    }
    Ok(Some(text.to_string()))
}

fn customer_event(kind: &str, id: &str, data: &Map<String, Value>, caller: &Principal) -> NewEvent {
    NewEvent {
        id: ids::new_id(ids::EVENT_PREFIX),
        kind: kind.to_string(),
        timestamp_ms: clock::now_ms(),
        origin: Origin {
            key_id: Some(caller.key.id.clone()),
            user_id: Some(caller.user.id.clone()),
        },
        assigned_user_id: None,
        entity_id: Some(id.to_string()),
        payload: serde_json::to_vec(data).expect("customer data serialises"),
        blobs: Vec::new(),
    }
}

/// Appends `event` and returns the customer once the view includes it.
async fn commit(state: &AppState, event: NewEvent) -> Result<CustomerRow, ApiError> {
    let id = event.entity_id.clone().unwrap_or_default();
    let outcomes = state.writer.append(vec![event]).await?;
    let offset = outcomes.iter().map(|o| o.offset).max().unwrap_or(0);
    if !state
        .customers_status
        .wait_for(offset, READ_YOUR_WRITES_TIMEOUT)
        .await
    {
        return Err(ApiError::unavailable(
            "the change is saved but not yet visible; retry the read shortly",
            1,
        ));
    }
    load(state, &id)?.ok_or_else(|| ApiError::internal("the customer view lost a write"))
}

fn load(state: &AppState, id: &str) -> Result<Option<CustomerRow>, ApiError> {
    Ok(view_store::get(&state.db, id)?)
}

/// `POST /v1/customers`.
pub async fn create(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require(Permission::WriteCustomer)?;
    let (headers, bytes, input) = read_object(state, req).await?;
    let idem = idempotency_key(&headers)?;
    let fields = customer::validate(input, true).map_err(ApiError::validation)?;
    let _guard = state.customers_lock.lock().await;
    if let Some(key) = &idem {
        match state
            .idempotency
            .lookup(&caller.key.id, key, &bytes, clock::now_ms())
        {
            Lookup::Fresh => {}
            Lookup::Replay(stored) => {
                let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
                return Ok(json_bytes(status, stored.body));
            }
            Lookup::Mismatch => {
                return Err(ApiError::conflict(
                    "this Idempotency-Key was used for a different request body",
                ))
            }
        }
    }
    let (status, body) = create_locked(state, &caller, fields).await?;
    let body = serde_json::to_vec(&body).unwrap_or_default();
    if let Some(key) = &idem {
        state.idempotency.remember(
            &caller.key.id,
            key,
            Stored {
                status: status.as_u16(),
                body: body.clone(),
                request_sha256: idempotency::request_hash(&bytes),
                at_ms: clock::now_ms(),
            },
        );
    }
    Ok(json_bytes(status, body))
}

/// Creates a customer for another inbound surface (IFTTT's `create_customer` action): the same
/// permission, validation, loop protection and `external_id` upsert as `POST /v1/customers`.
/// Returns the status (201 created, 200 found by `external_id`) and the customer as `caller`
/// may see it, with `"created"`.
pub async fn create_for(
    state: &AppState,
    caller: &Principal,
    input: Map<String, Value>,
) -> Result<(StatusCode, Value), ApiError> {
    caller.require(Permission::WriteCustomer)?;
    let fields = customer::validate(input, true).map_err(ApiError::validation)?;
    let _guard = state.customers_lock.lock().await;
    create_locked(state, caller, fields).await
}

/// The create itself; the caller holds `customers_lock` (so check-then-append is race-free).
async fn create_locked(
    state: &AppState,
    caller: &Principal,
    fields: Map<String, Value>,
) -> Result<(StatusCode, Value), ApiError> {
    super::loops::guard_inbound(state, caller, &fields).await?;
    let existing = match fields.get("external_id").and_then(Value::as_str) {
        Some(external) => view_store::find(&state.db, Index::ExternalId, external, 1)?
            .first()
            .map(|id| load(state, id))
            .transpose()?
            .flatten(),
        None => None,
    };
    let (status, row, created) = match existing {
        Some(row) => (StatusCode::OK, row, false),
        None => {
            let id = ids::new_id(CUSTOMER_PREFIX);
            let mut data = Map::new();
            data.insert("id".into(), Value::String(id.clone()));
            data.extend(fields);
            let row = commit(state, customer_event(customer::CREATED, &id, &data, caller)).await?;
            (StatusCode::CREATED, row, true)
        }
    };
    let mut body = view(&row, caller);
    body["created"] = Value::Bool(created);
    Ok((status, body))
}

/// `PATCH /v1/customers/{id}`: `customer.updated` only if something changes; `null` clears a
/// field (not the names).
pub async fn update(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require(Permission::WriteCustomer)?;
    let (_, _, input) = read_object(state, req).await?;
    let fields = customer::validate(input, false).map_err(ApiError::validation)?;
    let _guard = state.customers_lock.lock().await;
    let row = load(state, id)?.ok_or_else(|| not_found(id))?;
    let changed: Map<String, Value> = fields
        .into_iter()
        .filter(|(k, v)| match v {
            Value::Null => row.data.contains_key(k),
            v => row.data.get(k) != Some(v),
        })
        .collect();
    if changed.is_empty() {
        return Ok(json_response(StatusCode::OK, &view(&row, &caller)));
    }
    if let Some(external) = changed.get("external_id").and_then(Value::as_str) {
        let holders = view_store::find(&state.db, Index::ExternalId, external, 2)?;
        if holders.iter().any(|h| h != id) {
            return Err(ApiError::conflict(format!(
                "external_id {external:?} belongs to another customer"
            )));
        }
    }
    let mut merged = row.data.clone();
    for (k, v) in &changed {
        merged.insert(k.clone(), v.clone());
    }
    super::loops::guard_inbound(state, &caller, &merged).await?;
    // The full customer after the change; cleared fields are sent as null.
    let row = commit(
        state,
        customer_event(customer::UPDATED, id, &merged, &caller),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &view(&row, &caller)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no customer with id {id:?}"))
}

/// `GET /v1/customers/{id}`.
pub fn get(state: &Arc<AppState>, headers: &HeaderMap, id: &str) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    caller.require(Permission::ReadCustomer)?;
    let row = load(state, id)?.ok_or_else(|| not_found(id))?;
    Ok(json_response(StatusCode::OK, &view(&row, &caller)))
}

/// `GET /v1/customers?email=&phone_number=&external_id=&limit=`: customers matching every given
/// filter (normalized as indexed), at most `limit` (≤ 100).
pub fn search(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require(Permission::ReadCustomer)?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(MAX_SEARCH_RESULTS, MAX_SEARCH_RESULTS)?;
    let mut filters = Vec::new();
    if let Some(email) = query.get("email") {
        filters.push((Index::Email, normalize_email(email)));
    }
    if let Some(phone) = query.get("phone_number") {
        let digits = phone_digits(phone);
        if digits.is_empty() {
            return Err(ApiError::invalid_request("phone_number has no digits"));
        }
        filters.push((Index::Phone, digits));
    }
    if let Some(external) = query.get("external_id") {
        filters.push((Index::ExternalId, external.trim().to_string()));
    }
    if filters.is_empty() {
        return Err(ApiError::invalid_request(
            "give at least one of email, phone_number, external_id",
        ));
    }
    let mut ids: Option<BTreeSet<String>> = None;
    for (index, value) in &filters {
        let found: BTreeSet<String> =
            view_store::find(&state.db, *index, value, MAX_INDEX_MATCHES)?
                .into_iter()
                .collect();
        ids = Some(match ids {
            None => found,
            Some(prev) => prev.intersection(&found).cloned().collect(),
        });
    }
    let mut data = Vec::new();
    for id in ids.unwrap_or_default().iter().take(limit) {
        if let Some(row) = load(state, id)? {
            data.push(view(&row, &caller));
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "data": data }),
    ))
}
