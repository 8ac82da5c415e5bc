//! `/v1/events`: ingest (single or batch, atomic, idempotent on `id`, acknowledged only once
//! durable), list by offset, and get one. The `data` object is stored as the exact bytes received
//! (after validation), so reads and deliveries splice it without re-encoding.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::request::{
    json_error, read_body, require_json, Query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
use super::response::{json_response, ListPage, Response};
use super::AppState;
use crate::clock;
use crate::domain::outgoing::Outgoing;
use crate::domain::{catalog, files, internal, permission::Permission};
use crate::ids;
use crate::journal::{reader, Envelope, NewEvent, Origin};

/// Longest `data.id` / `assigned_user_id` accepted.
const MAX_ENTITY_ID_BYTES: usize = 256;
/// Deepest nesting of objects and arrays accepted in `data`: serde_json (the customers projector,
/// medical redaction, receivers parsing a delivery body that wraps `data`) refuses beyond 127.
const MAX_DATA_DEPTH: usize = 64;
/// Journal entries one list request scans at most (filters can make matches sparse).
const MAX_SCAN_ENTRIES: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncomingEvent<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    data: &'a RawValue,
    id: Option<String>,
    occurred_at: Option<String>,
    assigned_user_id: Option<String>,
}

/// Only `data.id` is needed from the payload; the rest is kept as bytes.
#[derive(Deserialize)]
struct DataHead {
    id: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct AppendedView<'a> {
    id: &'a str,
    offset: u64,
    duplicate: bool,
}

/// An event as read (SPEC §2).
#[derive(Serialize)]
pub struct EventView<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub offset: u64,
    pub timestamp: String,
    pub data: Box<RawValue>,
    pub assigned_user_id: Option<&'a str>,
}

impl<'a> EventView<'a> {
    /// The event as `caller` may read it (redacted, file URL added).
    pub fn of(
        e: &'a Envelope,
        outgoing: &Outgoing,
        redact_medical: bool,
    ) -> Result<EventView<'a>, ApiError> {
        let bytes = outgoing.data(e, redact_medical).into_owned();
        let text = String::from_utf8(bytes).map_err(|_| {
            ApiError::internal(format!(
                "stored payload of offset {} is not UTF-8",
                e.offset
            ))
        })?;
        let data = RawValue::from_string(text).map_err(|_| {
            ApiError::internal(format!("stored payload of offset {} is not JSON", e.offset))
        })?;
        Ok(EventView {
            id: &e.id,
            kind: &e.kind,
            offset: e.offset,
            timestamp: clock::format_ms(e.timestamp_ms),
            data,
            assigned_user_id: e.assigned_user_id.as_deref(),
        })
    }
}

/// `POST /v1/events`.
pub async fn create(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let principal = authenticate(state, req.headers())?;
    principal.require(Permission::IngestEvent)?;
    require_json(req.headers())?;
    let limits = &state.config.limits;
    let (parts, body) = req.into_parts();
    // Up to the file limit: a release form may carry a PDF; everything else must still fit
    // `max_body_bytes` (checked below, once the file fields are known).
    let bytes = read_body(
        &parts.headers,
        body,
        limits.max_file_body_bytes,
        Duration::from_millis(limits.body_read_timeout_ms),
    )
    .await?;
    let too_large = || {
        ApiError::payload_too_large(format!(
            "request body exceeds the limit of {} bytes (only release-form files may exceed it)",
            limits.max_body_bytes
        ))
    };
    let oversized = bytes.len() > limits.max_body_bytes;
    if oversized && !contains(&bytes, files::BASE64_FIELD.as_bytes()) {
        return Err(too_large());
    }
    let origin = Origin {
        key_id: Some(principal.key.id.clone()),
        user_id: Some(principal.user.id.clone()),
    };
    let events = match parse_batch(&bytes, limits.max_batch_events, &origin) {
        Err(_) if oversized => return Err(too_large()),
        other => other?,
    };
    let file_chars: usize = events
        .iter()
        .flat_map(|e| &e.blobs)
        .map(|b| 4 * b.bytes.len().div_ceil(3))
        .sum();
    if bytes.len().saturating_sub(file_chars) > limits.max_body_bytes {
        return Err(too_large());
    }
    let outcomes = state.writer.append(events).await?;
    let any_new = outcomes.iter().any(|o| !o.duplicate);
    let data: Vec<AppendedView> = outcomes
        .iter()
        .map(|o| AppendedView {
            id: &o.id,
            offset: o.offset,
            duplicate: o.duplicate,
        })
        .collect();
    let status = if any_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &serde_json::json!({ "data": data })))
}

/// Parses and validates a body holding one event object or an array of them. Any invalid event
/// rejects the whole batch, so nothing of it is appended.
pub fn parse_batch(
    bytes: &[u8],
    max_events: usize,
    origin: &Origin,
) -> Result<Vec<NewEvent>, ApiError> {
    let whole: &RawValue = serde_json::from_slice(bytes).map_err(|e| json_error(e, ""))?;
    let text = whole.get();
    let items: Vec<&RawValue> = match text.as_bytes().first() {
        Some(b'[') => serde_json::from_str(text).map_err(|e| json_error(e, ""))?,
        Some(b'{') => vec![whole],
        _ => {
            return Err(ApiError::validation(
                "body must be an event object or an array of event objects",
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::validation("the batch is empty"));
    }
    if items.len() > max_events {
        return Err(ApiError::payload_too_large(format!(
            "a batch holds at most {max_events} events, this one has {}",
            items.len()
        )));
    }
    let batch = items.len() > 1 || text.starts_with('[');
    let now_ms = clock::now_ms();
    let mut seen = HashSet::with_capacity(items.len());
    let mut events = Vec::with_capacity(items.len());
    for (index, raw) in items.into_iter().enumerate() {
        let context = if batch {
            format!("events[{index}]")
        } else {
            "event".to_string()
        };
        let event = validate_one(raw, &context, now_ms, origin)?;
        if !seen.insert(event.id.clone()) {
            return Err(ApiError::validation(format!(
                "{context}: id {:?} appears twice in this batch",
                event.id
            )));
        }
        events.push(event);
    }
    Ok(events)
}

fn validate_one(
    raw: &RawValue,
    context: &str,
    now_ms: i64,
    origin: &Origin,
) -> Result<NewEvent, ApiError> {
    let incoming: IncomingEvent =
        serde_json::from_str(raw.get()).map_err(|e| json_error(e, context))?;
    let Some(event_type) = catalog::lookup(&incoming.kind) else {
        return Err(ApiError::unknown_event_type(format!(
            "{context}: unknown event type {:?}; accepted types: {}",
            incoming.kind,
            catalog::names().join(", ")
        )));
    };
    // serde would also read a struct from an array; `data` must be an object.
    let not_object = || ApiError::validation(format!("{context}: data must be a JSON object"));
    if !incoming.data.get().starts_with('{') {
        return Err(not_object());
    }
    let head: DataHead = serde_json::from_str(incoming.data.get()).map_err(|_| not_object())?;
    if nests_deeper_than(incoming.data.get(), MAX_DATA_DEPTH) {
        return Err(ApiError::validation(format!(
            "{context}: data nests objects and arrays deeper than {MAX_DATA_DEPTH} levels"
        )));
    }
    // The checks above skip over string contents; a `\u` escape may be a lone surrogate
    // (`"\ud800"`), which no serde_json reader of the journal would accept: parse to be sure.
    if contains(incoming.data.get().as_bytes(), b"\\u")
        && serde_json::from_str::<serde_json::Value>(incoming.data.get()).is_err()
    {
        return Err(ApiError::validation(format!(
            "{context}: data holds an invalid \\u escape (a lone UTF-16 surrogate)"
        )));
    }
    let entity_id = match head.id {
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => {
            return Err(ApiError::validation(format!(
                "{context}: data.id is required (a string or number identifying the entity)"
            )))
        }
    };
    if entity_id.is_empty() || entity_id.len() > MAX_ENTITY_ID_BYTES {
        return Err(ApiError::validation(format!(
            "{context}: data.id must be 1 to {MAX_ENTITY_ID_BYTES} bytes"
        )));
    }
    let id = match incoming.id {
        Some(id) if ids::is_valid_client_id(&id) => id,
        Some(_) => {
            return Err(ApiError::validation(format!(
                "{context}: id must be 1 to 128 characters of A-Z a-z 0-9 _ - . :"
            )))
        }
        None => ids::new_id(ids::EVENT_PREFIX),
    };
    let timestamp_ms = match incoming.occurred_at.as_deref() {
        Some(text) => clock::parse_rfc3339_ms(text).ok_or_else(|| {
            ApiError::validation(format!(
                "{context}: occurred_at must be an RFC 3339 time such as 2026-12-04T09:20:51.123Z"
            ))
        })?,
        None => now_ms,
    };
    if let Some(user) = &incoming.assigned_user_id {
        if user.is_empty() || user.len() > MAX_ENTITY_ID_BYTES {
            return Err(ApiError::validation(format!(
                "{context}: assigned_user_id must be 1 to {MAX_ENTITY_ID_BYTES} bytes"
            )));
        }
    }
    let mut payload = incoming.data.get().as_bytes().to_vec();
    let mut blobs = Vec::new();
    // A `\u` escape can spell the field name too (`pdf\u005fbase64`): then parse to be sure.
    if event_type.name == files::RELEASE_FORM_TYPE
        && (contains(&payload, files::BASE64_FIELD.as_bytes()) || contains(&payload, b"\\u"))
    {
        if let Some((replaced, blob)) =
            files::extract(&payload).map_err(|e| ApiError::validation(format!("{context}: {e}")))?
        {
            payload = replaced;
            blobs.push(blob);
        }
    }
    Ok(NewEvent {
        id,
        kind: event_type.name.to_string(),
        timestamp_ms,
        origin: origin.clone(),
        assigned_user_id: incoming.assigned_user_id,
        entity_id: Some(entity_id),
        payload,
        blobs,
    })
}

/// Whether valid JSON `json` nests objects and arrays more than `max` deep.
fn nests_deeper_than(json: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `GET /v1/events?after=&type=&limit=&cursor=` (owners and `admin:webhook`).
pub async fn list(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let principal = authenticate(state, req.headers())?;
    principal.require_admin()?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let after = match query.get("cursor") {
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_request("cursor is not one this API issued"))?,
        None => query.u64("after")?.unwrap_or(0),
    };
    let type_filter = match query.get("type") {
        Some(t) => Some(
            catalog::lookup(t)
                .ok_or_else(|| ApiError::unknown_event_type(format!("unknown event type {t:?}")))?
                .name,
        ),
        None => None,
    };
    let db = state.db.clone();
    let head = state.writer.head();
    let (events, last_scanned) = tokio::task::spawn_blocking(move || {
        let mut events = Vec::with_capacity(limit.min(256));
        let mut last_scanned = after;
        reader::scan_from(&db, after + 1, MAX_SCAN_ENTRIES, |e| {
            last_scanned = e.offset;
            let wanted = !internal::is_internal(&e.kind)
                && !crate::retention::is_tombstone(&e)
                && type_filter.is_none_or(|t| t == e.kind);
            if wanted {
                events.push(e);
            }
            events.len() < limit
        })
        .map(|_| (events, last_scanned))
    })
    .await
    .map_err(|e| ApiError::internal(format!("list task failed: {e}")))??;
    let redact = !principal.permissions.contains(Permission::MedicalCustomer);
    let views = events
        .iter()
        .map(|e| EventView::of(e, &state.outgoing, redact))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (last_scanned < head).then(|| last_scanned.to_string());
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            data: views,
            next_cursor,
        },
    ))
}

/// `GET /v1/events/{id}`.
pub async fn get(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    let principal = authenticate(state, headers)?;
    principal.require_admin()?;
    let db = state.db.clone();
    let id_owned = id.to_string();
    let found = tokio::task::spawn_blocking(move || reader::get_by_id(&db, &id_owned))
        .await
        .map_err(|e| ApiError::internal(format!("lookup task failed: {e}")))??;
    match found {
        Some(e) if !internal::is_internal(&e.kind) => {
            let redact = !principal.permissions.contains(Permission::MedicalCustomer);
            Ok(json_response(
                StatusCode::OK,
                &EventView::of(&e, &state.outgoing, redact)?,
            ))
        }
        _ => Err(ApiError::not_found(format!("no event with id {id:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<NewEvent>, ApiError> {
        parse_batch(body.as_bytes(), 1000, &Origin::default())
    }

    #[test]
    fn data_nesting_is_bounded() {
        // Found by fuzzing: deeper data was accepted, then no serde_json reader could parse it
        // (customers projector, medical redaction, receivers of the wrapping delivery body).
        let nested = |n: usize| {
            format!(
                r#"{{"type":"customer.created","data":{{"id":"c1","x":{}{}}}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(parse(&nested(MAX_DATA_DEPTH - 1)).is_ok());
        assert!(parse(&nested(MAX_DATA_DEPTH)).is_err());
        assert!(parse(&nested(500)).is_err());
        let in_string = r#"{"type":"customer.created","data":{"id":"c1","x":"[[[[\"{{{{"}}"#;
        assert!(!nests_deeper_than(in_string, 2));
    }

    #[test]
    fn lone_surrogates_are_refused() {
        // Found by fuzzing: accepted outside data.id, then unreadable by serde_json.
        let body = r#"{"type":"customer.created","data":{"id":"c1","note":"\ud800"}}"#;
        assert!(parse(body).is_err());
        let pair = r#"{"type":"customer.created","data":{"id":"c1","note":"\ud83d\udc09"}}"#;
        assert!(parse(pair).is_ok());
    }

    #[test]
    fn escaped_pdf_field_is_extracted() {
        // Found by fuzzing: `pdf\u005fbase64` skipped extraction and left the PDF in the journal.
        let body = r#"{"type":"release_form.generated","data":{"id":"rf1","pdf\u005fbase64":"JVBERi0xLjQK"}}"#;
        let events = parse(body).unwrap();
        assert_eq!(events[0].blobs.len(), 1);
        assert!(!String::from_utf8_lossy(&events[0].payload).contains("JVBERi0xLjQK"));
    }
}
