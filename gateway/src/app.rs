//! The router, in one place, and the gateway that serves it.

use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::error::ApiError;
use crate::groups::http as groups;
use crate::groups::{GroupBackend, GroupStore, Groups, MemoryGroupStore};
use crate::hub::{Hub, HubLimits};
use crate::limits::{Budget, ConnLimit, PerIp};
use crate::listener::GatewayListener;
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::transport::{events, sse, ws};
use crate::webhooks::http as webhooks;
use crate::webhooks::{Sources as WebhookSources, Webhooks};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use eventwire_protocol::{ErrorCode, ProtocolError};
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

/// Why a gateway could not be built.
#[derive(Debug)]
pub enum StartError {
    Engine(EngineError),
    /// A configuration problem, e.g. an unreadable key file.
    Config(String),
}

impl From<EngineError> for StartError {
    fn from(e: EngineError) -> Self {
        StartError::Engine(e)
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Engine(e) => write!(f, "engine: {e}"),
            StartError::Config(m) => f.write_str(m),
        }
    }
}

/// A built gateway: engine, hub and router, ready to serve.
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    pub async fn new(config: Config) -> Result<Gateway, StartError> {
        let built = crate::engine::build(&config.engine, config.max_event_bytes).await?;
        Gateway::with_stores(config, built.engine, built.group_store).await
    }

    /// Builds a gateway over an engine made elsewhere (tests, embedding),
    /// with groups that last as long as the process.
    pub async fn with_engine(
        config: Config,
        engine: Arc<dyn Engine>,
    ) -> Result<Gateway, StartError> {
        Gateway::with_stores(config, engine, Arc::new(MemoryGroupStore::new())).await
    }

    /// Builds a gateway over an engine and a consumer-group store made
    /// elsewhere: a durable engine brings its own store.
    pub async fn with_stores(
        config: Config,
        engine: Arc<dyn Engine>,
        group_store: Arc<dyn GroupStore>,
    ) -> Result<Gateway, StartError> {
        let groups: Arc<dyn GroupBackend> = match engine.groups().await? {
            Some(kept_by_the_broker) => kept_by_the_broker,
            None => Groups::start(engine.clone(), group_store).await?,
        };
        let shutdown = CancellationToken::new();
        let keep_in = match config.engine.kind {
            crate::engine::EngineKind::Disk => Some(config.engine.data_dir.clone()),
            _ => None,
        };
        let webhooks = Webhooks::start(
            groups.clone(),
            WebhookSources {
                keep_in,
                declared: config.webhooks.clone(),
            },
            config.max_subscriptions,
            shutdown.clone(),
        )
        .await
        .map_err(StartError::Config)?;
        let auth = config.auth.authenticator().map_err(StartError::Config)?;
        let prometheus = crate::metrics::recorder();
        let metrics = Arc::new(Metrics::new());
        let hub = Hub::start(engine, metrics.clone(), HubLimits::from_config(&config)).await?;
        let announcements = groups.announcements();
        let gateway = Gateway {
            shared: Arc::new(Shared {
                limit: ConnLimit::new(config.max_connections),
                auth,
                connects: PerIp::new(config.connect_rate, config.connect_burst, "new connections"),
                posts: PerIp::new(config.emit_rate, config.emit_burst, "events"),
                groups,
                webhooks,
                bodies: Budget::new(
                    config.max_body_buffer_bytes,
                    config.queue_timeout,
                    "request body bytes being read",
                ),
                publishing: tokio::sync::RwLock::new(()),
                config,
                hub,
                metrics,
                prometheus,
                shutdown,
            }),
        };
        if let Some(announcements) = announcements {
            tokio::spawn(crate::groups::announce(
                Arc::downgrade(&gateway.shared),
                announcements,
            ));
        }
        Ok(gateway)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn router(&self) -> Router {
        router(self.shared.clone())
    }

    /// Serves until `shutdown` is cancelled, then tells every client (WS close
    /// 1001, SSE `$close`), drains for up to the shutdown timeout, and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let listener = GatewayListener::new(listener, shared.config.write_timeout);
        let app = self.router();
        {
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                shared.shutdown.cancel();
                // Every event acknowledged before the signal reaches the
                // connections' queues before they are told to close.
                drop(shared.publishing.write().await);
                shared.hub.settle(shared.config.shutdown_timeout / 2).await;
                shared.hub.close_all(ProtocolError::new(
                    ErrorCode::ShuttingDown,
                    "the gateway is shutting down; reconnect",
                ));
            });
        }
        crate::serve::run(shared, listener, app, shutdown).await;
        Ok(())
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("last-event-id"),
            ]),
    )
}

pub fn router(shared: Arc<Shared>) -> Router {
    // The streams are not traced: tower-http's body wrapper would run for
    // every frame of a connection that lasts hours, and a span per stream
    // says nothing the connection metrics do not.
    let mut streams = Router::new().route("/v1/sse", get(sse::handler));
    if shared.config.websocket {
        streams = streams.route("/v1/ws", get(ws::handler));
    }
    let not_found = || async { ApiError::new(ErrorCode::NotFound, "no such route") };
    let mut api = Router::new()
        .route("/v1/events", get(events::history).post(events::post))
        .route("/v1/groups", get(groups::list))
        .route(
            "/v1/groups/{group}",
            get(groups::get).put(groups::put).delete(groups::delete),
        )
        .route("/v1/groups/{group}/fetch", post(groups::fetch))
        .route("/v1/groups/{group}/ack", post(groups::ack))
        .route("/v1/groups/{group}/nack", post(groups::nack))
        .route("/v1/groups/{group}/extend", post(groups::extend))
        .route("/v1/groups/{group}/dead", get(groups::dead))
        .route("/v1/groups/{group}/dead/redrive", post(groups::redrive))
        .route("/v1/webhooks", get(webhooks::list))
        .route(
            "/v1/webhooks/{name}",
            get(webhooks::get)
                .put(webhooks::put)
                .delete(webhooks::delete),
        )
        .route("/v1/webhooks/{name}/dead", get(webhooks::dead))
        .route("/v1/webhooks/{name}/dead/redrive", post(webhooks::redrive))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    api = match &shared.config.static_dir {
        Some(dir) => api.fallback_service(crate::static_files::router(dir)),
        None => api.fallback(not_found),
    };
    // Spans name the path only: query strings carry `access_token`, and
    // tokens must never reach a log.
    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
        tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
    });
    // Cross-site requests riding on the auth cookie are refused before
    // any handler runs (see origin.rs).
    let csrf = axum::middleware::from_fn_with_state(shared.clone(), crate::origin::guard);
    let mut app = streams
        .method_not_allowed_fallback(method_not_allowed)
        .merge(
            api.method_not_allowed_fallback(method_not_allowed)
                .layer(csrf)
                .layer(trace),
        );
    if let Some(cors) = cors(&shared.config.cors_origins) {
        app = app.layer(cors);
    }
    app.with_state(shared)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Result<impl IntoResponse, ApiError> {
    if shared.shutdown.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::ShuttingDown,
            "the gateway is shutting down",
        ));
    }
    shared.hub.engine().ready().await?;
    Ok(Json(json!({
        "status": "ready",
        "engine": shared.hub.engine().name(),
        "connections": shared.hub.connection_count(),
    })))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut text = shared.prometheus.render();
    // Per-group series are rendered from this gateway's own groups rather
    // than kept in the process-wide recorder, so a deleted group's series
    // disappear with it.
    crate::groups::render_metrics(shared.groups.as_ref(), &mut text).await;
    shared.webhooks.render_metrics(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
