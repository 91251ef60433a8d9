//! An example backend worker: it reacts to what browsers do.
//!
//! It follows `ui.>` on the gateway's SSE endpoint (resuming from the last
//! event it handled if the stream drops), and for each UI event publishes a
//! `notification.*` event through `POST /v1/events`, carrying the same
//! `correlationid`, which every browser subscribed to `notification.>` sees.
//! `examples/nats_worker.rs` is the same worker speaking NATS JetStream
//! directly, for gateways on `--engine nats`.
//!
//!     cargo run -p eventwire-gateway --example worker -- http://127.0.0.1:8080
//!
//! Each handled event is also printed to stdout as one JSON line.

#[path = "shared/reaction.rs"]
mod reaction;

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let http = reqwest::Client::new();
    let mut last_seq: Option<String> = None;
    loop {
        if let Err(e) = follow(&http, &base, &mut last_seq).await {
            eprintln!("worker: stream ended ({e}); reconnecting in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads the SSE stream until it ends, handling each `ui.*` event once.
async fn follow(
    http: &reqwest::Client,
    base: &str,
    last_seq: &mut Option<String>,
) -> Result<(), String> {
    let mut req = http.get(format!("{base}/v1/sse?topic=ui.%3E"));
    if let Some(seq) = last_seq.as_deref() {
        req = req.header("last-event-id", seq);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.map_err(|e| e.to_string())?));
        // SSE events end with a blank line; our data is always one line.
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            match (field("event: ").as_deref(), field("id: "), field("data: ")) {
                (Some("$welcome"), _, Some(data)) => {
                    // Before the first event, resume from where the stream began.
                    let w: Value = serde_json::from_str(&data).unwrap_or_default();
                    if last_seq.is_none() || w["recovered"] == false {
                        *last_seq = w["position"].as_str().map(str::to_owned);
                    }
                }
                (Some("$close"), _, data) => {
                    return Err(format!("gateway closed the stream: {data:?}"));
                }
                (_, Some(seq), Some(data)) => {
                    let event: Value = serde_json::from_str(&data).map_err(|e| e.to_string())?;
                    react(http, base, &event).await?;
                    *last_seq = Some(seq);
                }
                _ => {}
            }
        }
    }
    Err("end of stream".into())
}

/// The business logic: one notification per UI event.
async fn react(http: &reqwest::Client, base: &str, ui: &Value) -> Result<(), String> {
    let notification = reaction::notification(ui);
    let correlation = notification["correlationid"].clone();
    let data = &ui["data"];
    // Retry until the gateway accepts it: the worker must not lose a reaction.
    loop {
        match http
            .post(format!("{base}/v1/events"))
            .json(&notification)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break,
            Ok(r) if r.status().is_client_error() => {
                return Err(format!("refused: {}", r.text().await.unwrap_or_default()));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    println!(
        "{}",
        json!({ "handled": ui["id"], "type": ui["type"], "seq": ui["seq"], "correlationid": correlation, "data": data })
    );
    Ok(())
}
