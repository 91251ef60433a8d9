//! Gateway configuration: every flag has an `EVENTWIRE_*` environment twin.
//!
//! Defaults are what a first-time user running on a laptop should get; the
//! limits are documented in README.md and docs/PROTOCOL.md.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// In-process broker with bounded history. One gateway only.
    Memory,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "eventwire-gateway",
    version,
    about = "Relays events between browsers and a broker over SSE, WebSocket and HTTP."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "EVENTWIRE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Broker engine.
    #[arg(long, env = "EVENTWIRE_ENGINE", value_enum, default_value = "memory")]
    pub engine: EngineKind,

    /// Memory engine: events kept for replay, at most.
    #[arg(long, env = "EVENTWIRE_HISTORY_MAX_EVENTS", default_value_t = 10_000)]
    pub history_max_events: usize,

    /// Memory engine: bytes of events kept for replay, at most.
    #[arg(long, env = "EVENTWIRE_HISTORY_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub history_max_bytes: usize,

    /// How long an event id is remembered for dedupe.
    #[arg(long, env = "EVENTWIRE_DEDUPE_WINDOW", default_value = "2m", value_parser = humantime::parse_duration)]
    pub dedupe_window: Duration,

    /// Largest accepted event (its JSON envelope), in bytes.
    #[arg(long, env = "EVENTWIRE_MAX_EVENT_BYTES", default_value_t = 64 * 1024)]
    pub max_event_bytes: usize,

    /// Most events in one `POST /v1/events` batch.
    #[arg(long, env = "EVENTWIRE_MAX_BATCH", default_value_t = 100)]
    pub max_batch: usize,

    /// Most subscriptions (patterns) on one connection.
    #[arg(long, env = "EVENTWIRE_MAX_SUBSCRIPTIONS", default_value_t = 64)]
    pub max_subscriptions: usize,

    /// Most streaming connections (SSE plus WebSocket) at once.
    #[arg(long, env = "EVENTWIRE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Bytes queued for one connection before it is closed as a slow consumer.
    #[arg(long, env = "EVENTWIRE_OUTBOX_BYTES", default_value_t = 1024 * 1024)]
    pub outbox_bytes: usize,

    /// Largest WebSocket message accepted; bigger ones close the socket (1009).
    #[arg(long, env = "EVENTWIRE_WS_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Heartbeat period: SSE comments and WebSocket pings.
    #[arg(long, env = "EVENTWIRE_HEARTBEAT", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,

    /// A write that makes no progress for this long drops the connection.
    #[arg(long, env = "EVENTWIRE_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// On shutdown, how long to wait for connections to drain.
    #[arg(long, env = "EVENTWIRE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Serve WebSocket upgrades on `/v1/ws`. With `--websocket=false` the
    /// endpoint answers 404, as behind a proxy that blocks upgrades; clients
    /// fall back to SSE.
    #[arg(long, env = "EVENTWIRE_WEBSOCKET", default_value_t = true, action = clap::ArgAction::Set)]
    pub websocket: bool,

    /// Directory served at `/` (the demo page).
    #[arg(long, env = "EVENTWIRE_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Allowed CORS origins (repeat, or comma-separate in the env var); `*` allows any.
    #[arg(
        long = "cors-origin",
        env = "EVENTWIRE_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
}

impl Config {
    /// The configuration with every default, as if no flag were given.
    pub fn defaults() -> Config {
        Config::parse_from(["eventwire-gateway"])
    }
}
