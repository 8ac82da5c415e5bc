//! The outgoing HTTP client: hyper 1.x over rustls (ring; webpki roots plus the system's native
//! roots), one shared keep-alive pool, a connect timeout and a total timeout per attempt, no
//! redirects (hyper never follows them; a 3xx is a failure), and only the first KiB of a
//! response body kept for the attempt log. Every connect goes through the destination policy
//! (see [`resolve`](super::resolve)): names resolve through [`GuardedResolver`], IP literals are
//! checked here, both before any connection is opened.

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

use super::resolve::{self, Destinations, GuardedResolver};

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
    /// The destination policy refused the target (nothing was sent).
    pub refused: bool,
}

pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    destinations: Destinations,
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
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        destinations: Destinations,
    ) -> HttpClient {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(destinations.clone()));
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
        HttpClient {
            inner,
            destinations,
            timeout,
        }
    }

    /// POSTs `body` to `uri`; never panics, every failure is an outcome.
    pub async fn post(
        &self,
        uri: Uri,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> HttpOutcome {
        let started = Instant::now();
        // hyper connects to IP literals without asking the resolver: judge them here.
        if let Err(v) = self.destinations.check_literal(uri.host().unwrap_or("")) {
            return HttpOutcome {
                error: Some(format!("destination not allowed: {v}")),
                refused: true,
                ..Default::default()
            };
        }
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
            let response = self.inner.request(request).await.map_err(|e| {
                let refused = resolve::is_refusal(&e);
                (describe_client_error(e), refused)
            })?;
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
            Ok::<_, (String, bool)>((status, retry_after, kept))
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Err(_) => HttpOutcome {
                latency_ms,
                error: Some(format!("timed out after {} ms", self.timeout.as_millis())),
                ..Default::default()
            },
            Ok(Err((error, refused))) => HttpOutcome {
                latency_ms,
                error: Some(error),
                refused,
                ..Default::default()
            },
            Ok(Ok((status, retry_after, kept))) => HttpOutcome {
                status: Some(status),
                retry_after,
                response_prefix: (!kept.is_empty())
                    .then(|| String::from_utf8_lossy(&kept).into_owned()),
                latency_ms,
                error: None,
                refused: false,
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::policy::{Policy, PolicyHandle, PolicyRecord};
    use crate::sender::resolve::StaticLookup;

    /// A loopback server answering 200 to every connection; counts accepted connections.
    async fn counting_server() -> (u16, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        (port, accepted)
    }

    fn client(private: &[&str]) -> HttpClient {
        let policy = Policy::new(PolicyRecord {
            allow_private_networks: private.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .unwrap();
        // A name that "re-bound" to loopback after the hook was created.
        let lookup = StaticLookup(HashMap::from([(
            "rebound.test".to_string(),
            vec!["127.0.0.1".parse().unwrap()],
        )]));
        let destinations = Destinations::new(Arc::new(PolicyHandle::new(policy)), Arc::new(lookup));
        HttpClient::new(Duration::from_secs(2), Duration::from_secs(5), destinations)
    }

    #[tokio::test]
    async fn forbidden_addresses_are_refused_before_connecting() {
        let (port, accepted) = counting_server().await;
        let strict = client(&[]);
        for url in [
            format!("http://rebound.test:{port}/hook"),
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        ] {
            let outcome = strict
                .post(url.parse().unwrap(), Vec::new(), Bytes::from_static(b"{}"))
                .await;
            assert!(outcome.refused, "{url}: {outcome:?}");
            assert_eq!(outcome.status, None);
            assert!(outcome.error.unwrap().contains("not allowed"), "{url}");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing may connect");

        // The same name, once loopback is allowed, is reached.
        let lenient = client(&["127.0.0.0/8"]);
        let outcome = lenient
            .post(
                format!("http://rebound.test:{port}/hook").parse().unwrap(),
                Vec::new(),
                Bytes::from_static(b"{}"),
            )
            .await;
        assert_eq!(outcome.status, Some(200), "{outcome:?}");
        assert!(!outcome.refused);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }
}
