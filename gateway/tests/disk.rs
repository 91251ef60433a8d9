//! The disk engine on the real binary and real files: crashes (SIGKILL),
//! graceful restarts, a torn tail cut by hand, a second gateway on the same
//! directory, and a directory of an unknown format.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::binary::{Gw, WAIT, refused, temp_dir};

/// A pseudo-random number from the clock: enough to vary the kill moment.
fn jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos % max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() {
    let dir = temp_dir("crash");
    // (publisher, k) → seq, for every acknowledged publish.
    let acked: Arc<Mutex<HashMap<(u64, u64), String>>> = Arc::default();
    let mut next_k = [0u64; 8];
    let mut gw = Gw::start(&dir, &[]).await;
    for round in 0..5 {
        let mut tasks = Vec::new();
        for p in 0..8u64 {
            let (http, url, acked) = (gw.http.clone(), gw.url("/v1/events"), acked.clone());
            let mut k = next_k[p as usize];
            tasks.push(tokio::spawn(async move {
                loop {
                    let ev = json!({"id": format!("p{p}-{k}"), "type": format!("crash.p{p}"), "data": {"p": p, "k": k}});
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(ev.to_string())
                        .send()
                        .await;
                    let Ok(r) = sent else { return k };
                    if r.status() != 200 {
                        return k;
                    }
                    let Ok(body) = r.json::<Value>().await else {
                        return k;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .insert((p, k), body["seq"].as_str().unwrap().to_owned());
                    k += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(150 + jitter(600))).await;
        gw.kill().await;
        for (p, t) in tasks.into_iter().enumerate() {
            // The next round starts past anything that may have been sent.
            next_k[p] = t.await.unwrap() + 1;
        }
        gw = Gw::start(&dir, &[]).await;
        let history = gw.history("crash.%3E").await;
        let acked = acked.lock().unwrap().clone();
        assert!(acked.len() > round * 8, "publishers made no progress");
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut last_k: HashMap<u64, u64> = HashMap::new();
        for ev in &history {
            let id = ev["id"].as_str().unwrap().to_owned();
            let seq = ev["seq"].as_str().unwrap().to_owned();
            assert!(
                seen.insert(id.clone(), seq).is_none(),
                "round {round}: {id} is in history twice"
            );
            let (p, k) = (
                ev["data"]["p"].as_u64().unwrap(),
                ev["data"]["k"].as_u64().unwrap(),
            );
            if let Some(prev) = last_k.insert(p, k) {
                assert!(prev < k, "round {round}: publisher {p} out of order");
            }
        }
        for ((p, k), seq) in &acked {
            let id = format!("p{p}-{k}");
            assert_eq!(
                seen.get(&id),
                Some(seq),
                "round {round}: acknowledged {id} ({seq}) lost or moved"
            );
        }
    }
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads SSE events from a stream until `n` data events arrived; returns
/// the welcome's `recovered` and the events' data.
async fn sse_read(gw: &Gw, last_event_id: Option<&str>, n: usize) -> (Option<bool>, Vec<Value>) {
    let mut req = gw.http.get(gw.url("/v1/sse?topic=resume.%3E"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    let mut recovered = None;
    let mut events = Vec::new();
    let read = async {
        while events.len() < n {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        kind = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(&data).unwrap();
                match kind.as_deref() {
                    Some("$welcome") => recovered = v["recovered"].as_bool(),
                    Some(k) if k.starts_with('$') => panic!("unexpected {k}: {v}"),
                    _ => events.push(v),
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                _ => panic!("SSE stream ended"),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("timed out reading SSE");
    (recovered, events)
}

/// Subscribes over WebSocket from `since`; returns `recovered` and the next
/// `n` events.
async fn ws_read(gw: &Gw, since: Option<&str>, n: usize) -> (bool, Vec<Value>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", gw.base))
        .await
        .unwrap();
    let mut sub = json!({"op": "subscribe", "topics": ["resume.>"], "ref": "s"});
    if let Some(s) = since {
        sub["since"] = json!(s);
    }
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let mut recovered = None;
    let mut events = Vec::new();
    let read = async {
        while recovered.is_none() || events.len() < n {
            let Some(Ok(Message::Text(t))) = ws.next().await else {
                continue;
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            match v["op"].as_str() {
                Some("subscribed") => recovered = v["recovered"].as_bool(),
                Some("event") => events.push(v["event"].clone()),
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("timed out reading WebSocket");
    (recovered.unwrap(), events)
}

/// Publishes `resume.a` number `n`; returns its `seq`.
async fn publish(gw: &Gw, n: u64) -> String {
    let r = gw
        .publish(&json!({"type": "resume.a", "data": {"n": n}}))
        .await
        .unwrap();
    r["seq"].as_str().unwrap().to_owned()
}

fn ns(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_across_graceful_and_sigkill_restarts() {
    let dir = temp_dir("resume");
    let mut gw = Gw::start(&dir, &[]).await;
    let mut seqs = Vec::new();
    for n in 0..3 {
        seqs.push(publish(&gw, n).await);
    }
    let (recovered, sse) = sse_read(&gw, Some(&seqs[0]), 2).await;
    assert_eq!((recovered, ns(&sse)), (Some(true), vec![1, 2]));
    let (recovered, ws) = ws_read(&gw, Some(&seqs[0]), 2).await;
    assert_eq!((recovered, ns(&ws)), (true, vec![1, 2]));
    let mut position = seqs[2].clone();
    let mut n = 3;
    for graceful in [true, false] {
        if graceful {
            gw.stop().await;
        } else {
            gw.kill().await;
        }
        gw = Gw::start(&dir, &[]).await;
        // Missed while away.
        for _ in 0..2 {
            publish(&gw, n).await;
            n += 1;
        }
        let (recovered, sse) = sse_read(&gw, Some(&position), 2).await;
        assert_eq!(
            recovered,
            Some(true),
            "SSE after restart (graceful: {graceful})"
        );
        assert_eq!(
            ns(&sse),
            [n - 2, n - 1],
            "SSE gets exactly the missed events"
        );
        let (recovered, ws) = ws_read(&gw, Some(&position), 2).await;
        assert!(recovered, "WS after restart (graceful: {graceful})");
        assert_eq!(ns(&ws), [n - 2, n - 1], "WS gets exactly the missed events");
        position = sse[1]["seq"].as_str().unwrap().to_owned();
    }
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_retry_after_a_crash_is_a_duplicate() {
    let dir = temp_dir("dedupe");
    let gw = Gw::start(&dir, &[]).await;
    let ev = json!({"id": "retry-1", "type": "dd.a", "data": 1});
    let first = gw.publish(&ev).await.unwrap();
    assert_eq!(first["duplicate"], false);
    gw.kill().await;
    let gw = Gw::start(&dir, &[]).await;
    let again = gw.publish(&ev).await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(gw.history("dd.a").await.len(), 1);
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn retention_limits_hold_on_the_binary() {
    let dir = temp_dir("retention");
    let gw = Gw::start(&dir, &["--history-max-events", "5"]).await;
    for n in 0..12 {
        gw.publish(&json!({"type": "ret.a", "data": {"n": n}}))
            .await
            .unwrap();
    }
    assert_eq!(ns(&gw.history("ret.a").await), [7, 8, 9, 10, 11]);
    gw.kill().await;
    // Restarted with a byte limit: the oldest go at the next publish.
    // (Each of these events is about 210 bytes of JSON.)
    let gw = Gw::start(&dir, &["--history-max-bytes", "600"]).await;
    gw.publish(&json!({"type": "ret.a", "data": {"n": 12}}))
        .await
        .unwrap();
    let kept = gw.history("ret.a").await;
    let bytes: usize = kept.iter().map(|e| e.to_string().len()).sum();
    assert!(
        (1..=2).contains(&kept.len()) && bytes <= 600,
        "{} events, {bytes} bytes kept",
        kept.len()
    );
    assert_eq!(ns(&kept).last(), Some(&12));
    gw.kill().await;
    // And with an age limit, they go while the gateway is idle.
    let gw = Gw::start(&dir, &["--history-max-age", "1s"]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !gw.history("ret.a").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "old events kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_torn_tail_is_dropped_and_counted() {
    let dir = temp_dir("torn");
    let gw = Gw::start(&dir, &[]).await;
    for n in 0..10 {
        gw.publish(&json!({"type": "torn.a", "data": {"n": n}}))
            .await
            .unwrap();
    }
    gw.kill().await;
    // Cut the end off the last write in the journal, as a crash in the
    // middle of that write would. (A journal is its writes, then zeros
    // preallocated for the next ones.)
    let journal = std::fs::read_dir(dir.join("store"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jnl"))
        .expect("a journal file");
    let bytes = std::fs::read(&journal).unwrap();
    let written = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(written as u64 - 10)
        .unwrap();

    let gw = Gw::start(&dir, &[]).await;
    assert_eq!(
        ns(&gw.history("torn.a").await),
        (0..9).collect::<Vec<_>>(),
        "the torn last event is gone, the rest kept"
    );
    let metrics = gw
        .http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let torn = metrics
        .lines()
        .find(|l| l.starts_with("eventwire_disk_torn_bytes_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(torn > 0, "the dropped bytes are counted: {metrics}");
    // Publishing goes on after the repair, with the next offset.
    let ev = gw
        .publish(&json!({"type": "torn.a", "data": {"n": 9}}))
        .await
        .unwrap();
    assert!(ev["seq"].as_str().unwrap().ends_with("-10"), "{ev}");
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_gateway_on_the_same_dir_refuses() {
    let dir = temp_dir("lock");
    let gw = Gw::start(&dir, &[]).await;
    let err = refused(&dir).await;
    assert!(err.contains("in use by another gateway"), "{err}");
    // The first one is unharmed.
    gw.publish(&json!({"type": "lock.a", "data": 1}))
        .await
        .unwrap();
    gw.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unknown_format_is_refused_and_left_alone() {
    let dir = temp_dir("format");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("FORMAT"), "eventwire-disk 99\n").unwrap();
    let err = refused(&dir).await;
    assert!(err.contains("eventwire-disk 99"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("FORMAT")).unwrap(),
        "eventwire-disk 99\n"
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["FORMAT"], "nothing was written");

    // A directory with other files and no marker is not taken either.
    let other = temp_dir("format-other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = refused(&other).await;
    assert!(err.contains("not an eventwire data dir"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}
