//! A group's configuration: the `PUT /v1/groups/{group}` body, checked and
//! normalized, so that "identical config" (200) and "different config" (409)
//! compare meaning rather than spelling (`"30s"` equals `"30000ms"`).

use eventwire_protocol::{ErrorCode, Pattern, ProtocolError, Topic};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest group name, in bytes. A name is a topic (dot-separated
/// `[A-Za-z0-9_-]` segments), so `consume` rights match names with the
/// same patterns as topics.
pub const MAX_NAME_LEN: usize = 128;
pub const ACK_WAIT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(12 * 3600));
pub const MAX_DELIVER_LIMIT: u32 = 100;
pub const MAX_INFLIGHT_LIMIT: u32 = 10_000;
/// Longest nack delay or backoff step.
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);
pub const MAX_BACKOFF_STEPS: usize = 16;
pub const MAX_TOPICS: usize = 16;

pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_DELIVER: u32 = 5;
pub const DEFAULT_MAX_INFLIGHT: u32 = 1000;
pub const DEFAULT_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

/// What a client sends. Unknown fields are refused: a misspelt
/// `max_delivers` silently ignored would be a group that behaves unlike
/// what its owner wrote.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub topics: Vec<String>,
    pub ack_wait: Option<String>,
    pub max_deliver: Option<u32>,
    pub start: Option<String>,
    pub max_inflight: Option<u32>,
    pub backoff: Option<Vec<String>>,
}

/// Where a new group's cursor starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After the newest event at creation.
    New,
    /// At the oldest retained event.
    Earliest,
    /// After this position.
    After(String),
}

impl Start {
    /// `start` as given: absent means `"new"`; anything but `"new"` and
    /// `"earliest"` is a position, checked against the engine at creation.
    pub fn parse(text: Option<&str>) -> Start {
        match text {
            None | Some("new") => Start::New,
            Some("earliest") => Start::Earliest,
            Some(p) => Start::After(p.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Start::New => "new",
            Start::Earliest => "earliest",
            Start::After(p) => p,
        }
    }
}

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub topics: Vec<Pattern>,
    pub ack_wait: Duration,
    pub max_deliver: u32,
    pub start: Start,
    pub max_inflight: u32,
    /// The wait before redelivery after attempt n failed (timed out, or was
    /// nacked without a delay) is `backoff[n-1]`; the last step repeats.
    pub backoff: Vec<Duration>,
}

/// The configuration as `GET` shows it: durations in the same spelling
/// `PUT` accepts.
#[derive(Debug, Serialize)]
pub struct ConfigView {
    pub topics: Vec<String>,
    pub ack_wait: String,
    pub max_deliver: u32,
    pub start: String,
    pub max_inflight: u32,
    pub backoff: Vec<String>,
}

fn invalid(message: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidGroup, message)
}

/// Parses `"30s"`, `"500ms"`, `"1m 30s"`: humantime's spelling.
pub fn duration(field: &str, text: &str, max: Duration) -> Result<Duration, ProtocolError> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        let shown: String = text
            .chars()
            .take(32)
            .flat_map(char::escape_default)
            .collect();
        invalid(format!(
            "`{field}` must be a duration such as \"30s\" or \"500ms\", not \"{shown}\""
        ))
    })?;
    if d > max {
        return Err(invalid(format!(
            "`{field}` must be at most {}",
            humantime::format_duration(max)
        )));
    }
    Ok(d)
}

pub fn show(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// Checks topic patterns and normalizes them (sorted, no repeats), so two
/// spellings of one set compare equal. A count out of range gets
/// `invalid`'s error (groups and webhooks each have their own code).
pub fn check_topics(
    topics: &[String],
    max_topics: usize,
    invalid: fn(String) -> ProtocolError,
) -> Result<Vec<Pattern>, ProtocolError> {
    let max_topics = max_topics.min(MAX_TOPICS);
    if topics.is_empty() || topics.len() > max_topics {
        return Err(invalid(format!(
            "`topics` must hold 1 to {max_topics} patterns"
        )));
    }
    let mut out = topics
        .iter()
        .map(|t| Pattern::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    out.dedup();
    Ok(out)
}

/// Checks a group name: a topic of at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), ProtocolError> {
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "a group name is at most {MAX_NAME_LEN} bytes"
        )));
    }
    Topic::parse(name).map(|_| ()).map_err(|e| {
        invalid(format!(
            "a group name is dot-separated [A-Za-z0-9_-] segments: {}",
            e.message
        ))
    })
}

impl GroupSpec {
    pub fn check(self, max_topics: usize) -> Result<GroupConfig, ProtocolError> {
        let topics = check_topics(&self.topics, max_topics, invalid)?;
        let ack_wait = match &self.ack_wait {
            None => DEFAULT_ACK_WAIT,
            Some(t) => duration("ack_wait", t, ACK_WAIT_RANGE.1)?,
        };
        if ack_wait < ACK_WAIT_RANGE.0 {
            return Err(invalid(format!(
                "`ack_wait` must be at least {}",
                show(ACK_WAIT_RANGE.0)
            )));
        }
        let max_deliver = self.max_deliver.unwrap_or(DEFAULT_MAX_DELIVER);
        if !(1..=MAX_DELIVER_LIMIT).contains(&max_deliver) {
            return Err(invalid(format!(
                "`max_deliver` must be 1 to {MAX_DELIVER_LIMIT}"
            )));
        }
        let max_inflight = self.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT);
        if !(1..=MAX_INFLIGHT_LIMIT).contains(&max_inflight) {
            return Err(invalid(format!(
                "`max_inflight` must be 1 to {MAX_INFLIGHT_LIMIT}"
            )));
        }
        let backoff = match &self.backoff {
            None => DEFAULT_BACKOFF.to_vec(),
            Some(steps) if steps.is_empty() || steps.len() > MAX_BACKOFF_STEPS => {
                return Err(invalid(format!(
                    "`backoff` must hold 1 to {MAX_BACKOFF_STEPS} durations"
                )));
            }
            Some(steps) => steps
                .iter()
                .map(|s| duration("backoff", s, MAX_DELAY))
                .collect::<Result<_, _>>()?,
        };
        let start = Start::parse(self.start.as_deref());
        Ok(GroupConfig {
            topics,
            ack_wait,
            max_deliver,
            start,
            max_inflight,
            backoff,
        })
    }
}

impl GroupConfig {
    /// The wait before the delivery after a failed attempt `attempt`.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let i = (attempt.max(1) as usize - 1).min(self.backoff.len() - 1);
        self.backoff[i]
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.topics.iter().any(|p| p.matches(topic))
    }

    pub fn view(&self) -> ConfigView {
        ConfigView {
            topics: self.topics.iter().map(|p| p.as_str().to_owned()).collect(),
            ack_wait: show(self.ack_wait),
            max_deliver: self.max_deliver,
            start: self.start.as_str().to_owned(),
            max_inflight: self.max_inflight,
            backoff: self.backoff.iter().map(|d| show(*d)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<GroupConfig, ProtocolError> {
        serde_json::from_str::<GroupSpec>(json).unwrap().check(16)
    }

    #[test]
    fn equal_meaning_compares_equal() {
        let a = spec(r#"{"topics":["b.>","a.*"],"ack_wait":"30s"}"#).unwrap();
        let b =
            spec(r#"{"topics":["a.*","b.>","a.*"],"ack_wait":"30000ms","start":"new"}"#).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, spec(r#"{"topics":["a.*"]}"#).unwrap());
        assert_eq!(a.view().ack_wait, "30s");
        assert_eq!(a.backoff_after(1), Duration::from_secs(1));
        assert_eq!(a.backoff_after(9), Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_invalid_group() {
        for bad in [
            r#"{"topics":[]}"#,
            r#"{"topics":["a"],"ack_wait":"soon"}"#,
            r#"{"topics":["a"],"ack_wait":"1ms"}"#,
            r#"{"topics":["a"],"ack_wait":"13h"}"#,
            r#"{"topics":["a"],"max_deliver":0}"#,
            r#"{"topics":["a"],"max_deliver":101}"#,
            r#"{"topics":["a"],"max_inflight":0}"#,
            r#"{"topics":["a"],"backoff":[]}"#,
        ] {
            assert_eq!(
                spec(bad).unwrap_err().code,
                ErrorCode::InvalidGroup,
                "{bad}"
            );
        }
        assert_eq!(
            spec(r#"{"topics":["a..b"]}"#).unwrap_err().code,
            ErrorCode::InvalidPattern
        );
        assert!(serde_json::from_str::<GroupSpec>(r#"{"topics":["a"],"max_delivers":3}"#).is_err());
        assert!(check_name("orders.billing-1").is_ok());
        for bad in ["", "a b", "a.>", "*", &"a".repeat(129)] {
            assert_eq!(check_name(bad).unwrap_err().code, ErrorCode::InvalidGroup);
        }
    }
}
