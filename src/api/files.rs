//! `GET /v1/files/{sha256}?expires=&sig=`: a release-form PDF, for whoever holds a valid signed
//! URL (deliveries and reads hand them out); 403 without a valid, unexpired signature.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::StatusCode;

use super::error::ApiError;
use super::request::Query;
use super::response::Response;
use super::AppState;
use crate::clock;
use crate::domain::files::{is_sha256_hex, UrlError};
use crate::journal::reader;

pub async fn get(
    state: &Arc<AppState>,
    query: Option<&str>,
    sha256: &str,
) -> Result<Response, ApiError> {
    if !is_sha256_hex(sha256) {
        return Err(ApiError::not_found("no such file"));
    }
    let query = Query::parse(query);
    state
        .outgoing
        .files
        .check(
            sha256,
            query.get("expires"),
            query.get("sig"),
            clock::now_ms(),
        )
        .map_err(|e| match e {
            UrlError::Expired => ApiError::forbidden("this file link has expired"),
            UrlError::Malformed | UrlError::BadSignature => {
                ApiError::forbidden("this file link is not valid")
            }
        })?;
    let db = state.db.clone();
    let sha = sha256.to_string();
    let bytes = tokio::task::spawn_blocking(move || reader::blob(&db, &sha))
        .await
        .map_err(|e| ApiError::internal(format!("file task failed: {e}")))??
        .ok_or_else(|| ApiError::not_found("no such file"))?;
    let mut response = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}
