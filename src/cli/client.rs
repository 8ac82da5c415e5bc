//! How the CLI talks to a running daemon: `--url` (default `http://127.0.0.1:8023`) and `--key`
//! (default `$REV23_API_KEY`, else `<data-dir>/owner.key`), one blocking JSON request at a time
//! over hyper on a small runtime.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Longest a CLI request may take (a replay of a huge range counts its matches first).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Response bytes read at most.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// The daemon's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8023")]
    pub url: String,
    /// API key (default: $REV23_API_KEY, else <data-dir>/owner.key).
    #[arg(long, env = "REV23_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Data directory whose owner.key is the fallback key.
    #[arg(long, default_value = "./rev23-data")]
    pub data_dir: PathBuf,
}

impl DaemonArgs {
    fn key(&self) -> Result<String, String> {
        if let Some(key) = &self.key {
            return Ok(key.trim().to_string());
        }
        let path = self.data_dir.join(crate::daemon::OWNER_KEY_FILE);
        std::fs::read_to_string(&path)
            .map(|k| k.trim().to_string())
            .map_err(|e| {
                format!(
                    "no --key, no $REV23_API_KEY, and {} is unreadable: {e}",
                    path.display()
                )
            })
    }

    /// Sends `method path` with an optional JSON body; returns the status and body text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, String), String> {
        let (status, bytes) = self.request_bytes(method, path, body)?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// [`request`](Self::request) for binary answers: the status and the body's bytes.
    pub fn request_bytes(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), String> {
        self.request_within(method, path, body, REQUEST_TIMEOUT)
    }

    /// [`request_bytes`](Self::request_bytes) with its own time limit (a backup of a large
    /// journal takes longer than the usual limit to write).
    pub fn request_within(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let key = self.key()?;
        let url = format!("{}{}", self.url.trim_end_matches('/'), path);
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad --url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err("--url must be an http:// URL (the daemon listens on plain HTTP)".into());
        }
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-api-key", key);
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| format!("request: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        runtime.block_on(async {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
            let exchange = async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| format!("cannot reach {url}: {e}"))?;
                let status = response.status().as_u16();
                let collected =
                    http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                        .collect()
                        .await
                        .map_err(|e| format!("reading the response: {e}"))?;
                Ok((status, collected.to_bytes().to_vec()))
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| format!("no answer from {url} within {timeout:?}"))?
        })
    }
}
