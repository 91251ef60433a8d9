//! The memory engine against the engine conformance suite.

mod conformance;

use eventwire_gateway::engine::Engine;
use eventwire_gateway::engine::memory::{MemoryConfig, MemoryEngine};
use std::sync::Arc;

#[tokio::test]
async fn memory_engine_conforms() {
    conformance::run_all(|retention| async move {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new(MemoryConfig {
            max_events: retention.max_events,
            ..MemoryConfig::default()
        }));
        engine
    })
    .await;
}

#[tokio::test]
async fn memory_engine_evicts_by_bytes_and_forgets_ids_after_the_window() {
    let engine = MemoryEngine::new(MemoryConfig {
        max_bytes: 2_000,
        dedupe_window: std::time::Duration::from_millis(50),
        ..MemoryConfig::default()
    });
    let ev = |id: &str| {
        eventwire_gateway::publish::ingest::prepare(
            &format!(r#"{{"id":"{id}","type":"b","data":"{}"}}"#, "x".repeat(300)),
            1 << 16,
            "t",
        )
        .unwrap()
    };
    let first = engine.publish(ev("a")).await.unwrap();
    for i in 0..20 {
        engine.publish(ev(&format!("n{i}"))).await.unwrap();
    }
    let h = engine
        .history(eventwire_gateway::engine::HistoryQuery {
            patterns: vec![eventwire_protocol::Pattern::parse(">").unwrap()],
            since: None,
            limit: 100,
        })
        .await
        .unwrap();
    let bytes: usize = h.events.iter().map(|e| e.json.len()).sum();
    assert!(
        bytes <= 2_000 && !h.events.is_empty(),
        "{bytes} bytes retained"
    );
    // Inside the window "a" is a duplicate; after it, it is new again.
    assert!(engine.publish(ev("a")).await.unwrap().duplicate);
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let again = engine.publish(ev("a")).await.unwrap();
    assert!(!again.duplicate);
    assert_ne!(again.seq, first.seq);
}
