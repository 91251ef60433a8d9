//! A webhook's configuration: the `PUT /v1/webhooks/{name}` body, checked
//! and normalized so that "same config" (200) and "different config" (409)
//! compare meaning, as for groups. The secret is part of the meaning but is
//! never shown: [`WebhookConfig::view`] leaves it out.

use super::target;
use crate::groups::config::{self as group_config, GroupConfig, Start, duration, show};
use base64::Engine as _;
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(300));
pub const DEFAULT_MAX_DELIVER: u32 = 10;
pub const DEFAULT_MAX_INFLIGHT: u32 = 16;
pub const MAX_INFLIGHT_LIMIT: u32 = 1000;
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(600);
/// Shortest first retry: tests and impatient users go this low, no lower.
pub const MIN_RETRY_INITIAL: Duration = Duration::from_millis(10);
/// Longest wait before a retry, `Retry-After` included.
pub const MAX_RETRY: Duration = group_config::MAX_DELAY;
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// A Standard Webhooks secret is 24 to 64 random bytes, base64 after
/// `whsec_`.
pub const SECRET_BYTES: (usize, usize) = (24, 64);
/// The prefix of a webhook's consumer group's name.
pub const GROUP_PREFIX: &str = "webhooks.";

/// What a client sends (and what `--webhooks FILE` holds per webhook).
/// Unknown fields are refused, as for groups.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub url: String,
    pub topics: Vec<String>,
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deliver: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    pub initial: Option<String>,
    pub max: Option<String>,
}

/// The retry schedule: after failed attempt n the next one waits
/// `min(max, initial × 2^(n-1))`, less up to half of it at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub initial: Duration,
    pub max: Duration,
}

impl Retry {
    /// The wait after failed attempt `attempt`, before jitter.
    pub fn step(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << shift).min(self.max)
    }

    /// The step with jitter: uniform in [step/2, step], so retries of many
    /// events failed at once spread out instead of arriving together.
    pub fn jittered(&self, attempt: u32) -> Duration {
        let step = self.step(attempt);
        let r = (uuid::Uuid::new_v4().as_u128() as u64) as f64 / u64::MAX as f64;
        step.mul_f64(0.5 + r / 2.0)
    }
}

/// A checked configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: reqwest::Url,
    pub topics: Vec<Pattern>,
    /// The decoded key (the bytes after `whsec_`), and the text as given,
    /// kept to persist it.
    pub key: Vec<u8>,
    pub secret: String,
    pub timeout: Duration,
    pub max_deliver: u32,
    pub max_inflight: u32,
    pub retry: Retry,
    pub start: Start,
}

impl std::fmt::Debug for WebhookConfig {
    // By hand: the secret must never reach a log, even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_str())
            .field("topics", &self.topics)
            .field("timeout", &self.timeout)
            .field("max_deliver", &self.max_deliver)
            .field("max_inflight", &self.max_inflight)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The configuration as `GET` shows it: no secret.
#[derive(Debug, Serialize)]
pub struct ConfigView {
    pub url: String,
    pub topics: Vec<String>,
    pub timeout: String,
    pub max_deliver: u32,
    pub max_inflight: u32,
    pub retry: RetryView,
    pub start: String,
    pub group: String,
}

#[derive(Debug, Serialize)]
pub struct RetryView {
    pub initial: String,
    pub max: String,
}

fn invalid(message: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidWebhook, message)
}

/// Checks a webhook name: a group name once prefixed.
pub fn check_name(name: &str) -> Result<(), ProtocolError> {
    group_config::check_name(&group_name(name)).map_err(|e| {
        invalid(e.message.replace("a group name", "a webhook name").replace(
            &group_config::MAX_NAME_LEN.to_string(),
            &(group_config::MAX_NAME_LEN - GROUP_PREFIX.len()).to_string(),
        ))
    })
}

/// The consumer group that backs the webhook `name`.
pub fn group_name(name: &str) -> String {
    format!("{GROUP_PREFIX}{name}")
}

/// Decodes a `whsec_` secret to its key bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, ProtocolError> {
    let b64 = secret.strip_prefix("whsec_").ok_or_else(|| {
        invalid("`secret` must start with whsec_ followed by base64 (Standard Webhooks)".to_owned())
    })?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| invalid("`secret` must be whsec_ followed by standard base64".to_owned()))?;
    if !(SECRET_BYTES.0..=SECRET_BYTES.1).contains(&key.len()) {
        return Err(invalid(format!(
            "`secret` must decode to {} to {} bytes, not {}",
            SECRET_BYTES.0,
            SECRET_BYTES.1,
            key.len()
        )));
    }
    Ok(key)
}

fn webhook_duration(field: &str, text: &str, max: Duration) -> Result<Duration, ProtocolError> {
    duration(field, text, max).map_err(|e| invalid(e.message))
}

impl WebhookSpec {
    /// Checks everything but the target's addresses (see
    /// [`target::check_at_put`], which resolves names).
    pub fn check(&self, max_topics: usize) -> Result<WebhookConfig, ProtocolError> {
        let url = target::parse(&self.url)?;
        let topics = group_config::check_topics(&self.topics, max_topics, invalid)?;
        let key = decode_secret(&self.secret)?;
        let timeout = match &self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => webhook_duration("timeout", t, TIMEOUT_RANGE.1)?,
        };
        if timeout < TIMEOUT_RANGE.0 {
            return Err(invalid(format!(
                "`timeout` must be at least {}",
                show(TIMEOUT_RANGE.0)
            )));
        }
        let max_deliver = self.max_deliver.unwrap_or(DEFAULT_MAX_DELIVER);
        if !(1..=group_config::MAX_DELIVER_LIMIT).contains(&max_deliver) {
            return Err(invalid(format!(
                "`max_deliver` must be 1 to {}",
                group_config::MAX_DELIVER_LIMIT
            )));
        }
        let max_inflight = self.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT);
        if !(1..=MAX_INFLIGHT_LIMIT).contains(&max_inflight) {
            return Err(invalid(format!(
                "`max_inflight` must be 1 to {MAX_INFLIGHT_LIMIT}"
            )));
        }
        let spec = self.retry.clone().unwrap_or(RetrySpec {
            initial: None,
            max: None,
        });
        let initial = match &spec.initial {
            None => DEFAULT_RETRY_INITIAL,
            Some(t) => webhook_duration("retry.initial", t, MAX_RETRY)?,
        };
        let max = match &spec.max {
            None => DEFAULT_RETRY_MAX.max(initial),
            Some(t) => webhook_duration("retry.max", t, MAX_RETRY)?,
        };
        if initial < MIN_RETRY_INITIAL || max < initial {
            return Err(invalid(format!(
                "`retry` needs initial ≥ {} and max ≥ initial",
                show(MIN_RETRY_INITIAL)
            )));
        }
        let start = Start::parse(self.start.as_deref());
        Ok(WebhookConfig {
            url,
            topics,
            key,
            secret: self.secret.clone(),
            timeout,
            max_deliver,
            max_inflight,
            retry: Retry { initial, max },
            start,
        })
    }
}

impl WebhookConfig {
    /// The consumer group's configuration. The dispatcher settles every
    /// delivery itself; `ack_wait` only takes back a delivery whose
    /// dispatcher went away (a crash), a little after its request would
    /// have timed out.
    pub fn group(&self) -> GroupConfig {
        GroupConfig {
            topics: self.topics.clone(),
            ack_wait: self.timeout + Duration::from_secs(5),
            max_deliver: self.max_deliver,
            start: self.start.clone(),
            max_inflight: self.max_inflight,
            backoff: vec![self.retry.initial],
        }
    }

    pub fn view(&self, name: &str) -> ConfigView {
        ConfigView {
            url: self.url.to_string(),
            topics: self.topics.iter().map(|p| p.as_str().to_owned()).collect(),
            timeout: show(self.timeout),
            max_deliver: self.max_deliver,
            max_inflight: self.max_inflight,
            retry: RetryView {
                initial: show(self.retry.initial),
                max: show(self.retry.max),
            },
            start: self.start.as_str().to_owned(),
            group: group_name(name),
        }
    }

    /// The spec that recreates this configuration, secret included: what
    /// the durable store keeps.
    pub fn spec(&self) -> WebhookSpec {
        WebhookSpec {
            url: self.url.to_string(),
            topics: self.topics.iter().map(|p| p.as_str().to_owned()).collect(),
            secret: self.secret.clone(),
            timeout: Some(show(self.timeout)),
            max_deliver: Some(self.max_deliver),
            max_inflight: Some(self.max_inflight),
            retry: Some(RetrySpec {
                initial: Some(show(self.retry.initial)),
                max: Some(show(self.retry.max)),
            }),
            start: Some(self.start.as_str().to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn spec(json: &str) -> Result<WebhookConfig, ProtocolError> {
        serde_json::from_str::<WebhookSpec>(json).unwrap().check(16)
    }

    #[test]
    fn equal_meaning_compares_equal_and_the_secret_counts() {
        let a = spec(&format!(
            r#"{{"url":"http://127.0.0.1:9/h","topics":["b.>","a"],"secret":"{SECRET}","timeout":"10s"}}"#
        ))
        .unwrap();
        let b = spec(&format!(
            r#"{{"url":"http://127.0.0.1:9/h","topics":["a","b.>"],"secret":"{SECRET}","retry":{{"initial":"1000ms"}}}}"#
        ))
        .unwrap();
        assert_eq!(a, b);
        let other = format!("whsec_{}", "A".repeat(32));
        let c = spec(&format!(
            r#"{{"url":"http://127.0.0.1:9/h","topics":["a","b.>"],"secret":"{other}"}}"#
        ))
        .unwrap();
        assert_ne!(a, c);
        assert!(!format!("{a:?}").contains("whsec"));
        assert!(
            !serde_json::to_string(&a.view("x"))
                .unwrap()
                .contains("whsec")
        );
        assert_eq!(a.spec().check(16).unwrap(), a);
    }

    #[test]
    fn the_schedule_doubles_up_to_max_with_jitter_below_the_step() {
        let r = Retry {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let steps: Vec<u64> = (1..=6).map(|n| r.step(n).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 10, 10]);
        assert_eq!(r.step(u32::MAX), Duration::from_secs(10));
        for n in 1..6 {
            let j = r.jittered(n);
            assert!(j <= r.step(n) && j >= r.step(n) / 2, "{j:?}");
        }
    }

    #[test]
    fn bad_values_are_invalid_webhook() {
        for bad in [
            format!(r#"{{"url":"ftp://h/","topics":["a"],"secret":"{SECRET}"}}"#),
            format!(r#"{{"url":"http://u:p@h/","topics":["a"],"secret":"{SECRET}"}}"#),
            format!(r#"{{"url":"http://h/","topics":[],"secret":"{SECRET}"}}"#),
            r#"{"url":"http://h/","topics":["a"],"secret":"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#
                .to_owned(),
            r#"{"url":"http://h/","topics":["a"],"secret":"whsec_c2hvcnQ="}"#.to_owned(),
            r#"{"url":"http://h/","topics":["a"],"secret":"whsec_!!!"}"#.to_owned(),
            format!(r#"{{"url":"http://h/","topics":["a"],"secret":"{SECRET}","timeout":"1ms"}}"#),
            format!(r#"{{"url":"http://h/","topics":["a"],"secret":"{SECRET}","max_deliver":0}}"#),
            format!(r#"{{"url":"http://h/","topics":["a"],"secret":"{SECRET}","max_inflight":0}}"#),
            format!(
                r#"{{"url":"http://h/","topics":["a"],"secret":"{SECRET}","retry":{{"initial":"2s","max":"1s"}}}}"#
            ),
        ] {
            assert_eq!(
                spec(&bad).unwrap_err().code,
                ErrorCode::InvalidWebhook,
                "{bad}"
            );
        }
        assert!(check_name("orders").is_ok());
        assert_eq!(
            check_name("a b").unwrap_err().code,
            ErrorCode::InvalidWebhook
        );
    }
}
