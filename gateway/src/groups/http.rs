//! The consumer-group HTTP API under `/v1/groups`: managing groups
//! (`PUT`, `GET`, `DELETE`), working (`fetch`, `ack`, `nack`, `extend`)
//! and dead letters (`dead`, `dead/redrive`).

use super::backend::{GroupBackend, Settle};
use super::config::{self, ConfigView, GroupConfig, GroupSpec};
use super::group::{Counts, Delivery, Outcome};
use crate::auth::Identity;
use crate::error::ApiError;
use crate::state::Shared;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventwire_protocol::ErrorCode;
use eventwire_protocol::frame::SettleOp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Most deliveries one fetch returns, and most handles one request names.
pub const MAX_FETCH: usize = 1000;
pub use super::backend::MAX_HANDLES;
/// Longest long-poll.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// Most dead letters one `GET …/dead` lists.
pub const MAX_DEAD_LIST: usize = 1000;

pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses a JSON body: broken JSON is `invalid_json`; well-formed JSON of
/// the wrong shape gets `shape` (`bad_request`, or `invalid_group` for a
/// group's configuration). An empty body stands for `{}`.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes, shape: ErrorCode) -> Result<T, ApiError> {
    let text = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(text).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => shape,
            _ => ErrorCode::InvalidJson,
        };
        ApiError::new(code, format!("body: {e}"))
    })
}

/// A group (or a webhook) reads its topics for whoever works in it:
/// creating one needs the right to subscribe to all of them.
pub(crate) fn may_read_all(
    identity: &Identity,
    topics: &[eventwire_protocol::Pattern],
    what: &str,
) -> Result<(), ApiError> {
    match topics.iter().find(|p| !identity.rights.may_subscribe(p)) {
        Some(p) => Err(identity.refusal(format_args!("{what} over {p}")).into()),
        None => Ok(()),
    }
}

/// `PUT`'s status: 201 for a new group or webhook, 200 for the same one.
pub(crate) fn created_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Authenticates and checks the `consume` right for a group.
fn consumer(
    shared: &Shared,
    headers: &HeaderMap,
    q: Option<&str>,
    group: &str,
) -> Result<Identity, ApiError> {
    let identity = shared.identify(headers, q)?;
    if !identity.rights.may_consume(group) {
        return Err(identity
            .refusal(format_args!("working in group {group}"))
            .into());
    }
    Ok(identity)
}

/// A request about an existing group, from someone allowed to work in it:
/// what every route but `PUT` and the list starts with.
pub struct Call {
    shared: Arc<Shared>,
    name: String,
    config: GroupConfig,
    query: Option<String>,
}

impl Call {
    fn groups(&self) -> &dyn GroupBackend {
        self.shared.groups.as_ref()
    }
}

impl FromRequestParts<Arc<Shared>> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Call, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, shared)
            .await
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
        let query = parts.uri.query().map(str::to_owned);
        consumer(shared, &parts.headers, query.as_deref(), &name)?;
        let config = shared.groups.get(&name).await?;
        Ok(Call {
            shared: shared.clone(),
            name,
            config,
            query,
        })
    }
}

/// A group as `GET` shows it, fields in this order.
#[derive(Serialize)]
struct View {
    name: String,
    config: ConfigView,
    lag: u64,
    lag_capped: bool,
    pending: u64,
    delivered: u64,
    redelivered: u64,
    acked: u64,
    dead: u64,
    dead_total: u64,
    dead_dropped: u64,
    gaps: u64,
    missed: u64,
}

async fn view(
    groups: &dyn GroupBackend,
    name: &str,
    config: &GroupConfig,
) -> Result<View, ApiError> {
    let c: Counts = groups.counts(name).await?;
    let view = View {
        name: name.to_owned(),
        config: config.view(),
        lag: c.lag,
        lag_capped: c.lag_capped,
        pending: c.pending,
        delivered: c.delivered,
        redelivered: c.redelivered,
        acked: c.acked,
        dead: c.dead,
        dead_total: c.dead_total,
        dead_dropped: c.dead_dropped,
        gaps: c.gaps,
        missed: c.missed,
    };
    Ok(view)
}

pub async fn put(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    config::check_name(&name)?;
    let identity = consumer(&shared, &headers, q.as_deref(), &name)?;
    let spec: GroupSpec = body(&bytes, ErrorCode::InvalidGroup)?;
    let config = spec.check(shared.config.max_subscriptions)?;
    may_read_all(&identity, &config.topics, "a group")?;
    let created = shared.groups.create(&name, config.clone()).await?;
    let view = view(shared.groups.as_ref(), &name, &config).await?;
    Ok((created_status(created), Json(view)).into_response())
}

pub async fn get(call: Call) -> Result<Response, ApiError> {
    Ok(Json(view(call.groups(), &call.name, &call.config).await?).into_response())
}

pub async fn delete(call: Call) -> Result<Response, ApiError> {
    call.groups().delete(&call.name).await?;
    Ok(Json(json!({ "deleted": call.name })).into_response())
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let identity = shared.identify(&headers, q.as_deref())?;
    let mut out = Vec::new();
    for name in shared.groups.list().await? {
        if !identity.rights.may_consume(&name) {
            continue;
        }
        // A group deleted since the listing is left out.
        let config = match shared.groups.get(&name).await {
            Err(e) if e.code == ErrorCode::GroupNotFound => continue,
            other => other?,
        };
        out.push(view(shared.groups.as_ref(), &name, &config).await?);
    }
    #[derive(Serialize)]
    struct List {
        groups: Vec<View>,
    }
    Ok(Json(List { groups: out }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchBody {
    max: Option<usize>,
    wait: Option<String>,
}

/// The deliveries answer, with each event's stored JSON spliced in as is.
fn deliveries(out: &[Delivery]) -> Response {
    let mut body = Vec::with_capacity(
        32 + out
            .iter()
            .map(|d| d.event.json.len() + d.handle.len() + 40)
            .sum::<usize>(),
    );
    body.extend_from_slice(b"{\"deliveries\":[");
    for (i, d) in out.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        // Handles are `g<hex>.<digits>`: nothing to escape.
        body.extend_from_slice(
            format!(
                "{{\"handle\":\"{}\",\"attempt\":{},\"event\":",
                d.handle, d.attempt
            )
            .as_bytes(),
        );
        body.extend_from_slice(&d.event.json);
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn fetch(call: Call, bytes: Bytes) -> Result<Response, ApiError> {
    let req: FetchBody = body(&bytes, ErrorCode::BadRequest)?;
    let max = req.max.unwrap_or(1);
    if !(1..=MAX_FETCH).contains(&max) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("`max` must be 1 to {MAX_FETCH}"),
        ));
    }
    let wait = match &req.wait {
        None => Duration::ZERO,
        Some(w) => config::duration("wait", w, MAX_WAIT)
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.message))?,
    };
    let out = call
        .groups()
        .fetch(&call.name, max, wait, &call.shared.shutdown)
        .await?;
    Ok(deliveries(&out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlesBody {
    handles: Vec<String>,
    delay: Option<String>,
    reason: Option<String>,
}

fn results(handles: &[String], outcomes: &[Outcome]) -> Response {
    let results: Vec<Value> = handles
        .iter()
        .zip(outcomes)
        .map(|(h, o)| json!({ "handle": h, "result": o.as_str() }))
        .collect();
    Json(json!({ "results": results })).into_response()
}

/// What ack, nack and extend share: the body checked (by the same rules as
/// the WebSocket form's), then applied through the backend.
async fn settle(call: &Call, bytes: &Bytes, op: SettleOp) -> Result<Response, ApiError> {
    let b: HandlesBody = body(bytes, ErrorCode::BadRequest)?;
    let settle = Settle::checked(op, &b.handles, b.delay.as_deref(), b.reason.as_deref())?;
    let outcomes = settle.apply(call.groups(), &call.name, &b.handles).await?;
    Ok(results(&b.handles, &outcomes))
}

pub async fn ack(call: Call, bytes: Bytes) -> Result<Response, ApiError> {
    settle(&call, &bytes, SettleOp::Ack).await
}

pub async fn extend(call: Call, bytes: Bytes) -> Result<Response, ApiError> {
    settle(&call, &bytes, SettleOp::Extend).await
}

pub async fn nack(call: Call, bytes: Bytes) -> Result<Response, ApiError> {
    settle(&call, &bytes, SettleOp::Nack).await
}

pub async fn dead(call: Call) -> Result<Response, ApiError> {
    dead_letters(call.groups(), &call.name, call.query.as_deref()).await
}

/// The dead-letter list of a group; webhooks list theirs with it too.
pub(crate) async fn dead_letters(
    groups: &dyn GroupBackend,
    name: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let mut limit = 100;
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if k == "limit" {
            limit = v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_DEAD_LIST).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::BadRequest,
                        format!("`limit` must be 1 to {MAX_DEAD_LIST}"),
                    )
                })?;
        }
    }
    let (letters, total) = groups.dead(name, limit).await?;
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"dead\":[");
    for (i, d) in letters.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let head = json!({
            "id": d.event.id,
            "seq": d.event.seq,
            "topic": d.event.topic.as_str(),
            "attempts": d.attempts,
            "reason": d.reason,
            "time": rfc3339(d.at),
        })
        .to_string();
        // Splice the event in as stored, after the head's fields.
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"event\":");
        body.extend_from_slice(&d.event.json);
        body.push(b'}');
    }
    body.extend_from_slice(format!("],\"total\":{total}}}").as_bytes());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    ids: Option<Vec<String>>,
}

pub async fn redrive(call: Call, bytes: Bytes) -> Result<Response, ApiError> {
    redrive_letters(call.groups(), &call.name, &bytes).await
}

/// Redrives a group's dead letters; webhooks redrive theirs with it too.
pub(crate) async fn redrive_letters(
    groups: &dyn GroupBackend,
    name: &str,
    bytes: &Bytes,
) -> Result<Response, ApiError> {
    let b: RedriveBody = body(bytes, ErrorCode::BadRequest)?;
    if b.ids.as_ref().is_some_and(|ids| ids.len() > MAX_HANDLES) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("`ids` holds at most {MAX_HANDLES} ids"),
        ));
    }
    let (n, unknown) = groups.redrive(name, b.ids.as_deref()).await?;
    Ok(Json(json!({ "redriven": n, "unknown": unknown })).into_response())
}
