//! The outgoing HTTP client: hyper 1.x over rustls (ring; webpki roots plus the system's native
//! roots), one shared keep-alive pool, a connect timeout and a total timeout per attempt, no
//! redirects (hyper never follows them; a 3xx is a failure), and only the first KiB of a
//! response body kept for the attempt log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Response bytes kept for the attempt log.
pub const RESPONSE_PREFIX_BYTES: usize = 1024;
/// Response bytes read at most (the rest is dropped with the connection).
const MAX_RESPONSE_READ_BYTES: usize = 64 * 1024;
const POOL_IDLE_PER_HOST: usize = 32;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one POST produced.
#[derive(Clone, Debug, Default)]
pub struct HttpOutcome {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub response_prefix: Option<String>,
    pub latency_ms: u64,
    pub error: Option<String>,
}

pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

impl HttpClient {
    pub fn new(connect_timeout: Duration, timeout: Duration) -> HttpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        HttpClient { inner, timeout }
    }

    /// POSTs `body` to `uri`; never panics, every failure is an outcome.
    pub async fn post(
        &self,
        uri: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> HttpOutcome {
        let started = Instant::now();
        let mut builder = hyper::Request::post(uri);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = match builder.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return HttpOutcome {
                    error: Some(format!("invalid request: {e}")),
                    ..Default::default()
                }
            }
        };
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(describe_client_error)?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let mut body = response.into_body();
            let mut kept = Vec::new();
            let mut read = 0usize;
            while read < MAX_RESPONSE_READ_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(chunk) = frame.data_ref() {
                            read += chunk.len();
                            let room = RESPONSE_PREFIX_BYTES.saturating_sub(kept.len());
                            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        }
                    }
                    // A broken body after the status line does not change the verdict.
                    Some(Err(_)) | None => break,
                }
            }
            Ok::<_, String>((status, retry_after, kept))
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Err(_) => HttpOutcome {
                latency_ms,
                error: Some(format!("timed out after {} ms", self.timeout.as_millis())),
                ..Default::default()
            },
            Ok(Err(error)) => HttpOutcome {
                latency_ms,
                error: Some(error),
                ..Default::default()
            },
            Ok(Ok((status, retry_after, kept))) => HttpOutcome {
                status: Some(status),
                retry_after,
                response_prefix: (!kept.is_empty())
                    .then(|| String::from_utf8_lossy(&kept).into_owned()),
                latency_ms,
                error: None,
            },
        }
    }
}

fn describe_client_error(e: hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_connect() {
        format!("connect failed: {message}")
    } else {
        message
    }
}
