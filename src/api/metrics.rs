//! `GET /metrics` (SPEC §13): the daemon's figures in Prometheus text format, read from the same
//! sources the API answers from — the writer's head (`/readyz`), the hooks projection and the
//! sender's progress (`GET /v1/hooks/{id}`) — so a dashboard and the API never disagree.
//!
//! No API key is needed, like `/healthz` and `/readyz`: scrapers rarely carry one, and the page
//! holds only counts and hook ids (no secrets, target URLs or payloads). The daemon listens on
//! 127.0.0.1 by default; put it behind a proxy that hides `/metrics` if it must face a network.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use redb::ReadableTableMetadata;

use super::error::ApiError;
use super::prometheus::{self, Exposition, Kind};
use super::response::Response;
use super::AppState;
use crate::clock;
use crate::domain::internal::HookState;
use crate::journal::schema::EVENTS_BY_TYPE;
use crate::journal::{reader, JournalError};
use crate::projectors::hooks;
use crate::sender::latency::BUCKET_BOUNDS_MS;
use crate::sender::progress::HookProgress;

/// Hooks given per-hook series at most; beyond it `rev23_metrics_hooks_omitted` says how many
/// were left out, so one scrape stays bounded whatever `max_hooks` is set to.
pub const MAX_HOOK_SERIES: usize = 20_000;

const STATES: [HookState; 5] = [
    HookState::Active,
    HookState::Paused,
    HookState::Disabled,
    HookState::Suspended,
    HookState::PendingApproval,
];

pub async fn metrics(state: &Arc<AppState>) -> Result<Response, ApiError> {
    let state = state.clone();
    // Reads the database (one point read per lagging hook): off the async threads.
    let text = tokio::task::spawn_blocking(move || render(&state))
        .await
        .map_err(|e| ApiError::internal(format!("metrics task: {e}")))??;
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus::CONTENT_TYPE),
    );
    Ok(response)
}

/// One hook's per-hook figures.
struct HookFigures {
    lag: u64,
    oldest_age_seconds: f64,
    progress: HookProgress,
}

fn render(state: &AppState) -> Result<String, JournalError> {
    let mut e = Exposition::default();
    let now_ms = clock::now_ms();

    e.family(
        "rev23_build_info",
        Kind::Gauge,
        "Always 1; the version label names the running build.",
    );
    e.sample(
        "rev23_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1u64,
    );

    let head = state.writer.head();
    let public_events = {
        let txn = state.db.begin_read()?;
        let by_type = txn.open_table(EVENTS_BY_TYPE)?;
        by_type.len()?
    };
    e.family(
        "rev23_events_appended_total",
        Kind::Counter,
        "Public events in the journal (what GET /v1/events lists); duplicates are not counted.",
    );
    e.sample("rev23_events_appended_total", &[], public_events);
    e.family(
        "rev23_journal_head_offset",
        Kind::Gauge,
        "The last committed journal offset (internal entries included), as /readyz journal_head.",
    );
    e.sample("rev23_journal_head_offset", &[], head);
    e.family(
        "rev23_journal_write_queue_length",
        Kind::Gauge,
        "Requests waiting for the journal writer.",
    );
    e.sample(
        "rev23_journal_write_queue_length",
        &[],
        state.writer.queue_len() as u64,
    );
    e.family(
        "rev23_projector_checkpoint_offset",
        Kind::Gauge,
        "The journal offset each projector has applied through.",
    );
    for p in &state.projectors {
        e.sample(
            "rev23_projector_checkpoint_offset",
            &[("projector", p.name)],
            p.checkpoint(),
        );
    }

    let hooks = state.hooks.snapshot();
    let progress = state.progress.all();

    e.family("rev23_hooks", Kind::Gauge, "Hooks by state.");
    for s in STATES {
        let n = hooks.values().filter(|h| h.state == s).count() as u64;
        e.sample("rev23_hooks", &[("state", s.name())], n);
    }

    // Every hook that ever delivered counts, deleted ones too, so the totals never go down.
    let (succeeded, failed, skipped) = progress.values().fold((0, 0, 0), |t, p| {
        (
            t.0 + p.succeeded_total,
            t.1 + p.failed_total,
            t.2 + p.skipped_total,
        )
    });
    e.family(
        "rev23_deliveries_total",
        Kind::Counter,
        "Final deliveries by result, over all hooks.",
    );
    for (result, n) in [
        ("succeeded", succeeded),
        ("failed", failed),
        ("skipped", skipped),
    ] {
        e.sample("rev23_deliveries_total", &[("result", result)], n);
    }

    let latency = state.progress.latency.snapshot();
    e.family(
        "rev23_delivery_attempt_duration_seconds",
        Kind::Histogram,
        "Time from sending a delivery attempt to its answer or error, since the daemon started.",
    );
    for (bound, n) in BUCKET_BOUNDS_MS.iter().zip(&latency.cumulative) {
        let le = format!("{}", *bound as f64 / 1000.0);
        e.sample(
            "rev23_delivery_attempt_duration_seconds_bucket",
            &[("le", &le)],
            *n,
        );
    }
    e.sample(
        "rev23_delivery_attempt_duration_seconds_bucket",
        &[("le", "+Inf")],
        latency.count,
    );
    e.sample(
        "rev23_delivery_attempt_duration_seconds_sum",
        &[],
        latency.sum_ms as f64 / 1000.0,
    );
    e.sample(
        "rev23_delivery_attempt_duration_seconds_count",
        &[],
        latency.count,
    );

    let mut figures = BTreeMap::new();
    for id in hooks.keys().take(MAX_HOOK_SERIES) {
        let p = progress.get(id).cloned().unwrap_or_default();
        // The same arithmetic as the hook's `lag` in the API.
        let lag = state
            .hooks
            .head_sequence(id)
            .saturating_sub(p.cursor_sequence);
        let oldest_age_seconds = if lag == 0 {
            0.0
        } else {
            oldest_undelivered_at_ms(state, id, p.cursor_sequence)?
                .map(|at| now_ms.saturating_sub(at).max(0) as f64 / 1000.0)
                .unwrap_or(0.0)
        };
        figures.insert(
            id.as_str(),
            HookFigures {
                lag,
                oldest_age_seconds,
                progress: p,
            },
        );
    }
    e.family(
        "rev23_metrics_hooks_omitted",
        Kind::Gauge,
        "Hooks left out of the per-hook series (beyond the series limit).",
    );
    e.sample(
        "rev23_metrics_hooks_omitted",
        &[],
        hooks.len().saturating_sub(MAX_HOOK_SERIES) as u64,
    );
    e.family(
        "rev23_hook_lag_events",
        Kind::Gauge,
        "Events matched to the hook and not yet final (the hook's lag in the API).",
    );
    for (id, f) in &figures {
        e.sample("rev23_hook_lag_events", &[("hook_id", id)], f.lag);
    }
    e.family(
        "rev23_hook_oldest_undelivered_age_seconds",
        Kind::Gauge,
        "Age of the journal entry at the front of the hook's backlog (0 when there is none).",
    );
    for (id, f) in &figures {
        e.sample(
            "rev23_hook_oldest_undelivered_age_seconds",
            &[("hook_id", id)],
            f.oldest_age_seconds,
        );
    }
    e.family(
        "rev23_hook_deliveries_total",
        Kind::Counter,
        "Final deliveries of the hook by result (the hook's deliveries in the API).",
    );
    for (id, f) in &figures {
        for (result, n) in [
            ("succeeded", f.progress.succeeded_total),
            ("failed", f.progress.failed_total),
            ("skipped", f.progress.skipped_total),
        ] {
            e.sample(
                "rev23_hook_deliveries_total",
                &[("hook_id", id), ("result", result)],
                n,
            );
        }
    }
    e.family(
        "rev23_hook_consecutive_failures",
        Kind::Gauge,
        "Failed attempts of the hook since its last success.",
    );
    for (id, f) in &figures {
        e.sample(
            "rev23_hook_consecutive_failures",
            &[("hook_id", id)],
            u64::from(f.progress.consecutive_failures),
        );
    }
    Ok(e.finish())
}

/// When the first not-yet-final entry of the hook (the one after its cursor) was appended to
/// the journal; None if the projection has not written that entry yet.
fn oldest_undelivered_at_ms(
    state: &AppState,
    hook_id: &str,
    cursor_sequence: u64,
) -> Result<Option<i64>, JournalError> {
    let entries = hooks::read_entries(&state.db, hook_id, cursor_sequence + 1, 1)?;
    let Some(&(_, offset)) = entries.first() else {
        return Ok(None);
    };
    Ok(reader::get_by_offset(&state.db, offset)?.map(|e| e.appended_at_ms))
}
