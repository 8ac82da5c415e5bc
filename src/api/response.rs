//! Building JSON responses and the list envelope `{"data":[...], "next_cursor"}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde::Serialize;

pub type Response = hyper::Response<Full<Bytes>>;

pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, bytes)
}

pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn no_content() -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

#[derive(Serialize)]
pub struct ListPage<T: Serialize> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}
