//! `/v1/policy` (SPEC §11): the destination policy. `GET` for owners and `admin:webhook`; `PUT`
//! (owners only) replaces it whole. A change is journaled (`internal.policy_set`) together with
//! the suspension of every hook it now forbids (`state_reason: "destination_not_allowed"`), in
//! one atomic append, so the journal shows why each hook stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde_json::json;
use tokio::task::JoinSet;

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::hooks::{commit, hook_event};
use super::request::read_json;
use super::response::{json_response, Response};
use super::AppState;
use crate::clock;
use crate::domain::internal::{self, HookRecord, HookState, HookStateChange};
use crate::domain::policy::{Policy, PolicyRecord};
use crate::sender::attempt::DESTINATION_NOT_ALLOWED;
use crate::sender::resolve::DestinationError;

/// Host lookups run at once at most while re-checking hooks.
const MAX_PARALLEL_LOOKUPS: usize = 32;

fn view(policy: &PolicyRecord) -> serde_json::Value {
    json!({
        "allowed_destinations": policy.allowed_destinations,
        "require_approval": policy.require_approval,
        "https_only": policy.https_only,
        "allow_private_networks": policy.allow_private_networks,
    })
}

/// `GET /v1/policy`.
pub fn get(state: &Arc<AppState>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    caller.require_admin()?;
    let policy = state.destinations.policy.current();
    Ok(json_response(StatusCode::OK, &view(policy.record())))
}

/// `PUT /v1/policy`: the whole policy (absent fields: empty / false).
pub async fn put(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    if !caller.is_owner_admin() {
        return Err(ApiError::forbidden("only an owner may change the policy"));
    }
    let record: PolicyRecord = read_json(state, req).await?;
    let policy = Policy::new(record).map_err(ApiError::validation)?;
    let _guard = state.hooks_lock.lock().await;
    let forbidden = forbidden_hooks(state, &policy).await;
    let now = clock::now_ms();
    let mut events = vec![hook_event(
        internal::POLICY_SET,
        "policy",
        policy.record(),
        Some(&caller),
    )];
    for (id, reason) in &forbidden {
        tracing::warn!(hook = %id, %reason, "policy change suspends hook");
        let change = HookStateChange {
            id: id.clone(),
            state: HookState::Suspended,
            reason: Some(DESTINATION_NOT_ALLOWED.to_string()),
            at_ms: now,
        };
        events.push(hook_event(
            internal::HOOK_STATE_CHANGED,
            id,
            &change,
            Some(&caller),
        ));
    }
    commit(state, events).await?;
    // Journaled: the sender's next connect and the next hook check use it.
    state.destinations.policy.set(policy.clone());
    let mut body = view(policy.record());
    body["suspended_hooks"] = json!(forbidden.keys().collect::<Vec<_>>());
    Ok(json_response(StatusCode::OK, &body))
}

/// Push hooks (not already suspended) whose target `policy` forbids, with the reason. Hosts
/// that do not resolve now are left alone: the sender's resolver judges them at connect time.
async fn forbidden_hooks(state: &AppState, policy: &Policy) -> BTreeMap<String, String> {
    let hooks: Vec<HookRecord> = state
        .hooks
        .snapshot()
        .values()
        .filter(|h| h.state != HookState::Suspended && h.target_url.is_some())
        .cloned()
        .collect();
    // Static checks first; then one lookup per distinct host name.
    let mut out = BTreeMap::new();
    let mut by_host: BTreeMap<String, Vec<(String, url::Url)>> = BTreeMap::new();
    for hook in hooks {
        let Some(url) = hook
            .target_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
        else {
            continue;
        };
        if let Err(v) = policy.check_url(&url) {
            out.insert(hook.id, v.to_string());
            continue;
        }
        if let Some(url::Host::Domain(host)) = url.host() {
            by_host
                .entry(host.to_string())
                .or_default()
                .push((hook.id, url.clone()));
        }
    }
    let hosts: Vec<(String, Vec<(String, url::Url)>)> = by_host.into_iter().collect();
    for chunk in hosts.chunks(MAX_PARALLEL_LOOKUPS) {
        let mut lookups = JoinSet::new();
        for (_, hooks) in chunk {
            let (destinations, policy) = (state.destinations.clone(), policy.clone());
            let (ids, url): (BTreeSet<String>, url::Url) = (
                hooks.iter().map(|(id, _)| id.clone()).collect(),
                hooks[0].1.clone(),
            );
            lookups.spawn(async move { (ids, destinations.vet(&policy, &url).await) });
        }
        while let Some(done) = lookups.join_next().await {
            if let Ok((ids, Err(DestinationError::Refused(v)))) = done {
                for id in ids {
                    out.insert(id, v.to_string());
                }
            }
        }
    }
    out
}
