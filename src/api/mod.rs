//! The HTTP API: the shared [`AppState`], the router, and one file per resource.
//! [`server`] owns connections (limits, timeouts, graceful shutdown); everything here is
//! request → response.

pub mod audit;
pub mod auth;
pub mod backups;
pub mod customers;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod files;
pub mod health;
pub mod hooks;
pub mod idempotency;
pub mod ifttt;
pub mod keys;
pub mod loops;
pub mod metrics;
pub mod policy;
pub mod prometheus;
pub mod pull;
pub mod rate_limit;
pub mod registry_change;
pub mod replays;
pub mod request;
pub mod response;
pub mod server;
pub mod signing_keys;
pub mod triggers;
pub mod users;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::journal::Db;
use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::config::Config;
use crate::domain::outgoing::Outgoing;
use crate::journal::Writer;
use crate::projectors::hooks::Hooks;
use crate::projectors::registry::Registry;
use crate::projectors::ProjectorStatus;
use crate::sender::progress::Progress;
use crate::sender::resolve::Destinations;
use crate::sender::signing::SigningKeyFile;
use error::ApiError;
use response::Response;

/// How long a handler waits for a projection to include its own write before answering.
pub const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

pub struct AppState {
    pub config: Arc<Config>,
    pub db: Arc<Db>,
    pub writer: Writer,
    pub registry: Registry,
    pub registry_status: Arc<ProjectorStatus>,
    pub hooks: Arc<Hooks>,
    pub hooks_status: Arc<ProjectorStatus>,
    pub customers_status: Arc<ProjectorStatus>,
    pub projectors: Vec<Arc<ProjectorStatus>>,
    pub progress: Arc<Progress>,
    pub signing: Arc<SigningKeyFile>,
    pub outgoing: Arc<Outgoing>,
    pub pull_leases: pull::Leases,
    /// Trigger identities IFTTT polls (for realtime notifications).
    pub ifttt_identities: Arc<crate::ifttt::Identities>,
    pub rate_limiter: rate_limit::RateLimiter,
    /// Serialises registry changes so check-then-append (unique ids, last owner) is race-free.
    pub registry_lock: tokio::sync::Mutex<()>,
    /// Serialises hook changes (limits, check-then-append).
    pub hooks_lock: tokio::sync::Mutex<()>,
    /// Serialises customer writes (idempotency, external-id upsert, no-op detection).
    pub customers_lock: tokio::sync::Mutex<()>,
    pub idempotency: idempotency::IdempotencyTable,
    /// Loop protection (shared with the sender, which notes what it sends).
    pub loops: Arc<crate::loops::LoopGuard>,
    /// The destination policy and the resolver that enforces it (shared with the sender).
    pub destinations: Destinations,
    /// Set once start-up (bootstrap) is complete.
    pub started: AtomicBool,
    /// Snapshots written by `POST /v1/backups`, waiting to be fetched.
    pub backups: backups::Backups,
}

/// Routes one request. Never fails: errors become JSON error responses.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = match route(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%method, %path, status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

async fn route(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method().clone();
    match (segments.as_slice(), &method) {
        (["healthz"], &Method::GET) => Ok(health::healthz()),
        (["ifttt", "v1", rest @ ..], _) => {
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            Ok(ifttt::handle(state, req, &rest).await)
        }
        (["readyz"], &Method::GET) => Ok(health::readyz(state)),
        (["metrics"], &Method::GET) => metrics::metrics(state).await,
        (["v1", "backups"], &Method::POST) => backups::create(state, req.headers()).await,
        (["v1", "backups", id], &Method::GET) => {
            backups::chunk(state, req.headers(), req.uri().query(), id).await
        }
        (["v1", "backups", id], &Method::DELETE) => backups::delete(state, req.headers(), id),
        (["v1", "events"], &Method::POST) => events::create(state, req).await,
        (["v1", "events"], &Method::GET) => events::list(state, req).await,
        (["v1", "events", id], &Method::GET) => events::get(state, req.headers(), id).await,
        (["v1", "users"], &Method::POST) => users::create(state, req).await,
        (["v1", "users"], &Method::GET) => users::list(state, req).await,
        (["v1", "users", id], &Method::GET) => users::get(state, req.headers(), id),
        (["v1", "users", id], &Method::PATCH) => {
            let id = id.to_string();
            users::update(state, req, &id).await
        }
        (["v1", "users", id, "keys"], &Method::POST) => {
            let id = id.to_string();
            keys::create(state, req, &id).await
        }
        (["v1", "keys"], &Method::GET) => keys::list(state, req),
        (["v1", "keys", id], &Method::DELETE) => keys::revoke(state, req.headers(), id).await,
        (["v1", "me"], &Method::GET) => users::me(state, req.headers()),
        (["v1", "signing-keys"], &Method::GET) => Ok(signing_keys::list(state)),
        (["v1", "files", sha], &Method::GET) => files::get(state, req.uri().query(), sha).await,
        (["v1", "triggers", kind], &Method::GET) => {
            let kind = kind.to_string();
            triggers::list(state, req, &kind).await
        }
        (["v1", "customers"], &Method::POST) => customers::create(state, req).await,
        (["v1", "customers"], &Method::GET) => customers::search(state, req),
        (["v1", "customers", id], &Method::GET) => customers::get(state, req.headers(), id),
        (["v1", "customers", id], &Method::PATCH) => {
            let id = id.to_string();
            customers::update(state, req, &id).await
        }
        (["v1", "hooks"], &Method::POST) => hooks::create(state, req).await,
        (["v1", "hooks"], &Method::GET) => hooks::list(state, req),
        (["v1", "hooks", id], &Method::GET) => hooks::get(state, req.headers(), id),
        (["v1", "hooks", id], &Method::PATCH) => {
            let id = id.to_string();
            hooks::update(state, req, &id).await
        }
        (["v1", "hooks", id], &Method::DELETE) => hooks::delete(state, req.headers(), id).await,
        (["v1", "hooks", id, "approve"], &Method::POST) => {
            hooks::approve(state, req.headers(), id).await
        }
        (["v1", "loops"], &Method::GET) => loops::list(state, req.headers()),
        (["v1", "loops", id], &Method::DELETE) => loops::clear(state, req.headers(), id).await,
        (["v1", "policy"], &Method::GET) => policy::get(state, req.headers()),
        (["v1", "policy"], &Method::PUT) => policy::put(state, req).await,
        (["v1", "audit", "hooks"], &Method::GET) => audit::hooks(state, req),
        (["v1", "hooks", id, "rotate-secret"], &Method::POST) => {
            hooks::rotate_secret(state, req.headers(), id).await
        }
        (["v1", "hooks", id, "poll"], &Method::GET) => {
            let id = id.to_string();
            pull::poll(state, req, &id).await
        }
        (["v1", "hooks", id, "ack"], &Method::POST) => {
            let id = id.to_string();
            pull::ack(state, req, &id).await
        }
        (["v1", "hooks", id, "replay"], &Method::POST) => {
            let id = id.to_string();
            replays::replay(state, req, &id).await
        }
        (["v1", "hooks", id, "replays", replay_id], &Method::GET) => {
            replays::get(state, req.headers(), id, replay_id)
        }
        (["v1", "hooks", id, "deliveries", sequence, "resend"], &Method::POST) => {
            replays::resend(state, req.headers(), id, sequence).await
        }
        (["v1", "hooks", id, "recover"], &Method::POST) => {
            let id = id.to_string();
            replays::recover(state, req, &id).await
        }
        (["v1", "hooks", id, "deliveries"], &Method::GET) => {
            let id = id.to_string();
            deliveries::list(state, req, &id).await
        }
        _ => Err(unknown_route(&segments, &method)),
    }
}

/// 405 (with `Allow`) for a known path with the wrong method, 404 otherwise.
fn unknown_route(segments: &[&str], method: &Method) -> ApiError {
    let allowed = match segments {
        ["healthz"] | ["readyz"] | ["v1", "me"] | ["v1", "keys"] => "GET",
        ["metrics"] => "GET",
        ["v1", "backups"] => "POST",
        ["v1", "backups", _] => "GET, DELETE",
        ["v1", "events"] | ["v1", "users"] => "GET, POST",
        ["v1", "events", _] => "GET",
        ["v1", "users", _] => "GET, PATCH",
        ["v1", "users", _, "keys"] => "POST",
        ["v1", "keys", _] => "DELETE",
        ["v1", "signing-keys"] => "GET",
        ["v1", "files", _] => "GET",
        ["v1", "triggers", _] => "GET",
        ["v1", "hooks"] | ["v1", "customers"] => "GET, POST",
        ["v1", "customers", _] => "GET, PATCH",
        ["v1", "hooks", _] => "GET, PATCH, DELETE",
        ["v1", "hooks", _, "rotate-secret"] | ["v1", "hooks", _, "approve"] => "POST",
        ["v1", "policy"] => "GET, PUT",
        ["v1", "loops"] => "GET",
        ["v1", "loops", _] => "DELETE",
        ["v1", "audit", "hooks"] => "GET",
        ["v1", "hooks", _, "deliveries"] => "GET",
        ["v1", "hooks", _, "poll"] => "GET",
        ["v1", "hooks", _, "replay"] | ["v1", "hooks", _, "recover"] => "POST",
        ["v1", "hooks", _, "replays", _] => "GET",
        ["v1", "hooks", _, "deliveries", _, "resend"] => "POST",
        ["v1", "hooks", _, "ack"] => "POST",
        _ => return ApiError::not_found("no such endpoint"),
    };
    let mut e = ApiError::method_not_allowed(format!(
        "{method} is not supported on this path; use {allowed}"
    ));
    e.allow = Some(allowed);
    e
}
