//! The NATS JetStream engine against the engine conformance suite, on a
//! real nats-server, plus what only this engine has: epochs tied to the
//! stream's identity, and retention set from the gateway's flags.

mod conformance;
#[path = "common/nats.rs"]
mod nats_helper;

use eventwire_gateway::engine::nats::{NatsConfig, NatsEngine};
use eventwire_gateway::engine::{Engine, EngineError, History, HistoryQuery};
use eventwire_protocol::Pattern;
use nats_helper::NatsServer;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn event(ty: &str, n: u64) -> eventwire_gateway::engine::NewEvent {
    eventwire_gateway::publish::ingest::prepare(
        &format!(r#"{{"type":"{ty}","data":{{"n":{n}}}}}"#),
        1 << 16,
        "t",
    )
    .unwrap()
}

#[tokio::test]
async fn nats_engine_conforms() {
    let server = NatsServer::start().await;
    let url = server.url();
    let fresh = AtomicUsize::new(0);
    // Each check gets its own stream and subject prefix on the one server.
    conformance::run_all(|retention| {
        let i = fresh.fetch_add(1, Ordering::Relaxed);
        let mut config = NatsConfig::for_tests(&url, &format!("CONF{i}"), &format!("conf{i}"));
        config.max_messages = retention.max_events;
        async move {
            let engine: Arc<dyn Engine> = Arc::new(NatsEngine::connect(config).await.unwrap());
            engine
        }
    })
    .await;
    assert_eq!(fresh.load(Ordering::Relaxed), 9, "every check ran");
}

async fn everything_after(engine: &NatsEngine, seq: &str) -> History {
    engine
        .history(HistoryQuery {
            patterns: vec![Pattern::parse(">").unwrap()],
            since: Some(seq.to_owned()),
            limit: 10,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_recreated_stream_is_a_new_epoch() {
    let server = NatsServer::start().await;
    let config = NatsConfig::for_tests(&server.url(), "EPOCH", "ep");
    let first = NatsEngine::connect(config.clone()).await.unwrap();
    let old = first.publish(event("a", 1)).await.unwrap();
    assert!(old.seq.starts_with(first.epoch()) && first.epoch().starts_with('n'));

    // The same stream seen by another engine: same epoch, positions valid.
    let again = NatsEngine::connect(config.clone()).await.unwrap();
    assert_eq!(
        again.epoch(),
        first.epoch(),
        "the epoch is the stream's, not the process's"
    );
    let h = everything_after(&again, &old.seq).await;
    assert!(h.recovered);

    // Deleted and created again: a new epoch; old positions are foreign.
    let js = async_nats::jetstream::new(first.client().clone());
    js.delete_stream("EPOCH").await.unwrap();
    let second = NatsEngine::connect(config).await.unwrap();
    assert_ne!(second.epoch(), first.epoch());
    second.publish(event("a", 2)).await.unwrap();
    let h = everything_after(&second, &old.seq).await;
    assert!(!h.recovered && h.events.is_empty(), "{h:?}");

    // The engine that served the old incarnation notices and says why.
    match first.ready().await {
        Err(EngineError::Unavailable(m)) => assert!(m.contains("created again"), "{m}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(matches!(
        first.publish(event("a", 3)).await,
        Err(EngineError::Unavailable(_))
    ));
}

#[tokio::test]
async fn retention_and_dedupe_window_come_from_the_flags() {
    let server = NatsServer::start().await;
    let mut config = NatsConfig::for_tests(&server.url(), "RET", "ret");
    config.max_messages = 7;
    config.max_bytes = 1 << 20;
    config.max_age = Duration::from_secs(3600);
    config.dedupe_window = Duration::from_secs(30);
    let engine = NatsEngine::connect(config.clone()).await.unwrap();
    let js = async_nats::jetstream::new(engine.client().clone());
    let info = js.get_stream("RET").await.unwrap().cached_info().clone();
    assert_eq!(info.config.subjects, ["ret.>"]);
    assert_eq!(info.config.max_messages, 7);
    assert_eq!(info.config.max_bytes, 1 << 20);
    assert_eq!(info.config.max_age, Duration::from_secs(3600));
    assert_eq!(info.config.duplicate_window, Duration::from_secs(30));

    // A restart with other flags updates the stream, keeping its identity.
    config.max_messages = 0;
    config.max_age = Duration::from_secs(10);
    let updated = NatsEngine::connect(config).await.unwrap();
    assert_eq!(updated.epoch(), engine.epoch());
    let info = js.get_stream("RET").await.unwrap().cached_info().clone();
    assert_eq!(info.config.max_messages, -1, "0 means no limit");
    assert_eq!(
        info.config.duplicate_window,
        Duration::from_secs(10),
        "clamped to the max age"
    );
}
