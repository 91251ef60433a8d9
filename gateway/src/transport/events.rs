//! `POST /v1/events` (publish one event or a batch) and `GET /v1/events`
//! (read history). Publishing itself is [`crate::publish`], which WebSocket
//! `emit` and the groups share.

use crate::auth::Identity;
use crate::engine::{Accepted, HistoryQuery};
use crate::error::ApiError;
use crate::publish::{accept, accept_batch, authorize, ingest};
use crate::state::{Peer, Shared, peer_ip};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;

fn receipt(a: &Accepted) -> Value {
    json!({ "id": a.id, "seq": a.seq, "duplicate": a.duplicate })
}

/// The largest body `POST /v1/events` reads: a full batch of full events.
pub fn body_limit(config: &crate::Config) -> usize {
    config
        .max_event_bytes
        .saturating_mul(config.max_batch)
        .saturating_add(1024)
}

/// Reads a POST body within its bounds: a declared length over the limit is
/// refused before a byte is read, as is a caller who may publish nothing;
/// the body's bytes are reserved from the gateway-wide body budget while it
/// is read; and it must arrive within the body timeout.
async fn read_body(
    shared: &Shared,
    identity: &Identity,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let limit = body_limit(&shared.config);
    let too_large = || {
        ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "request body is over {limit} bytes (at most {} events of {} bytes)",
                shared.config.max_batch, shared.config.max_event_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    if identity.rights.publish.is_empty() {
        return Err(identity.refusal(format_args!("publishing")).into());
    }
    let _reserved = shared
        .bodies
        .take(declared.map_or(limit, |n| n as usize))
        .await?;
    match tokio::time::timeout(
        shared.config.body_timeout,
        axum::body::to_bytes(body, limit),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body did not arrive within {:?}",
                shared.config.body_timeout
            ),
        )),
    }
}

pub async fn post(
    State(shared): State<Arc<Shared>>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let identity = shared.identify(&headers, query.as_deref())?;
    // Browsers (user tokens, anonymous) are rate limited per address;
    // services with API keys, and an open gateway, are not.
    let limited = shared.auth.enforced() && (identity.sub.is_some() || identity.anonymous);
    let charge = |n: usize| -> Result<(), ApiError> {
        if limited {
            shared.posts.check(peer_ip(&peer), n as u32)?;
        }
        Ok(())
    };
    let bytes = read_body(&shared, &identity, &headers, body).await?;
    let source = "eventwire/http";
    if super::ce_binary::is_binary(&headers) {
        let text = super::ce_binary::envelope_text(&headers, &bytes)?;
        charge(1)?;
        let a = accept(&shared, &text, source, &identity).await?;
        return Ok(Json(receipt(&a)).into_response());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::new(ErrorCode::InvalidJson, "request body is not valid UTF-8"))?;
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)
                .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("batch: {e}")))?;
            if items.is_empty() {
                return Err(ApiError::new(ErrorCode::BadRequest, "batch is empty"));
            }
            if items.len() > shared.config.max_batch {
                return Err(ApiError::new(
                    ErrorCode::BatchTooLarge,
                    format!(
                        "batch has {} events; the limit is {}",
                        items.len(),
                        shared.config.max_batch
                    ),
                ));
            }
            charge(items.len())?;
            // Validate the whole batch before publishing any of it.
            let mut events = Vec::with_capacity(items.len());
            for (i, raw) in items.iter().enumerate() {
                let ev = ingest::prepare(raw.get(), shared.config.max_event_bytes, source)
                    .and_then(|mut ev| authorize(&identity, &mut ev).map(|()| ev))
                    .map_err(|e| ApiError::new(e.code, format!("event {i}: {}", e.message)))?;
                events.push(ev);
            }
            let mut receipts = Vec::with_capacity(events.len());
            for result in accept_batch(&shared, events).await {
                match result {
                    Ok(a) => receipts.push(receipt(&a)),
                    Err(e) => {
                        // Say exactly which events were taken so a retry can
                        // resend the rest (ids make resending safe).
                        let status = axum::http::StatusCode::from_u16(e.code.http_status())
                            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                        return Ok((status, Json(json!({ "error": e, "accepted": receipts })))
                            .into_response());
                    }
                }
            }
            Ok(Json(Value::Array(receipts)).into_response())
        }
        Some(b'{') => {
            charge(1)?;
            let a = accept(&shared, text, source, &identity).await?;
            Ok(Json(receipt(&a)).into_response())
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidJson,
            "body must be an event object or an array of them",
        )),
    }
}

/// Query parameters shared by `GET /v1/events` and `GET /v1/sse`.
#[derive(Debug, Default)]
pub struct StreamQuery {
    pub topics: Vec<String>,
    pub since: Option<String>,
    pub limit: Option<String>,
    pub named: Option<String>,
    pub heartbeat: Option<String>,
}

impl StreamQuery {
    /// Parses a raw query string; `topic` may repeat.
    pub fn parse(raw: Option<&str>) -> StreamQuery {
        let mut q = StreamQuery::default();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match &*k {
                "topic" => q.topics.push(v.into_owned()),
                // Synonyms: the last one wins, and an empty one clears
                // what came before ("no position").
                "since" | "lastEventId" => q.since = Some(v.into_owned()).filter(|s| !s.is_empty()),
                "limit" => q.limit = Some(v.into_owned()),
                "named" => q.named = Some(v.into_owned()),
                "heartbeat" => q.heartbeat = Some(v.into_owned()),
                _ => {}
            }
        }
        q
    }

    /// The patterns, at least one, checked against the subscription limit:
    /// a history read of nothing is a mistake.
    pub fn patterns(&self, max: usize) -> Result<Vec<Pattern>, ProtocolError> {
        if self.topics.is_empty() {
            return Err(ProtocolError::new(
                ErrorCode::BadRequest,
                "give at least one `topic` query parameter, e.g. ?topic=order.*",
            ));
        }
        self.patterns_or_none(max)
    }

    /// The patterns, perhaps none, checked against the subscription limit.
    /// A stream with none is still a connection (welcome, heartbeats,
    /// supersede), as a WebSocket with no subscription is: an emit-only
    /// page holds one to know the gateway is there.
    pub fn patterns_or_none(&self, max: usize) -> Result<Vec<Pattern>, ProtocolError> {
        if self.topics.len() > max {
            return Err(ProtocolError::new(
                ErrorCode::TooManySubscriptions,
                format!("at most {max} topics per connection"),
            ));
        }
        self.topics.iter().map(|t| Pattern::parse(t)).collect()
    }
}

/// Most events one history read returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// Reads retained events. The caller is identified from the same token
/// sources as `GET /v1/sse` and needs the subscribe right for every pattern:
/// history is the same data as a subscription, only older.
pub async fn history(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = StreamQuery::parse(raw.as_deref());
    let identity = shared.identify(&headers, raw.as_deref())?;
    let patterns = q.patterns(shared.config.max_subscriptions)?;
    identity.check_subscribe(&patterns)?;
    let limit = match &q.limit {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("`limit` must be 1 to {MAX_HISTORY_LIMIT}"),
                )
            })?,
    };
    if let Some(s) = &q.since {
        shared.hub.engine().check_position(s)?;
    }
    let h = shared
        .hub
        .history(HistoryQuery {
            patterns,
            since: q.since,
            limit,
        })
        .await?;
    // Splice the stored JSON in as is: no re-encoding of events.
    let mut out = Vec::with_capacity(64 + h.events.iter().map(|e| e.json.len() + 1).sum::<usize>());
    out.extend_from_slice(b"{\"events\":[");
    for (i, e) in h.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&e.json);
    }
    out.extend_from_slice(
        format!("],\"recovered\":{},\"more\":{}}}", h.recovered, h.more).as_bytes(),
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}
