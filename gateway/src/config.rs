//! Gateway configuration: every flag has an `EVENTWIRE_*` environment twin.
//!
//! Defaults are what a first-time user running on a laptop should get; the
//! limits are documented in README.md and docs/PROTOCOL.md.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

    #[command(flatten)]
    pub engine: crate::engine::EngineArgs,

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

    /// Emits per second one WebSocket connection may make (0: no limit);
    /// also the per-address rate of POSTs made with user tokens.
    #[arg(long, env = "EVENTWIRE_EMIT_RATE", default_value_t = 100)]
    pub emit_rate: u32,

    /// Emits one connection may make in a burst above `--emit-rate`.
    #[arg(long, env = "EVENTWIRE_EMIT_BURST", default_value_t = 200)]
    pub emit_burst: u32,

    /// New streaming connections per second from one address (0: no limit).
    #[arg(long, env = "EVENTWIRE_CONNECT_RATE", default_value_t = 50)]
    pub connect_rate: u32,

    /// New connections one address may open in a burst above `--connect-rate`.
    #[arg(long, env = "EVENTWIRE_CONNECT_BURST", default_value_t = 200)]
    pub connect_burst: u32,

    /// Bytes queued for one connection before it is closed as a slow consumer.
    #[arg(long, env = "EVENTWIRE_OUTBOX_BYTES", default_value_t = 1024 * 1024)]
    pub outbox_bytes: usize,

    /// `auto`: write live events at once while the writers keep up, and hold
    /// them briefly (20 ms ticks, for a second at a time) once a write finds
    /// its oldest event waited more than 10 ms, so they leave together. A
    /// duration: hold every live event up to this long (0s: always write at
    /// once). Fewer, larger writes cost less CPU per delivery at the price of
    /// latency. Acks, welcomes and replays are never delayed.
    #[arg(long, env = "EVENTWIRE_WRITE_DELAY", default_value = "auto")]
    pub write_delay: crate::flush::WriteDelay,

    /// Largest WebSocket message accepted; bigger ones close the socket (1009).
    #[arg(long, env = "EVENTWIRE_WS_MAX_MESSAGE_BYTES", default_value_t = 256 * 1024)]
    pub ws_max_message_bytes: usize,

    /// Heartbeat period: SSE comments and WebSocket pings.
    #[arg(long, env = "EVENTWIRE_HEARTBEAT", default_value = "15s", value_parser = heartbeat_period)]
    pub heartbeat: Duration,

    /// A write that makes no progress for this long drops the connection.
    #[arg(long, env = "EVENTWIRE_WRITE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// A client must send a request's head (request line and headers) within
    /// this, counted from when the gateway starts waiting for it; otherwise
    /// its socket is closed. Also how long a keep-alive socket may idle.
    #[arg(long, env = "EVENTWIRE_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,

    /// Most sockets with no request in progress (still sending a request's
    /// head, or keep-alive between requests). A new socket over this closes
    /// the one that has waited longest.
    #[arg(long, env = "EVENTWIRE_MAX_IDLE_CONNECTIONS", default_value_t = 1024)]
    pub max_idle_connections: usize,

    /// A request body (`POST /v1/events`) must arrive in full within this.
    #[arg(long, env = "EVENTWIRE_BODY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,

    /// Bytes of request bodies being read at once, all requests together.
    /// A request reserves its `Content-Length` (or the body limit when it
    /// sends none) before its body is read.
    #[arg(long, env = "EVENTWIRE_MAX_BODY_BUFFER_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_buffer_bytes: usize,

    /// Bytes of events accepted from this gateway's publishers but not yet
    /// routed to its connections. Publishers wait while it is full.
    #[arg(long, env = "EVENTWIRE_ROUTE_BACKLOG_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub route_backlog_bytes: usize,

    /// Most single-segment wildcards (`*`) in one subscription pattern. Each
    /// one can double the trie branches an event is routed through.
    #[arg(long, env = "EVENTWIRE_MAX_PATTERN_WILDCARDS", default_value_t = 4)]
    pub max_pattern_wildcards: usize,

    /// History reads (`GET /v1/events` and resume replays) running at once.
    #[arg(long, env = "EVENTWIRE_MAX_HISTORY_READS", default_value_t = 4)]
    pub max_history_reads: usize,

    /// How long a publish, a request body or a history read waits for room
    /// under its bound before it is answered `503 overloaded`.
    #[arg(long, env = "EVENTWIRE_QUEUE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub queue_timeout: Duration,

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

    /// A JSON file declaring webhooks, `{"webhooks": {"<name>": <PUT body>}}`,
    /// created at startup (docs/PROTOCOL.md §17.7).
    #[arg(long, env = "EVENTWIRE_WEBHOOKS")]
    pub webhooks: Option<PathBuf>,

    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
}

impl Config {
    /// The configuration with every default, as if no flag were given.
    pub fn defaults() -> Config {
        Config::parse_from(["eventwire-gateway"])
    }
}

/// `--heartbeat`: a duration above zero. Zero would tick the heartbeat as
/// fast as the runtime can and close every WebSocket peer as silent.
fn heartbeat_period(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the heartbeat period must be above zero, e.g. 15s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_heartbeat_is_refused_with_a_reason() {
        let err = Config::try_parse_from(["eventwire-gateway", "--heartbeat", "0s"])
            .expect_err("0s is refused")
            .to_string();
        assert!(err.contains("above zero"), "{err}");
        let ok = Config::try_parse_from(["eventwire-gateway", "--heartbeat", "250ms"]).unwrap();
        assert_eq!(ok.heartbeat, Duration::from_millis(250));
    }
}
