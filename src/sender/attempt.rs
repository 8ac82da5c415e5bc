//! One delivery, from its first attempt to a final outcome: re-check the subscriber's
//! permissions (now, not when the hook was made), build the body (redacted when needed), sign
//! it, POST it, and retry by the policy. The lane decides what the outcome means for its cursor.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use super::access::{self, Access};
use super::lane::LaneCtx;
use super::progress::{Attempt, DeliveryRecord, DeliveryStatus, MAX_ATTEMPTS_KEPT};
use super::retry::{self, Verdict};
use super::signing::{self, HmacSecret};
use crate::clock;
use crate::domain::customer::Fingerprint;
use crate::domain::internal::{HookRecord, HookState};
use crate::journal::Envelope;

/// The `state_reason` of a hook whose target the destination policy forbids.
pub const DESTINATION_NOT_ALLOWED: &str = "destination_not_allowed";

pub const USER_AGENT: &str = concat!("rev23-webhooks/", env!("CARGO_PKG_VERSION"));

/// What became of a delivery.
pub enum Outcome {
    /// Final (succeeded, failed for good, or skipped): the cursor may pass it.
    Final(DeliveryRecord),
    /// The hook must leave `active`; this delivery stays pending for when it resumes.
    StopHook {
        record: DeliveryRecord,
        state: HookState,
        reason: String,
    },
    /// The hook stopped being active, or the daemon is stopping: not final, not recorded anew.
    Cancelled,
}

/// Runs a delivery until it has an outcome.
pub async fn deliver(
    ctx: Arc<LaneCtx>,
    envelope: Arc<Envelope>,
    sequence: u64,
    prior: Option<DeliveryRecord>,
) -> Outcome {
    let mut record = prior.unwrap_or_else(|| DeliveryRecord {
        sequence,
        event_id: envelope.id.clone(),
        offset: envelope.offset,
        status: DeliveryStatus::Pending,
        attempts: Vec::new(),
        attempt_count: 0,
        next_attempt_at_ms: None,
        reason: None,
    });
    let mut shutdown = ctx.shutdown.clone();
    // Resuming after a restart: wait out the recorded back-off first.
    if let Some(at) = record.next_attempt_at_ms {
        let wait_ms = at.saturating_sub(clock::now_ms()).max(0) as u64;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            _ = shutdown.wait() => return Outcome::Cancelled,
        }
    }
    loop {
        let Some(hook) = ctx
            .hooks
            .get(&ctx.hook_id)
            .filter(|h| h.state == HookState::Active)
        else {
            return Outcome::Cancelled;
        };
        if ctx.shutdown.is_fired() {
            return Outcome::Cancelled;
        }
        // The hook's subscription and its user's permissions and scope, now.
        let redact = match access::check(&ctx.registry.snapshot(), &hook, &envelope) {
            Access::Deliver { redact_medical } => redact_medical,
            Access::Skip(reason) => {
                record.status = DeliveryStatus::Skipped;
                record.reason = Some(reason.into());
                return Outcome::Final(record);
            }
            Access::Deny(reason) => {
                record.status = DeliveryStatus::Skipped;
                record.reason = Some(reason.clone());
                return Outcome::StopHook {
                    record,
                    state: HookState::Suspended,
                    reason,
                };
            }
        };
        let Some(target) = hook
            .target_url
            .as_deref()
            .and_then(|u| u.parse::<hyper::Uri>().ok())
        else {
            record.status = DeliveryStatus::Failed;
            record.reason = Some("invalid_target_url".into());
            return Outcome::Final(record);
        };
        let body = ctx.outgoing.body(&envelope, redact);
        let now_ms = clock::now_ms();
        let timestamp = now_ms.div_euclid(1000);
        let secrets = hook_secrets(&hook, now_ms);
        let secret_refs: Vec<&HmacSecret> = secrets.iter().collect();
        let signature = signing::signature_header(
            &secret_refs,
            Some(&ctx.signing.key),
            &envelope.id,
            timestamp,
            &body,
        );
        record.attempt_count += 1;
        let headers = delivery_headers(
            &ctx.hook_id,
            &envelope,
            sequence,
            record.attempt_count,
            timestamp,
            &signature,
        );
        if envelope.kind.starts_with("customer.") {
            // Noted before sending: the receiver may echo it back before it answers.
            note_customer_sent(&ctx, &envelope, now_ms);
        }
        let outcome = ctx.client.post(target, headers, Bytes::from(body)).await;
        ctx.progress.latency.observe_ms(outcome.latency_ms);
        push_attempt(
            &mut record,
            Attempt {
                at_ms: now_ms,
                http_status: outcome.status,
                latency_ms: outcome.latency_ms,
                error: outcome.error.clone(),
                response_body: outcome.response_prefix.clone(),
            },
        );
        if outcome.refused {
            // The policy forbids where the target now resolves: nothing was sent. Retrying
            // cannot help; the delivery waits (pending) until the hook is re-checked and resumed.
            return Outcome::StopHook {
                record,
                state: HookState::Suspended,
                reason: DESTINATION_NOT_ALLOWED.into(),
            };
        }
        let verdict = match outcome.status {
            Some(status) => retry::classify(status, outcome.retry_after.as_deref(), timestamp),
            None => Verdict::Retry { retry_after: None },
        };
        match verdict {
            Verdict::Success => {
                record.status = DeliveryStatus::Succeeded;
                record.next_attempt_at_ms = None;
                ctx.progress
                    .update(&ctx.hook_id, |p| {
                        p.consecutive_failures = 0;
                        p.last_success_at_ms = Some(now_ms);
                        p.failing_since_ms = None;
                        p.next_attempt_at_ms = None;
                    })
                    .await;
                return Outcome::Final(record);
            }
            Verdict::Gone => {
                record.reason = Some("gone".into());
                note_failure(&ctx, now_ms, None).await;
                return Outcome::StopHook {
                    record,
                    state: HookState::Disabled,
                    reason: "gone".into(),
                };
            }
            Verdict::Retry { retry_after } => {
                let failing_since = ctx
                    .progress
                    .get(&ctx.hook_id)
                    .failing_since_ms
                    .unwrap_or(now_ms);
                // Parallel deliveries of one hook race: another may have recorded a failure
                // after this attempt began, so the difference can be negative (not "forever").
                let failing_for_ms = now_ms.saturating_sub(failing_since).max(0) as u64;
                if failing_for_ms >= ctx.delivery.disable_after_ms {
                    note_failure(&ctx, now_ms, None).await;
                    record.reason = Some("failing".into());
                    return Outcome::StopHook {
                        record,
                        state: HookState::Disabled,
                        reason: "failing".into(),
                    };
                }
                if record.attempt_count >= ctx.policy.max_attempts() {
                    note_failure(&ctx, now_ms, None).await;
                    record.status = DeliveryStatus::Failed;
                    record.next_attempt_at_ms = None;
                    record.reason = Some("retries_exhausted".into());
                    return Outcome::Final(record);
                }
                let delay = ctx
                    .policy
                    .delay_before(record.attempt_count + 1, retry_after);
                let next_at = now_ms + delay.as_millis() as i64;
                record.next_attempt_at_ms = Some(next_at);
                note_failure(&ctx, now_ms, Some(next_at)).await;
                ctx.progress
                    .record_delivery(&ctx.hook_id, record.clone())
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return Outcome::Cancelled,
                }
                record.next_attempt_at_ms = None;
            }
        }
    }
}

fn note_customer_sent(ctx: &LaneCtx, envelope: &Envelope, now_ms: i64) {
    if let Ok(data) =
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&envelope.payload)
    {
        ctx.loops
            .note_delivery(&ctx.hook_id, Fingerprint::of(&data), now_ms);
    }
}

async fn note_failure(ctx: &LaneCtx, now_ms: i64, next_attempt_at_ms: Option<i64>) {
    ctx.progress
        .update(&ctx.hook_id, |p| {
            p.consecutive_failures = p.consecutive_failures.saturating_add(1);
            p.last_failure_at_ms = Some(now_ms);
            p.failing_since_ms.get_or_insert(now_ms);
            p.next_attempt_at_ms = next_attempt_at_ms;
        })
        .await;
}

fn push_attempt(record: &mut DeliveryRecord, attempt: Attempt) {
    if record.attempts.len() >= MAX_ATTEMPTS_KEPT {
        record.attempts.remove(0);
    }
    record.attempts.push(attempt);
}

/// The current secret, and the previous one while its overlap lasts.
fn hook_secrets(hook: &HookRecord, now_ms: i64) -> Vec<HmacSecret> {
    let mut out = Vec::with_capacity(2);
    if let Ok(s) = HmacSecret::parse(&hook.secret) {
        out.push(s);
    }
    if let (Some(prev), Some(expires)) = (&hook.previous_secret, hook.previous_secret_expires_at_ms)
    {
        if now_ms < expires {
            if let Ok(s) = HmacSecret::parse(prev) {
                out.push(s);
            }
        }
    }
    out
}

fn delivery_headers(
    hook_id: &str,
    envelope: &Envelope,
    sequence: u64,
    attempt: u32,
    timestamp: i64,
    signature: &str,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            hyper::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        ),
    ];
    let mut add = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.push((HeaderName::from_static(name), v));
        }
    };
    add("webhook-id", envelope.id.clone());
    add("webhook-timestamp", timestamp.to_string());
    add("webhook-signature", signature.to_string());
    add("rev23-hook-id", hook_id.to_string());
    add("rev23-event-type", envelope.kind.clone());
    add("rev23-sequence", sequence.to_string());
    add("rev23-attempt", attempt.to_string());
    headers
}
