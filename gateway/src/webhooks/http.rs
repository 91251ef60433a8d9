//! The webhook API under `/v1/webhooks`: managing webhooks (`PUT`, `GET`,
//! `DELETE`) and their dead letters (`dead`, `dead/redrive`, as for groups).
//!
//! Rights are those of the webhook's group, `webhooks.{name}`: `consume`
//! on that name for every route, and for `PUT` the right to subscribe to
//! every topic pattern, since a webhook reads those topics for its owner.

use super::Hook;
use super::config::{self, ConfigView, WebhookSpec};
use crate::error::ApiError;
use crate::groups::http::{
    body, created_status, dead_letters, may_read_all, redrive_letters, rfc3339,
};
use crate::state::Shared;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use eventwire_protocol::ErrorCode;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Authenticates and checks the right to manage the webhook `name`.
fn manager(
    shared: &Shared,
    headers: &HeaderMap,
    q: Option<&str>,
    name: &str,
) -> Result<crate::auth::Identity, ApiError> {
    let identity = shared.identify(headers, q)?;
    if !identity.rights.may_consume(&config::group_name(name)) {
        return Err(identity
            .refusal(format_args!("managing webhook {name}"))
            .into());
    }
    Ok(identity)
}

/// A request about an existing webhook from someone allowed to manage it.
pub struct Call {
    shared: Arc<Shared>,
    hook: Arc<Hook>,
    query: Option<String>,
}

impl FromRequestParts<Arc<Shared>> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Call, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, shared)
            .await
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
        let query = parts.uri.query().map(str::to_owned);
        manager(shared, &parts.headers, query.as_deref(), &name)?;
        Ok(Call {
            shared: shared.clone(),
            hook: shared.webhooks.get(&name)?,
            query,
        })
    }
}

#[derive(Serialize)]
struct LastFailure {
    time: String,
    reason: String,
}

/// A webhook as `GET` shows it: configuration without the secret, the
/// delivery counters, and its group's counts.
#[derive(Serialize)]
struct View {
    name: String,
    config: ConfigView,
    attempts: u64,
    delivered: u64,
    failures: u64,
    dead_total: u64,
    pending: u64,
    lag: u64,
    dead: u64,
    last_failure: Option<LastFailure>,
}

async fn view(h: &Hook) -> Result<View, ApiError> {
    let c = h.groups.counts(&h.group).await?;
    let s = &h.stats;
    Ok(View {
        name: h.name.clone(),
        config: h.config.view(&h.name),
        attempts: s.attempts.load(Ordering::Relaxed),
        delivered: s.delivered.load(Ordering::Relaxed),
        failures: s.failures.load(Ordering::Relaxed),
        dead_total: c.dead_total,
        pending: c.pending,
        lag: c.lag,
        dead: c.dead,
        last_failure: s
            .last_failure
            .lock()
            .clone()
            .map(|(at, reason)| LastFailure {
                time: rfc3339(at),
                reason,
            }),
    })
}

pub async fn put(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    config::check_name(&name)?;
    let identity = manager(&shared, &headers, q.as_deref(), &name)?;
    let spec: WebhookSpec = body(&bytes, ErrorCode::InvalidWebhook)?;
    // Checked here for the rights; `create` checks the spec again.
    let checked = spec.check(shared.config.max_subscriptions)?;
    may_read_all(&identity, &checked.topics, "a webhook")?;
    let (h, created) = shared.webhooks.create(&name, spec, true).await?;
    Ok((created_status(created), Json(view(&h).await?)).into_response())
}

pub async fn get(call: Call) -> Result<Response, ApiError> {
    Ok(Json(view(&call.hook).await?).into_response())
}

pub async fn delete(call: Call) -> Result<Response, ApiError> {
    call.shared.webhooks.delete(&call.hook.name).await?;
    Ok(Json(json!({ "deleted": call.hook.name })).into_response())
}

pub async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let identity = shared.identify(&headers, q.as_deref())?;
    let mut out = Vec::new();
    for h in shared.webhooks.list() {
        if identity.rights.may_consume(&config::group_name(&h.name)) {
            out.push(view(&h).await?);
        }
    }
    #[derive(Serialize)]
    struct List {
        webhooks: Vec<View>,
    }
    Ok(Json(List { webhooks: out }).into_response())
}

pub async fn dead(call: Call) -> Result<Response, ApiError> {
    dead_letters(
        call.hook.groups.as_ref(),
        &call.hook.group,
        call.query.as_deref(),
    )
    .await
}

pub async fn redrive(call: Call, bytes: Bytes) -> Result<Response, ApiError> {
    redrive_letters(call.hook.groups.as_ref(), &call.hook.group, &bytes).await
}
