//! eventwire gateway: relays events between browsers and a broker engine.
//!
//! `app` builds the router; `state` is what its handlers share; `hub` fans
//! events out to connections; `engine` is the broker; `publish` is how events get in;
//! `transport` holds the SSE, WebSocket and HTTP endpoints.

pub mod app;
pub mod auth;
pub mod config;
pub mod conn;
pub mod engine;
pub mod error;
pub mod flush;
pub mod groups;
pub mod heartbeat;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod origin;
pub mod publish;
pub mod rewind;
pub mod serve;
pub mod shutdown;
pub mod sse_socket;
pub mod state;
pub mod static_files;
pub mod sublist;
pub mod transport;
pub mod webhooks;

pub use app::Gateway;
pub use config::Config;
