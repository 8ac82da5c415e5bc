//! Open-loop paced posting: event `k` is due at `begin + k × interval` and goes out on
//! connection `k mod n`; a busy connection sends it late, and that lateness counts. Used where a
//! latency is measured at a fixed offered rate (append → receipt, live events during a replay).

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::http::{connect, exchange, ApiTarget, Sender};

/// One event the pacer sent.
pub struct Sent {
    pub k: u64,
    /// When the schedule wanted it sent.
    pub due: Instant,
    /// When its request actually went out.
    pub sent: Instant,
    /// When a 201 came back; None if it was refused or failed.
    pub acked: Option<Instant>,
}

/// The schedule: `total` events, one every `interval` from `begin`; none sent after `give_up`.
pub struct Pace {
    pub total: u64,
    pub interval: Duration,
    pub begin: Instant,
    pub give_up: Instant,
}

/// Posts the paced events (`body(k)`) to `POST /v1/events` on `senders`, each request bounded
/// by `timeout`. Returns what was sent and how many requests failed.
pub async fn post_paced(
    senders: Vec<Sender>,
    target: &ApiTarget,
    pace: Pace,
    body: fn(u64) -> Bytes,
    timeout: Duration,
) -> (Vec<Sent>, u64) {
    let Pace {
        total,
        interval,
        begin,
        give_up,
    } = pace;
    assert!(!senders.is_empty(), "the pacer needs a connection");
    let mut schedules = Vec::new();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
            schedules.push(tx);
            let target = target.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut errors = 0u64;
                while let Some((k, due)) = rx.recv().await {
                    if Instant::now() > give_up {
                        continue;
                    }
                    let sent = Instant::now();
                    let outcome = match target.request(Method::POST, "/v1/events", Some(body(k))) {
                        Ok(request) => exchange(&mut sender, request, timeout).await,
                        Err(e) => Err(e),
                    };
                    let done = Instant::now();
                    let ok = matches!(&outcome, Ok((s, _)) if *s == StatusCode::CREATED);
                    if !ok {
                        errors += 1;
                        if outcome.is_err() {
                            match connect(target.addr).await {
                                Ok(s) => sender = s,
                                Err(_) => continue,
                            }
                        }
                    }
                    out.push(Sent {
                        k,
                        due,
                        sent,
                        acked: ok.then_some(done),
                    });
                }
                (out, errors)
            })
        })
        .collect();
    // The pacer itself: a plain thread, for nanosleep precision.
    let pacer = tokio::task::spawn_blocking(move || {
        for k in 0..total {
            let due = begin + interval * u32::try_from(k).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if schedules[(k as usize) % schedules.len()]
                .send((k, due))
                .is_err()
            {
                break;
            }
        }
    });
    let _ = pacer.await;
    let mut sent = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((s, e)) = t.await {
            sent.extend(s);
            errors += e;
        }
    }
    (sent, errors)
}
