//! The example workers' business logic, whatever they speak: one
//! `notification.*` envelope per browser-emitted `ui.*` event.
//!
//! Not an example by itself (Cargo only builds `examples/*.rs` and
//! `examples/*/main.rs`); the workers include it with `#[path]`.

use serde_json::{Value, json};

/// The notification for a UI event. Its id derives from the UI event's, so
/// a retry, or a redelivery after the worker restarts, is deduplicated
/// instead of notifying twice.
pub fn notification(ui: &Value) -> Value {
    let data = &ui["data"];
    let (ty, payload) = match ui["type"].as_str() {
        Some("ui.clicked") => (
            "notification.clicked",
            json!({ "message": format!("Someone pressed {}", data["target"].as_str().unwrap_or("a button")), "click": data["click"] }),
        ),
        Some("ui.submitted") => (
            "notification.note",
            json!({ "message": format!("New note: {}", data["text"].as_str().unwrap_or("")) }),
        ),
        _ => (
            "notification.seen",
            json!({ "message": format!("Saw {}", ui["type"]) }),
        ),
    };
    let correlation = ui["correlationid"]
        .as_str()
        .or(ui["id"].as_str())
        .unwrap_or_default();
    json!({
        "id": format!("n-{}", ui["id"].as_str().unwrap_or_default()),
        "type": ty,
        "correlationid": correlation,
        "source": "example-worker",
        "data": payload,
    })
}
