//! The `eventwire-gateway` binary: configuration and startup only.

use clap::Parser;
use eventwire_gateway::{Config, Gateway, shutdown};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
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
            tracing::error!(error = ?e, "cannot start the engine");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%addr, engine = ?config.engine, static_dir = ?config.static_dir, "eventwire gateway listening on http://{addr}");
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
