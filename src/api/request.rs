//! Reading requests safely: bodies under a byte limit and a read timeout, JSON with the right
//! error code (syntax → 400 `invalid_json`, shape → 422 `validation_failed`), and query strings.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::HeaderMap;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Default and maximum `?limit=` of list endpoints (SPEC §1).
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;

/// Checks the media type of a request that carries a body.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type(
            "content-type must be application/json",
        ));
    };
    let text = value.to_str().unwrap_or("");
    let media = text.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "content-type must be application/json, not {media:?}"
        )))
    }
}

/// Reads the whole body, at most `max_bytes`, within `timeout`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::payload_too_large(format!(
            "request body exceeds the limit of {max_bytes} bytes"
        ))
    };
    // Refuse early on a declared length, before reading anything.
    if let Some(len) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max_bytes as u64 {
            return Err(too_large());
        }
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, max_bytes).collect()).await;
    match collected {
        Err(_) => Err(ApiError::new(
            hyper::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body was not received in time",
        )),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(too_large())
            } else {
                Err(ApiError::invalid_request(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Reads a JSON request body — content type checked, at most `limits.max_body_bytes`, within
/// `limits.body_read_timeout_ms` — and parses it as `T`.
pub async fn read_json<T: DeserializeOwned>(
    state: &super::AppState,
    req: hyper::Request<Incoming>,
) -> Result<T, ApiError> {
    let (_, bytes) = read_json_bytes(state, req).await?;
    parse_json(&bytes)
}

/// The steps of [`read_json`] short of parsing: the request's headers and its body's bytes (for
/// handlers that also need those, e.g. to hash the body for idempotency).
pub async fn read_json_bytes(
    state: &super::AppState,
    req: hyper::Request<Incoming>,
) -> Result<(HeaderMap, Bytes), ApiError> {
    require_json(req.headers())?;
    let (parts, body) = req.into_parts();
    let limits = &state.config.limits;
    let bytes = read_body(
        &parts.headers,
        body,
        limits.max_body_bytes,
        Duration::from_millis(limits.body_read_timeout_ms),
    )
    .await?;
    Ok((parts.headers, bytes))
}

/// Maps a serde_json error to the API's codes: syntax problems are 400, shape problems 422.
pub fn json_error(e: serde_json::Error, context: &str) -> ApiError {
    use serde_json::error::Category;
    let prefix = if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    };
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid_json(format!("{prefix}body is not valid JSON: {e}"))
        }
        Category::Data => ApiError::validation(format!("{prefix}{e}")),
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| json_error(e, ""))
}

/// Parsed query string; a repeated key keeps its last value.
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Query(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `?limit=`: default and maximum as given; anything else is a 400.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid_request(format!(
                    "limit must be an integer from 1 to {max}"
                ))),
            },
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
                ApiError::invalid_request(format!("{key} must be a non-negative integer"))
            }),
        }
    }
}
