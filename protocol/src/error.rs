//! Error codes: the stable, documented identifiers of everything that can go wrong.
//!
//! Codes are what clients match on; messages are for people and may change.

use crate::prelude::*;
use core::fmt;
use serde::{Deserialize, Serialize};

/// Every error the gateway reports, on HTTP bodies, WebSocket `error` frames,
/// WebSocket close reasons and the SSE `$close` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or frame is not valid JSON (or not valid UTF-8).
    InvalidJson,
    /// The envelope is missing `type` or has a malformed attribute.
    InvalidEvent,
    /// A topic (an event `type`) breaks the topic grammar.
    InvalidTopic,
    /// A subscription pattern breaks the pattern grammar.
    InvalidPattern,
    /// A resume position (`since`, `Last-Event-ID`) is malformed.
    InvalidPosition,
    /// Anything else about the request's shape: a missing field, a bad query.
    BadRequest,
    /// A WebSocket frame whose `op` is not known.
    UnknownOp,
    /// A binary WebSocket frame: the protocol is JSON text only.
    UnsupportedFrame,
    /// One event is larger than the size limit.
    EventTooLarge,
    /// A request body or batch is larger than its limit.
    BatchTooLarge,
    /// The connection already holds the maximum number of subscriptions.
    TooManySubscriptions,
    /// The gateway holds the maximum number of streaming connections.
    TooManyConnections,
    /// The client did not read fast enough; its queue overflowed.
    SlowConsumer,
    /// The WebSocket peer stopped answering pings.
    HeartbeatTimeout,
    /// A newer connection of the same channel instance (`instance` query
    /// parameter) replaced this one: the client has already moved on.
    Superseded,
    /// The gateway is shutting down; reconnect (elsewhere).
    ShuttingDown,
    /// The broker engine cannot take the request now; retry later.
    EngineUnavailable,
    /// No valid credentials where the gateway requires them: a token that is
    /// malformed, badly signed, of a refused algorithm or audience, or not
    /// yet valid.
    Unauthorized,
    /// The credentials are valid but do not allow this subscribe or emit.
    Forbidden,
    /// The token has expired: refresh it (WebSocket: `auth` frame) and go on.
    TokenExpired,
    /// Too many emits or connections; slow down.
    RateLimited,
    /// The gateway is at a bound that protects it (events waiting to be
    /// routed, request bodies being read, history reads) and could not make
    /// room in time; retry with backoff.
    Overloaded,
    /// The client did not send its request body within the body timeout.
    RequestTimeout,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// No consumer group of this name.
    GroupNotFound,
    /// A consumer group of this name exists with another configuration.
    GroupConflict,
    /// A consumer group name or configuration value is not acceptable.
    InvalidGroup,
    /// No webhook of this name.
    WebhookNotFound,
    /// A webhook of this name exists with another configuration.
    WebhookConflict,
    /// A webhook name or configuration value is not acceptable.
    InvalidWebhook,
    /// A webhook's target is an address the gateway never calls:
    /// link-local or cloud metadata (169.254.0.0/16, fe80::/10).
    TargetRefused,
    /// A bug on the gateway's side.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation tests and exhaustive clients.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::InvalidJson,
        ErrorCode::InvalidEvent,
        ErrorCode::InvalidTopic,
        ErrorCode::InvalidPattern,
        ErrorCode::InvalidPosition,
        ErrorCode::BadRequest,
        ErrorCode::UnknownOp,
        ErrorCode::UnsupportedFrame,
        ErrorCode::EventTooLarge,
        ErrorCode::BatchTooLarge,
        ErrorCode::TooManySubscriptions,
        ErrorCode::TooManyConnections,
        ErrorCode::SlowConsumer,
        ErrorCode::HeartbeatTimeout,
        ErrorCode::Superseded,
        ErrorCode::ShuttingDown,
        ErrorCode::EngineUnavailable,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::TokenExpired,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::RequestTimeout,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::GroupNotFound,
        ErrorCode::GroupConflict,
        ErrorCode::InvalidGroup,
        ErrorCode::WebhookNotFound,
        ErrorCode::WebhookConflict,
        ErrorCode::InvalidWebhook,
        ErrorCode::TargetRefused,
        ErrorCode::Internal,
    ];

    /// The wire spelling, e.g. `event_too_large`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::InvalidTopic => "invalid_topic",
            ErrorCode::InvalidPattern => "invalid_pattern",
            ErrorCode::InvalidPosition => "invalid_position",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::UnsupportedFrame => "unsupported_frame",
            ErrorCode::EventTooLarge => "event_too_large",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::HeartbeatTimeout => "heartbeat_timeout",
            ErrorCode::Superseded => "superseded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::EngineUnavailable => "engine_unavailable",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::GroupNotFound => "group_not_found",
            ErrorCode::GroupConflict => "group_conflict",
            ErrorCode::InvalidGroup => "invalid_group",
            ErrorCode::WebhookNotFound => "webhook_not_found",
            ErrorCode::WebhookConflict => "webhook_conflict",
            ErrorCode::InvalidWebhook => "invalid_webhook",
            ErrorCode::TargetRefused => "target_refused",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the gateway answers with when this code ends a request.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::EventTooLarge | ErrorCode::BatchTooLarge => 413,
            ErrorCode::TooManyConnections
            | ErrorCode::ShuttingDown
            | ErrorCode::EngineUnavailable
            | ErrorCode::Overloaded => 503,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::NotFound | ErrorCode::GroupNotFound | ErrorCode::WebhookNotFound => 404,
            ErrorCode::GroupConflict | ErrorCode::WebhookConflict => 409,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Internal => 500,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code plus a human-readable message: the body of every error the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl core::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spelling_matches_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn statuses_are_client_or_server_errors() {
        for code in ErrorCode::ALL {
            let s = code.http_status();
            assert!((400..600).contains(&s), "{code} -> {s}");
        }
        assert_eq!(ErrorCode::EventTooLarge.http_status(), 413);
        assert_eq!(ErrorCode::TooManyConnections.http_status(), 503);
    }
}
