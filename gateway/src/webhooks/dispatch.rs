//! One webhook at work: fetch from its consumer group, POST each event
//! (one per request, CloudEvents structured JSON, signed), ack on 2xx, nack
//! with the retry schedule otherwise. `max_inflight` requests at most are
//! in flight; with 1 the group hands out nothing new until the current
//! event is acked or dead, so order holds.

use super::config::MAX_RETRY;
use super::{Hook, Webhooks, sign, target};
use crate::groups::group::{Delivery, Outcome};
use eventwire_protocol::ErrorCode;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER, USER_AGENT};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long one fetch waits for events before looking again (and checking
/// that the gateway still exists).
const POLL: Duration = Duration::from_secs(5);
/// Bytes of a receiver's answer read (so the connection can be reused);
/// the rest is dropped with the connection.
const MAX_ANSWER: usize = 64 * 1024;
const USER_AGENT_VALUE: &str = concat!("eventwire-webhooks/", env!("CARGO_PKG_VERSION"));

/// Why one attempt failed, and when the receiver asked to be tried again.
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
}

pub(super) async fn run(hook: Arc<Hook>, client: reqwest::Client, owner: Weak<Webhooks>) {
    let slots = Arc::new(Semaphore::new(hook.config.max_inflight as usize));
    loop {
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = hook.stop.cancelled() => return,
        };
        if owner.strong_count() == 0 {
            return;
        }
        let max = 1 + slots.available_permits();
        let out = hook.groups.fetch(&hook.group, max, POLL, &hook.stop).await;
        if hook.stop.is_cancelled() {
            // Whatever was just handed out stays pending in the group and
            // goes out again after `ack_wait` (or after the restart).
            return;
        }
        match out {
            Ok(deliveries) => {
                let mut first = Some(first);
                for d in deliveries {
                    // Only finishing deliveries touch the semaphore meanwhile,
                    // and they give slots back: the fetch's `max` are free.
                    let slot = first.take().unwrap_or_else(|| {
                        slots
                            .clone()
                            .try_acquire_owned()
                            .expect("fetched no more than the free slots")
                    });
                    tokio::spawn(deliver(hook.clone(), client.clone(), d, slot));
                }
            }
            Err(e) if e.code == ErrorCode::GroupNotFound => {
                // Someone deleted the group under the webhook (DELETE
                // /v1/groups/webhooks.{name}): make it again rather than
                // leave a webhook that sends nothing.
                tracing::warn!(webhook = %hook.name, group = %hook.group, "the webhook's group was deleted; creating it again (events published meanwhile are not sent)");
                if let Err(e) = hook.groups.create(&hook.group, hook.config.group()).await {
                    tracing::warn!(webhook = %hook.name, error = %e, "could not create the webhook's group again");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = hook.stop.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::warn!(webhook = %hook.name, error = %e, "webhook could not fetch from its group");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = hook.stop.cancelled() => return,
                }
            }
        }
    }
}

async fn deliver(
    hook: Arc<Hook>,
    client: reqwest::Client,
    d: Delivery,
    _slot: OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let result = attempt(&hook, &client, &d).await;
    let took = started.elapsed();
    hook.stats.attempted(took);
    let handles = [d.handle.clone()];
    let settled = match &result {
        Ok(status) => {
            tracing::debug!(webhook = %hook.name, id = %d.event.id, attempt = d.attempt, %status, ms = took.as_millis() as u64, "webhook delivered");
            hook.groups.ack(&hook.group, &handles).await
        }
        Err(f) => {
            hook.stats.failed(&f.reason);
            let delay = f
                .retry_after
                .unwrap_or_else(|| hook.config.retry.jittered(d.attempt))
                .min(MAX_RETRY);
            tracing::info!(webhook = %hook.name, id = %d.event.id, attempt = d.attempt, reason = %f.reason, retry_in_ms = delay.as_millis() as u64, "webhook attempt failed");
            hook.groups
                .nack(&hook.group, &handles, Some(delay), Some(f.reason.clone()))
                .await
        }
    };
    match settled.as_deref() {
        Ok([Outcome::Acked]) => hook.stats.delivered(),
        Ok([Outcome::Dead]) => {
            hook.stats.dead();
            tracing::warn!(webhook = %hook.name, id = %d.event.id, attempts = d.attempt, "webhook event is a dead letter after its last attempt");
        }
        Ok(_) => {
            // Expired: the delivery outlived `ack_wait` and went out again.
            tracing::debug!(webhook = %hook.name, id = %d.event.id, "webhook delivery settled too late");
        }
        Err(e) => {
            tracing::warn!(webhook = %hook.name, id = %d.event.id, error = %e, "webhook delivery could not be settled")
        }
    }
}

/// One POST. `Ok` carries the 2xx status.
async fn attempt(
    hook: &Hook,
    client: &reqwest::Client,
    d: &Delivery,
) -> Result<StatusCode, Failure> {
    let config = &hook.config;
    // Names are checked by the resolver at every connection; literal
    // addresses never reach it, so they are checked here again.
    if let Some(ip) = target::literal(&config.url)
        && target::refused(ip)
    {
        return Err(Failure {
            reason: format!("target {ip} refused: link-local or cloud metadata"),
            retry_after: None,
        });
    }
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_secs());
    let id = sign::message_id(&d.event.id, &d.event.seq);
    let signature = sign::signature(&config.key, &id, timestamp, &d.event.json);
    let sent = client
        .post(config.url.clone())
        .timeout(config.timeout)
        .header(CONTENT_TYPE, "application/cloudevents+json")
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("eventwire-attempt", d.attempt.to_string())
        .body(d.event.json.clone())
        .send()
        .await;
    let mut answer = match sent {
        Ok(a) => a,
        Err(e) => {
            let reason = if e.is_timeout() {
                format!(
                    "no answer within {}",
                    crate::groups::config::show(config.timeout)
                )
            } else {
                format!("request failed: {}", causes(&e))
            };
            return Err(Failure {
                reason,
                retry_after: None,
            });
        }
    };
    let status = answer.status();
    let retry_after = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            retry_after(answer.headers(), SystemTime::now())
        }
        _ => None,
    };
    // Read a little of the answer so the connection can serve the next
    // request; a receiver that keeps talking is cut off.
    let mut read = 0;
    while read < MAX_ANSWER {
        match answer.chunk().await {
            Ok(Some(c)) => read += c.len(),
            _ => break,
        }
    }
    if status.is_success() {
        Ok(status)
    } else {
        Err(Failure {
            reason: format!("HTTP {}", status.as_u16()),
            retry_after,
        })
    }
}

/// The error and its causes on one line: reqwest's own message says only
/// "error sending request".
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        out.push_str(": ");
        out.push_str(&c.to_string());
        next = c.source();
    }
    out
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }
}
