//! The example worker, talking to NATS JetStream directly instead of to a
//! gateway: for gateways started with `--engine nats`.
//!
//! It reads browser-emitted `ui.*` events from a durable JetStream consumer
//! (at least once: an event is acknowledged only after its reaction is
//! stored, so a crash means it comes again), and for each one publishes a
//! `notification.*` envelope on the stream, which every browser subscribed
//! to `notification.>` on any gateway sees. The notification's id derives
//! from the UI event's, so a redelivered event is deduplicated by JetStream
//! (`Nats-Msg-Id`) instead of notifying twice.
//!
//!     cargo run -p eventwire-gateway --example nats_worker -- nats://127.0.0.1:4222 [STREAM] [PREFIX]
//!
//! STREAM and PREFIX default to the gateway's defaults, `EVENTWIRE` and
//! `eventwire`. Each handled event is printed to stdout as one JSON line.

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

#[path = "shared/reaction.rs"]
mod reaction;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let stream = args.next().unwrap_or_else(|| "EVENTWIRE".into());
    let prefix = args.next().unwrap_or_else(|| "eventwire".into());
    let js = jetstream::new(async_nats::connect(&url).await?);
    // The gateway creates the stream; the worker only adds its consumer.
    let consumer = js
        .get_stream(&stream)
        .await?
        .get_or_create_consumer(
            "example-worker",
            pull::Config {
                durable_name: Some("example-worker".into()),
                filter_subject: format!("{prefix}.ui.>"),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(msg) = messages.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                eprintln!("nats_worker: {e}; carrying on");
                continue;
            }
        };
        let Ok(ui) = serde_json::from_slice::<Value>(&msg.payload) else {
            // Not an envelope: nothing to react to, and it never will be.
            msg.ack().await?;
            continue;
        };
        let notification = reaction::notification(&ui);
        let ty = notification["type"].as_str().unwrap_or_default();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            notification["id"].as_str().unwrap_or_default(),
        );
        // Until JetStream has stored the reaction, the UI event stays unacknowledged.
        let stored = match js
            .publish_with_headers(
                format!("{prefix}.{ty}"),
                headers,
                notification.to_string().into(),
            )
            .await
        {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            eprintln!("nats_worker: could not publish ({e}); the UI event will come again");
            continue;
        }
        msg.ack().await?;
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
        println!(
            "{}",
            json!({ "handled": ui["id"], "type": ui["type"], "stream_sequence": seq, "correlationid": notification["correlationid"] })
        );
    }
    Ok(())
}
