//! The `eventwire-gateway` binary: configuration and startup only.

use clap::Parser;
use eventwire_gateway::{Config, Gateway, shutdown};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = Config::parse();
    if let Err(why) = exposure_check(&config) {
        tracing::error!("{why}");
        return ExitCode::FAILURE;
    }
    let listener = match eventwire_gateway::listener::bind(config.listen) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let gateway = match Gateway::new(config.clone()).await {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the gateway");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, engine = ?config.engine.kind, static_dir = ?config.static_dir, "eventwire gateway listening on http://{addr}");
    match gateway.serve(listener, shutdown::on_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Crates that log what they read off the wire at trace level: tungstenite
/// logs every WebSocket frame, and an `auth` frame carries a token. However
/// verbose `RUST_LOG` asks for, these log at `debug` at most, so that no
/// token reaches a log.
const WIRE_LOGGERS: &[&str] = &["tungstenite", "tokio_tungstenite", "hyper", "h2"];

fn init_logging() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let requested = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = WIRE_LOGGERS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::DEBUG),
    );
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(requested.and(cap)))
        .init();
}

/// An open gateway on a public interface is how these gateways leak: refuse
/// it unless asked explicitly, and say loudly when the gateway is open.
fn exposure_check(config: &Config) -> Result<(), String> {
    let enforced = config.auth.jwt_secret.is_some()
        || config.auth.jwt_public_key.is_some()
        || config.auth.jwt_jwks.is_some()
        || !config.auth.api_keys.is_empty();
    if enforced {
        return Ok(());
    }
    if !config.listen.ip().is_loopback() && !config.auth.insecure {
        return Err(format!(
            "refusing to listen on {} with no authentication: anyone who can reach it could read and publish every event. \
             Configure --jwt-secret, --jwt-public-key, --jwt-jwks or --api-key, or pass --insecure to accept the risk.",
            config.listen
        ));
    }
    tracing::warn!(
        "NO AUTHENTICATION: every client may subscribe to and publish every topic. Fine for local development; \
         configure --jwt-secret/--jwt-public-key/--jwt-jwks before exposing this gateway."
    );
    Ok(())
}
