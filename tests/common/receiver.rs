//! A real HTTP receiver for deliveries: a hyper server on 127.0.0.1 (ephemeral port) in its own
//! thread, recording every request and answering by a programmable behaviour (status, headers,
//! body, delay). Dropping it stops the server.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("delivery body is JSON")
    }

    pub fn sequence(&self) -> u64 {
        self.header("rev23-sequence")
            .expect("rev23-sequence")
            .parse()
            .unwrap()
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    pub fn with_body(mut self, body: &str) -> Answer {
        self.body = body.to_string();
        self
    }
}

type Behaviour = dyn Fn(&Received, usize) -> Answer + Send + Sync;

pub struct Receiver {
    /// `http://127.0.0.1:PORT` (append a path for the hook's target).
    pub base_url: String,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub fn ok() -> Receiver {
        Receiver::start(|_, _| Answer::status(200))
    }

    /// `behaviour(request, index)`: index is 0 for the first request received, 1 for the next...
    pub fn start(
        behaviour: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread_log = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let mut stop_rx = stop_rx;
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                        _ = &mut stop_rx => break,
                    };
                    let log = thread_log.clone();
                    let behaviour = behaviour.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let log = log.clone();
                            let behaviour = behaviour.clone();
                            async move {
                                let method = req.method().to_string();
                                let path = req.uri().path().to_string();
                                let headers = req
                                    .headers()
                                    .iter()
                                    .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                                    .collect();
                                let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                                let received = Received { method, path, headers, body, at: Instant::now() };
                                let index = {
                                    let mut log = log.lock().unwrap();
                                    log.push(received.clone());
                                    log.len() - 1
                                };
                                let answer = behaviour(&received, index);
                                if !answer.delay.is_zero() {
                                    tokio::time::sleep(answer.delay).await;
                                }
                                let mut response = hyper::Response::new(Full::new(Bytes::from(answer.body)));
                                *response.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap();
                                for (n, v) in answer.headers {
                                    response.headers_mut().insert(
                                        hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                                        hyper::header::HeaderValue::from_str(&v).unwrap(),
                                    );
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
            });
            rt.shutdown_timeout(Duration::from_millis(200));
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver address");
        Receiver {
            base_url: format!("http://{addr}"),
            log,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits (bounded) until at least `n` requests arrived; returns them all.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
