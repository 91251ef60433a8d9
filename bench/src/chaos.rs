//! `eventwire-bench chaos`: clients cut at random and resuming, the way real
//! networks and proxies treat long-lived streams (issue 16, item 4).
//!
//! N clients each hold one stream on one topic while events are published at
//! a steady rate. Every 5–15 s (uniformly at random, per client) a client
//! walks away from its connection in one of three styles and reconnects at
//! once with the position of the last event it processed and, unless the
//! run is without instances, the same `instance` on every connection
//! (PROTOCOL §4.6):
//! - `clean`: the old socket is closed (a WebSocket close handshake, or a FIN);
//! - `unread`: the old socket is left open and never read again (a peer that
//!   vanished while its kernel, or a middlebox, still holds the connection);
//! - `read`: the old socket is left open and still read, its events thrown
//!   away (a proxy that keeps the upstream open after its client left).
//!
//! What is counted, per client, across all its connections:
//! - processed: an event whose sequence number is above the last one the
//!   client processed (a gap in between is counted as lost);
//! - duplicates: an event at or below the last one processed;
//! - delivery ratio: events processed over clients × events published;
//! - replay time, per reconnect: from the start of the new connection's TCP
//!   connect until the client has processed every event the gateway had
//!   acknowledged to the publisher before that connect began; when it had
//!   missed none, until the `$welcome` / `subscribed` frame. A reconnect cut
//!   again (or ended by the gateway) before catching up is counted as
//!   unfinished, not as a time.

use crate::gateway::Needs;
use crate::procfs;
use crate::publish::{self, Plan as PublishPlan};
use crate::scenario::Common;
use crate::stats::{Percentiles, round};
use crate::sub::{self, Leftover, Shared, Spec, Transport};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a client does with the connection it walks away from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    Clean,
    Unread,
    Read,
}

impl Style {
    pub fn label(self) -> &'static str {
        match self {
            Style::Clean => "clean",
            Style::Unread => "unread",
            Style::Read => "read",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    /// Events per second, all on one topic.
    pub rate: f64,
    /// Seconds of publishing; cuts happen only meanwhile.
    pub duration: Duration,
    /// A client's connection lives a uniformly random time in this range.
    pub cut_ms: (u64, u64),
    pub style: Style,
    pub transport: Transport,
    /// Whether clients name their instance (so a reconnect supersedes).
    pub instance: bool,
}

/// One chaos run's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub style: String,
    pub transport: String,
    pub instance: bool,
    pub clients: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub published: u64,
    pub reconnects: u64,
    /// Processed events over clients × published.
    pub delivery_ratio: f64,
    pub lost: u64,
    pub duplicated: u64,
    /// Reconnects timed (see the module comment for the definition).
    pub replay: Percentiles,
    /// Reconnects that had not caught up when they were cut or ended.
    pub replay_unfinished: u64,
    /// Publish-to-read latency of every event processed, replays included.
    pub latency: Percentiles,
    /// Streams open on the gateway once publishing and catching up ended:
    /// the clients' own plus the stale ones still being written to.
    pub open_at_end: Option<f64>,
    /// Deliveries the gateway wrote over processed events: above 1, the
    /// gateway wrote to streams nobody processed.
    pub writes_per_processed: Option<f64>,
    /// Live connections the gateway ended (not the client's cuts).
    pub ended_by_gateway: u64,
    /// A few of the reasons they were ended with.
    pub end_reasons: Vec<String>,
    pub gateway_cpu_s: Option<f64>,
    pub disconnects: Vec<(String, f64)>,
    pub loadavg_before: Option<f64>,
    pub errors: Vec<String>,
}

impl Row {
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.errors.is_empty()
    }

    /// One Markdown table line (see [`TABLE_HEAD`]).
    pub fn markdown(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {:.5} | {} | {} | {:.1} / {:.1} | {} | {} | {} | {} | {} |",
            self.style,
            self.transport,
            if self.instance { "yes" } else { "no" },
            self.reconnects,
            self.delivery_ratio,
            self.lost,
            self.duplicated,
            self.replay.p50_ms,
            self.replay.p99_ms,
            self.replay_unfinished,
            self.open_at_end.map_or("–".into(), |v| format!("{v:.0}")),
            self.writes_per_processed
                .map_or("–".into(), |v| format!("{v:.2}")),
            self.ended_by_gateway,
            self.gateway_cpu_s.map_or("–".into(), |c| format!("{c:.1}")),
        )
    }
}

pub const TABLE_HEAD: &str = "| cut style | transport | instance | reconnects | delivery ratio | lost | duplicates | replay p50 / p99 ms | replay unfinished | streams open at end | writes per processed event | live streams ended by gateway | gateway CPU-s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// What one client saw over the whole run.
#[derive(Debug, Default)]
struct Client {
    processed: u64,
    lost: u64,
    duplicated: u64,
    next_seq: u64,
    reconnects: u64,
    replays_us: Vec<u64>,
    unfinished: u64,
    ended_by_gateway: u64,
    reason: Option<String>,
}

/// splitmix64: enough randomness for cut times, no dependency.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Ctx {
    plan: Plan,
    shared: Arc<Shared>,
    /// Events the gateway has acknowledged so far.
    acked: Arc<AtomicU64>,
    /// Set once publishing ends: no cut lands after it.
    published: std::sync::atomic::AtomicBool,
    topic: String,
    run_id: String,
}

async fn client(ctx: Arc<Ctx>, idx: usize, start_after: Duration) -> Client {
    let plan = &ctx.plan;
    let mut rng = (idx as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407) ^ ctx.run_id.len() as u64;
    let instance = plan
        .instance
        .then(|| format!("chaos-{}-{idx}", &ctx.run_id[..ctx.run_id.len().min(12)]));
    let mut c = Client::default();
    let mut position: Option<String> = None;
    let mut held: Vec<Leftover> = Vec::new();
    let mut drains = Vec::new();
    tokio::time::sleep(start_after).await;
    let mut first = true;
    loop {
        if *ctx.shared.stop.borrow() {
            break;
        }
        let missed = ctx.acked.load(Ordering::Relaxed).saturating_sub(c.next_seq);
        let spec = Spec {
            idx,
            transport: plan.transport,
            topic: ctx.topic.clone(),
            since: position.clone(),
            first_seq: c.next_seq,
            expect: (missed > 0).then_some(missed),
            track_position: true,
            read_buf: 4096,
            instance: instance.clone(),
        };
        let (lo, hi) = plan.cut_ms;
        let life = lo + next_random(&mut rng) % (hi.saturating_sub(lo) + 1);
        let cut = async {
            tokio::time::sleep(Duration::from_millis(life)).await;
            if ctx.published.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let (o, left) = sub::run_until(&spec, &ctx.shared, cut).await;
        c.processed += o.received - o.duplicated;
        c.lost += o.lost_in_gaps;
        c.duplicated += o.duplicated;
        c.next_seq = o.next_seq;
        if o.last_position.is_some() {
            position = o.last_position;
        }
        if !first {
            c.reconnects += 1;
            let caught = if missed == 0 {
                o.ready_after_us
            } else {
                o.done_after_us
            };
            match caught {
                Some(us) => c.replays_us.push(us),
                None => c.unfinished += 1,
            }
        }
        first = false;
        if let Some(why) = o.ended {
            // The gateway (or the socket) ended the live connection: resume.
            c.ended_by_gateway += 1;
            c.reason.get_or_insert(why);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        match (left, plan.style) {
            (None, _) => break,
            (Some(l), Style::Clean) => l.close().await,
            (Some(l), Style::Unread) => held.push(l),
            (Some(l), Style::Read) => drains.push(tokio::spawn(l.drain(ctx.shared.stop.clone()))),
        }
    }
    drop(held);
    for d in drains {
        d.abort();
    }
    c
}

pub async fn run(common: &Common, plan: &Plan) -> Row {
    let mut row = Row {
        style: plan.style.label().into(),
        transport: format!("{:?}", plan.transport).to_lowercase(),
        instance: plan.instance,
        clients: plan.clients,
        rate: plan.rate,
        loadavg_before: procfs::loadavg(),
        ..Row::default()
    };
    let lives = plan.duration.as_millis() as usize / plan.cut_ms.0.max(1) as usize + 2;
    let needs = Needs {
        connections: plan.clients * lives,
        history_events: (plan.rate * plan.duration.as_secs_f64()) as usize + 1000,
        ..Needs::default()
    };
    let name = format!(
        "chaos-{}-{}-{}",
        row.style,
        row.transport,
        if plan.instance { "inst" } else { "noinst" }
    );
    let mut gw = match common.target.start(&name, &needs).await {
        Ok(g) => g,
        Err(e) => {
            row.errors.push(e);
            return row;
        }
    };
    let (stop, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(gw.addr, plan.clients, stop_rx));
    let acked = Arc::new(AtomicU64::new(0));
    // Clients connect in waves under the listen backlog; publishing starts
    // once every first connection is welcomed, so each client's first
    // stream starts live at event 0.
    let waves = common.connect_concurrency.max(1);
    let setup = Duration::from_millis(20) * (plan.clients / waves) as u32 + Duration::from_secs(60);
    let ctx = Arc::new(Ctx {
        plan: plan.clone(),
        shared: shared.clone(),
        acked: acked.clone(),
        published: Default::default(),
        topic: "bench.chaos".into(),
        run_id: common.run_id.clone(),
    });
    let handles: Vec<_> = (0..plan.clients)
        .map(|i| {
            let wave = Duration::from_millis(20) * (i / waves) as u32;
            tokio::spawn(client(ctx.clone(), i, wave))
        })
        .collect();
    let until = Instant::now() + setup;
    while shared.ready.load(Ordering::Relaxed) < plan.clients && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = shared.ready.load(Ordering::Relaxed);
    if ready < plan.clients {
        row.errors.push(format!(
            "only {ready} of {} clients connected",
            plan.clients
        ));
    }
    let cpu0 = gw.cpu_seconds();
    let pub_plan = PublishPlan {
        via: common.via,
        topics: vec![ctx.topic.clone()],
        rate: Some(plan.rate),
        duration: plan.duration,
        max_events: None,
        event_bytes: common.event_bytes,
        batch: 100,
        window: u64::MAX,
        run_id: format!("{}-{name}", common.run_id),
        first_seq: 0,
        acked: Some(acked.clone()),
    };
    let t0 = Instant::now();
    let published = publish::run(gw.addr, &pub_plan, None).await;
    ctx.published.store(true, Ordering::Relaxed);
    if let Some(e) = &published.error {
        row.errors.push(format!("publish: {e}"));
    }
    let total = published.per_topic[0];
    // Let every client catch up (bounded), then stop.
    let drain_until = Instant::now() + common.drain_timeout.max(Duration::from_secs(10));
    while Instant::now() < drain_until
        && shared
            .next
            .iter()
            .any(|n| n.load(Ordering::Relaxed) < total)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    row.duration_s = round(t0.elapsed().as_secs_f64(), 2);
    let cpu1 = gw.cpu_seconds();
    // A stream superseded by a reconnect just before this point may still
    // be tearing down: give stale streams a moment (bounded) to go.
    let settle_until = Instant::now() + Duration::from_secs(3);
    loop {
        row.open_at_end = gw.metric_sum("eventwire_connections").await;
        let settled = row.open_at_end.is_none_or(|n| n <= plan.clients as f64);
        if settled || Instant::now() >= settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = gw.metric_sum("eventwire_events_delivered_total").await;
    let _ = stop.send(true);
    let mut replays = Vec::new();
    let mut processed = 0u64;
    let mut reasons: Vec<String> = Vec::new();
    for h in handles {
        match tokio::time::timeout(Duration::from_secs(20), h).await {
            Ok(Ok(c)) => {
                processed += c.processed;
                row.lost += c.lost + total.saturating_sub(c.next_seq);
                row.duplicated += c.duplicated;
                row.reconnects += c.reconnects;
                row.replay_unfinished += c.unfinished;
                row.ended_by_gateway += c.ended_by_gateway;
                replays.extend(c.replays_us);
                if let Some(r) = c.reason
                    && reasons.len() < 3
                    && !reasons.contains(&r)
                {
                    reasons.push(r);
                }
            }
            Ok(Err(e)) => row.errors.push(format!("client task failed: {e}")),
            Err(_) => row.errors.push("a client did not stop within 20 s".into()),
        }
    }
    row.end_reasons = reasons;
    row.published = total;
    row.delivery_ratio = if total == 0 {
        0.0
    } else {
        processed as f64 / (total as f64 * plan.clients as f64)
    };
    if let Some(w) = written
        && processed > 0
    {
        row.writes_per_processed = Some(round(w / processed as f64, 3));
    }
    row.replay = Percentiles::of_values_us(&replays);
    row.latency = shared.latency.summary();
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        row.gateway_cpu_s = Some(round(b - a, 2));
    }
    row.disconnects = gw.disconnects().await;
    if !gw.alive() {
        row.errors.push("the gateway exited during the run".into());
    }
    gw.stop().await;
    row
}
