//! The durable engine scenario: publish throughput and publish latency on
//! the disk engine (`--fsync always` and `never`) against the memory engine,
//! for 1, 16 and 64 concurrent publishers sending single events or batches
//! of 100; then the time a restarted gateway takes to be ready with 1 M
//! retained events.
//!
//! Each publisher is one keep-alive HTTP connection making one `POST` at a
//! time, so concurrency is the number of publishers. Latency is the `POST`
//! round trip, from the request's first byte to the response's last.

use crate::gateway::{Needs, Target};
use crate::http;
use crate::stats::{Percentiles, round};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub engine: String,
    pub publishers: usize,
    pub batch: usize,
    pub events_per_s: f64,
    pub publish: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub events: u64,
    pub data_bytes: u64,
    /// From spawning the process to `/readyz` answering 200.
    pub graceful_ready_s: f64,
    pub sigkill_ready_s: f64,
}

/// The engines compared: name, then the gateway flags that choose it.
fn engines(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let disk = |fsync: &str, sub: &str| {
        vec![
            "--engine".into(),
            "disk".into(),
            "--fsync".into(),
            fsync.into(),
            "--data-dir".into(),
            dir.join(sub).display().to_string(),
        ]
    };
    vec![
        ("disk/always", disk("always", "always")),
        ("disk/never", disk("never", "never")),
        ("memory", vec!["--engine".into(), "memory".into()]),
    ]
}

fn body(publisher: usize, n: u64, batch: usize, event_bytes: usize) -> Vec<u8> {
    let pad = "x".repeat(event_bytes.saturating_sub(60));
    let one = |k: u64| {
        format!(r#"{{"type":"bench.durable","data":{{"p":{publisher},"n":{k},"pad":"{pad}"}}}}"#)
    };
    if batch == 1 {
        one(n).into_bytes()
    } else {
        let items: Vec<String> = (0..batch as u64).map(|i| one(n + i)).collect();
        format!("[{}]", items.join(",")).into_bytes()
    }
}

/// One run: `publishers` connections publishing for `duration`.
async fn run(
    target: &Target,
    name: &str,
    flags: &[String],
    publishers: usize,
    batch: usize,
    duration: Duration,
    event_bytes: usize,
) -> Result<Row, String> {
    let mut t = target.clone();
    t.extra_args.extend(flags.iter().cloned());
    let gw = t
        .start(
            &format!("durable-{}", name.replace('/', "-")),
            &Needs::default(),
        )
        .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (stop, accepted, addr) = (stop.clone(), accepted.clone(), gw.addr);
        tasks.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(addr).await?;
            let mut lat_us = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let b = body(p, n, batch, event_bytes);
                let t0 = Instant::now();
                let (status, _) = conn.post("/v1/events", &b).await?;
                if status != 200 {
                    return Err(format!("publish answered {status}"));
                }
                lat_us.push(t0.elapsed().as_micros() as u64);
                accepted.fetch_add(batch as u64, Ordering::Relaxed);
                n += batch as u64;
            }
            Ok::<_, String>(lat_us)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    gw.stop().await;
    Ok(Row {
        engine: name.into(),
        publishers,
        batch,
        events_per_s: round(accepted.load(Ordering::Relaxed) as f64 / elapsed, 0),
        publish: Percentiles::of_values_us(&all),
    })
}

fn needs(history_events: usize) -> Needs {
    Needs {
        history_events,
        ..Needs::default()
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Fills a data dir with `events` (fsync never, batches of 100 over 8
/// connections), kills the gateway (SIGKILL) and times its restart, then
/// stops it (SIGTERM) and times the restart after that clean stop.
async fn restart(
    target: &Target,
    dir: &Path,
    events: u64,
    event_bytes: usize,
) -> Result<Restart, String> {
    let data = dir.join("restart");
    let flags = [
        "--engine",
        "disk",
        "--fsync",
        "never",
        "--history-max-bytes",
        "0",
        "--data-dir",
    ];
    let mut t = target.clone();
    t.extra_args.extend(flags.iter().map(|s| s.to_string()));
    t.extra_args.push(data.display().to_string());
    let gw = t.start("durable-fill", &needs(2 * events as usize)).await?;
    let per = events / 8;
    let mut tasks = Vec::new();
    for p in 0..8 {
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            let mut conn = http::Conn::open(addr).await?;
            let mut n = 0;
            while n < per {
                let (status, _) = conn
                    .post("/v1/events", &body(p, n, 100, event_bytes))
                    .await?;
                if status != 200 {
                    return Err(format!("publish answered {status}"));
                }
                n += 100;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    // Killed right after the fill: the journal holds the most it can.
    gw.kill().await;
    let data_bytes = dir_bytes(&data);
    let t0 = Instant::now();
    let gw = t
        .start("durable-restart-kill", &needs(2 * events as usize))
        .await?;
    let sigkill_ready_s = t0.elapsed().as_secs_f64();
    gw.stop().await;
    let t0 = Instant::now();
    let gw = t
        .start("durable-restart", &needs(2 * events as usize))
        .await?;
    let graceful_ready_s = t0.elapsed().as_secs_f64();
    gw.stop().await;
    Ok(Restart {
        events: per * 8,
        data_bytes,
        graceful_ready_s: round(graceful_ready_s, 3),
        sigkill_ready_s: round(sigkill_ready_s, 3),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    pub restart: Option<Restart>,
}

pub async fn all(
    target: &Target,
    duration: Duration,
    event_bytes: usize,
    restart_events: u64,
) -> Result<Report, String> {
    let dir = std::env::temp_dir().join(format!("eventwire-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rows = Vec::new();
    // A zero duration runs only the restart measurement.
    let engines = if duration.is_zero() {
        Vec::new()
    } else {
        engines(&dir)
    };
    for (name, flags) in engines {
        for publishers in [1, 16, 64] {
            for batch in [1, 100] {
                let row = run(
                    target,
                    name,
                    &flags,
                    publishers,
                    batch,
                    duration,
                    event_bytes,
                )
                .await?;
                eprintln!(
                    "{name:12} publishers {publishers:3} batch {batch:3}: {:>8} events/s, publish p50 {} ms p99 {} ms",
                    row.events_per_s, row.publish.p50_ms, row.publish.p99_ms
                );
                rows.push(row);
            }
        }
    }
    let restart = if restart_events > 0 {
        let r = restart(target, &dir, restart_events, event_bytes).await?;
        eprintln!(
            "restart with {} events ({} MB): ready in {} s after SIGTERM, {} s after SIGKILL",
            r.events,
            r.data_bytes / 1_000_000,
            r.graceful_ready_s,
            r.sigkill_ready_s
        );
        Some(r)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Report { rows, restart })
}

/// The README table: one row per engine and shape, with the targets.
pub fn markdown(r: &Report) -> String {
    let mut out = String::from(
        "| engine | publishers | batch | events/s | publish p50 ms | publish p99 ms |\n|---|---|---|---|---|---|\n",
    );
    for row in &r.rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.engine,
            row.publishers,
            row.batch,
            row.events_per_s,
            row.publish.p50_ms,
            row.publish.p99_ms
        ));
    }
    if let Some(s) = &r.restart {
        out.push_str(&format!(
            "\nRestart with {} retained events ({} MB on disk): ready in {} s after SIGTERM, {} s after SIGKILL.\n",
            s.events,
            s.data_bytes / 1_000_000,
            s.graceful_ready_s,
            s.sigkill_ready_s
        ));
    }
    out
}
