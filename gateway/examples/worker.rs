//! An example backend worker: it reacts to what browsers do.
//!
//! It works in the consumer group `demo-worker` over `ui.>` (creating it on
//! first start): it long-polls `fetch` for deliveries, and for each UI event
//! publishes a `notification.*` event through `POST /v1/events`, carrying
//! the same `correlationid`, which every browser subscribed to
//! `notification.>` sees; then it acks. Run two and they share the work; stop
//! one mid-job and its events go to the other after `ack_wait`; restart it
//! and it carries on from the group's position instead of skipping what was
//! published meanwhile. `examples/nats_worker.rs` is a worker speaking NATS
//! JetStream directly, for gateways on `--engine nats`.
//!
//!     cargo run -p eventwire-gateway --example worker -- http://127.0.0.1:8080
//!
//! Each handled event is also printed to stdout as one JSON line.

#[path = "shared/reaction.rs"]
mod reaction;

use serde_json::{Value, json};
use std::time::Duration;

const GROUP: &str = "demo-worker";

#[tokio::main]
async fn main() {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let http = reqwest::Client::new();
    loop {
        if let Err(e) = work(&http, &base).await {
            eprintln!("worker: {e}; trying again in 1 s");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// POSTs JSON to a group route and returns the answer, or why not.
async fn call(http: &reqwest::Client, url: String, body: Value) -> Result<Value, String> {
    let r = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("HTTP {status}: {v}"))
    }
}

/// Joins the group (200: it exists with this configuration, 201: created),
/// then fetches, handles and acks until something fails.
async fn work(http: &reqwest::Client, base: &str) -> Result<(), String> {
    let group = format!("{base}/v1/groups/{GROUP}");
    let r = http
        .put(&group)
        .json(&json!({"topics": ["ui.>"], "ack_wait": "30s", "max_deliver": 5, "start": "new"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!(
            "joining the group: {}",
            r.text().await.unwrap_or_default()
        ));
    }
    loop {
        let got = call(
            http,
            format!("{group}/fetch"),
            json!({"max": 100, "wait": "20s"}),
        )
        .await?;
        let mut done = Vec::new();
        for d in got["deliveries"].as_array().into_iter().flatten() {
            match react(http, base, &d["event"]).await {
                Ok(()) => done.push(d["handle"].clone()),
                Err(reason) => {
                    call(
                        http,
                        format!("{group}/nack"),
                        json!({"handles": [d["handle"]], "reason": reason}),
                    )
                    .await?;
                }
            }
        }
        if !done.is_empty() {
            call(http, format!("{group}/ack"), json!({ "handles": done })).await?;
        }
    }
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
