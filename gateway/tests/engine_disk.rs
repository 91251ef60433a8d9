//! The disk engine against the engine conformance suite, and what only a
//! durable engine promises: the same positions, history and dedupe window
//! after the engine is closed and the directory opened again.

mod conformance;

use eventwire_gateway::engine::disk::{DiskConfig, DiskEngine, Store};
use eventwire_gateway::engine::{Engine, HistoryQuery};
use eventwire_protocol::Pattern;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh directory per engine, removed when the test process ends.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "eventwire-disk-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn event(id: &str, ty: &str) -> eventwire_gateway::engine::NewEvent {
    eventwire_gateway::publish::ingest::prepare(
        &format!(
            r#"{{"id":"{id}","type":"{ty}","data":"{}"}}"#,
            "x".repeat(300)
        ),
        1 << 16,
        "t",
    )
    .unwrap()
}

async fn all(engine: &dyn Engine, since: Option<String>) -> eventwire_gateway::engine::History {
    engine
        .history(HistoryQuery {
            patterns: vec![Pattern::parse(">").unwrap()],
            since,
            limit: 10_000,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn disk_engine_conforms() {
    // Each check gets a fresh directory under one root.
    let root = temp_dir("conf");
    let n = AtomicU64::new(0);
    conformance::run_all(|retention| {
        let dir = root.join(n.fetch_add(1, Ordering::Relaxed).to_string());
        async move {
            let mut c = DiskConfig::new(dir);
            c.max_events = retention.max_events;
            let engine: Arc<dyn Engine> = Arc::new(DiskEngine::open(c).unwrap());
            engine
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test]
async fn positions_history_and_dedupe_survive_reopening() {
    let dir = temp_dir("reopen");
    let engine = DiskEngine::open(DiskConfig::new(&dir)).unwrap();
    let mut seqs = Vec::new();
    for n in 0..10 {
        seqs.push(
            engine
                .publish(event(&format!("r{n}"), "a.b"))
                .await
                .unwrap()
                .seq,
        );
    }
    drop(engine);

    let engine = DiskEngine::open(DiskConfig::new(&dir)).unwrap();
    let h = all(&engine, Some(seqs[4].clone())).await;
    assert!(h.recovered, "a position from before the reopen is ours");
    let got: Vec<_> = h.events.iter().map(|e| e.seq.clone()).collect();
    assert_eq!(got, seqs[5..], "exactly the events after the position");
    let again = engine.publish(event("r3", "a.b")).await.unwrap();
    assert!(again.duplicate, "the dedupe window survives");
    assert_eq!(again.seq, seqs[3]);
    let new = engine.publish(event("r10", "a.b")).await.unwrap();
    assert!(!new.duplicate);
    assert_eq!(
        all(&engine, Some(seqs[9].clone())).await.events[0].seq,
        new.seq,
        "offsets continue after the last one"
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A clean close writes every memtable to tables, so the next open has
/// nothing to replay from the journal: with a large history that replay
/// was most of a restart (seconds for 1 M events).
#[tokio::test]
async fn a_clean_close_leaves_nothing_to_replay() {
    use fjall::AbstractTree;
    let dir = temp_dir("flush");
    let mut c = DiskConfig::new(&dir);
    c.max_events = 50;
    c.dedupe_max_ids = 20;
    let engine = DiskEngine::open(c.clone()).unwrap();
    for n in 0..200 {
        engine
            .publish(event(&format!("f{n}"), "a.b"))
            .await
            .unwrap();
    }
    drop(engine);
    let store = Store::open(&dir).unwrap();
    for (name, ks) in [
        ("events", &store.events),
        ("dedupe", &store.dedupe),
        ("meta", &store.meta),
    ] {
        assert_eq!(
            ks.tree.active_memtable().size(),
            0,
            "{name} was replayed from the journal"
        );
        assert_eq!(ks.tree.sealed_memtable_count(), 0, "{name}");
    }
    // The bounds an open reads instead of scanning past evicted records.
    assert_eq!(store.meta_u64(b"first").unwrap(), Some(151));
    assert_eq!(store.meta_u64(b"next").unwrap(), Some(201));
    let from = store.meta_u64(b"dedupe_from").unwrap().unwrap();
    assert!((180..=181).contains(&from), "dedupe_from {from}");
    drop(store);
    let engine = DiskEngine::open(c).unwrap();
    let h = all(&engine, None).await;
    assert_eq!(h.events.len(), 50);
    assert_eq!(h.events[0].id, "f150");
    let again = engine.publish(event("f199", "a.b")).await.unwrap();
    assert!(again.duplicate, "the newest ids are still remembered");
    let forgotten = engine.publish(event("f100", "a.b")).await.unwrap();
    assert!(!forgotten.duplicate, "ids beyond dedupe_max_ids are not");
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A final flush that cannot finish (here: the directory removed from under
/// the engine) gives up after a while instead of holding the stop forever.
#[tokio::test]
async fn a_flush_that_cannot_finish_does_not_hang_the_stop() {
    let dir = temp_dir("gone");
    let engine = DiskEngine::open(DiskConfig::new(&dir)).unwrap();
    engine.publish(event("g1", "a.b")).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stopped = tokio::task::spawn_blocking(move || drop(engine));
    tokio::time::timeout(std::time::Duration::from_secs(120), stopped)
        .await
        .expect("the stop hung")
        .unwrap();
}

#[tokio::test]
async fn retention_by_count_bytes_and_age_and_the_dedupe_window() {
    let dir = temp_dir("ret");
    let mut c = DiskConfig::new(&dir);
    c.max_bytes = 2_000;
    c.dedupe_window = std::time::Duration::from_secs(1);
    let engine = DiskEngine::open(c).unwrap();
    let first = engine.publish(event("a", "b")).await.unwrap();
    // Inside the window "a" is a duplicate; after it, it is new again.
    assert!(engine.publish(event("a", "b")).await.unwrap().duplicate);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let again = engine.publish(event("a", "b")).await.unwrap();
    assert!(!again.duplicate);
    assert_ne!(again.seq, first.seq);
    for i in 0..20 {
        engine.publish(event(&format!("n{i}"), "b")).await.unwrap();
    }
    let h = all(&engine, None).await;
    let bytes: usize = h.events.iter().map(|e| e.json.len()).sum();
    assert!(
        bytes <= 2_000 && !h.events.is_empty(),
        "{bytes} bytes retained"
    );
    assert!(!all(&engine, Some(first.seq.clone())).await.recovered);
    drop(engine);

    // Reopened with a lower count limit, then with an age limit: everything
    // older goes, even with no publish to trigger it.
    let mut c = DiskConfig::new(&dir);
    c.max_events = 3;
    let engine = DiskEngine::open(c).unwrap();
    engine.publish(event("z1", "b")).await.unwrap();
    assert_eq!(all(&engine, None).await.events.len(), 3, "count limit");
    drop(engine);
    let mut c = DiskConfig::new(&dir);
    c.max_age = std::time::Duration::from_millis(500);
    let engine = DiskEngine::open(c).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert!(all(&engine, None).await.events.is_empty(), "age limit");
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_batch_is_written_together_in_order() {
    let dir = temp_dir("batch");
    let engine = DiskEngine::open(DiskConfig::new(&dir)).unwrap();
    let events = (0..100)
        .map(|n| event(&format!("b{}", n % 90), "b.c"))
        .collect();
    let results = engine.publish_batch(events).await;
    assert_eq!(results.len(), 100);
    let accepted: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    // The last ten repeat the first ten ids: duplicates with their seqs.
    for n in 90..100 {
        assert!(accepted[n].duplicate);
        assert_eq!(accepted[n].seq, accepted[n - 90].seq);
    }
    let h = all(&engine, None).await;
    let ids: Vec<_> = h.events.iter().map(|e| e.id.clone()).collect();
    let want: Vec<_> = (0..90).map(|n| format!("b{n}")).collect();
    assert_eq!(ids, want, "stored once each, in order");
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}
