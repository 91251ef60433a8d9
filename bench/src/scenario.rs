//! The three shapes every scenario is made of: idle connections (memory),
//! fan-out under load (throughput, latency, CPU), and a resume storm
//! (replay time). Each starts its own gateway and stops it at the end.

use crate::gateway::{Gateway, Needs, Target};
use crate::procfs;
use crate::publish::{self, Flow, Plan, Via};
use crate::report::Row;
use crate::stats::{Percentiles, median, round};
use crate::sub::{self, Outcome, Shared, Spec, Transport};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which transport the subscribers of a run use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sel {
    Sse,
    Ws,
    /// Alternating SSE and WS.
    Mix,
}

impl Sel {
    pub fn label(self) -> &'static str {
        match self {
            Sel::Sse => "sse",
            Sel::Ws => "ws",
            Sel::Mix => "mix",
        }
    }

    fn of(self, i: usize) -> Transport {
        match self {
            Sel::Sse => Transport::Sse,
            Sel::Ws => Transport::Ws,
            Sel::Mix if i.is_multiple_of(2) => Transport::Sse,
            Sel::Mix => Transport::Ws,
        }
    }
}

/// Settings shared by every scenario of a run.
#[derive(Debug, Clone)]
pub struct Common {
    pub target: Target,
    /// Connections being set up at once (the rest wait).
    pub connect_concurrency: usize,
    pub event_bytes: usize,
    pub via: Via,
    /// Flow-control window for max-rate runs, in events per subscriber.
    pub window: u64,
    /// Latencies of the first moments are left out.
    pub warmup: Duration,
    /// Longest wait for the last events after publishing stops.
    pub drain_timeout: Duration,
    /// Bytes per socket read in the load generator.
    pub read_buf: usize,
    pub run_id: String,
}

/// A fan-out run: N subscribers, events at a rate or as fast as possible.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub id: String,
    pub title: String,
    pub subs: usize,
    pub topics: usize,
    pub sel: Sel,
    /// Events per second in total; None: the maximum without loss.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub workers: Option<usize>,
    pub via: Option<Via>,
    /// More gateway flags for this run only.
    pub gateway_args: Vec<String>,
}

fn row_for(id: &str, title: &str, sel: Sel, workers: Option<usize>, c: &Common) -> Row {
    Row {
        scenario: id.to_owned(),
        title: title.to_owned(),
        transport: sel.label().to_owned(),
        workers,
        event_bytes: c.event_bytes,
        loadavg_before: procfs::loadavg(),
        ..Row::default()
    }
}

fn run_name(row: &Row) -> String {
    format!(
        "{}-{}-w{}",
        row.scenario,
        row.transport,
        row.workers.map_or("d".into(), |w| w.to_string())
    )
}

/// Subscribers opened and running, with their stop switch.
struct Subs {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<Outcome>>,
    /// From the first connect to the last welcome.
    setup: Duration,
    ready: usize,
}

/// Opens subscribers, at most `concurrency` connecting at once, and waits
/// (at most `within`) until each is welcomed or has failed.
async fn open(
    gw: &Gateway,
    specs: Vec<Spec>,
    concurrency: usize,
    within: Duration,
) -> Result<Subs, String> {
    let n = specs.len();
    let (stop, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(gw.addr, n, stop_rx));
    let started = Instant::now();
    let deadline = started + within;
    let settled = |s: &Shared| s.ready.load(Ordering::Relaxed) + s.ended.load(Ordering::Relaxed);
    let mut handles = Vec::with_capacity(n);
    for (i, spec) in specs.into_iter().enumerate() {
        while i - settled(&shared) >= concurrency.max(1) {
            if Instant::now() > deadline {
                let _ = stop.send(true);
                return Err(format!(
                    "only {} of {n} subscribers connected in time",
                    settled(&shared)
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        handles.push(tokio::spawn(sub::run(spec, shared.clone())));
    }
    while settled(&shared) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let setup = started.elapsed();
    let ready = shared.ready.load(Ordering::Relaxed);
    Ok(Subs {
        shared,
        stop,
        handles,
        setup,
        ready,
    })
}

impl Subs {
    /// Tells every subscriber to stop and collects what each saw.
    async fn close(self) -> Vec<Outcome> {
        let _ = self.stop.send(true);
        let mut out = Vec::with_capacity(self.handles.len());
        for h in self.handles {
            match tokio::time::timeout(Duration::from_secs(10), h).await {
                Ok(Ok(o)) => out.push(o),
                Ok(Err(e)) => out.push(Outcome {
                    ended: Some(format!("task failed: {e}")),
                    ..Outcome::default()
                }),
                Err(_) => out.push(Outcome {
                    ended: Some("did not stop within 10 s".into()),
                    ..Outcome::default()
                }),
            }
        }
        out
    }
}

/// CPU and delivery readings once a second while events flow.
struct Sampler {
    done: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    cpu: f64,
    delivered: u64,
}

impl Sampler {
    fn start(pid: Option<u32>, shared: Arc<Shared>) -> Sampler {
        let (done, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            // Bounded: an hour of samples at most.
            for _ in 0..3600 {
                if let Some(cpu) = pid.and_then(|p| procfs::cpu_seconds(p).ok()) {
                    samples.push(Sample {
                        at: t0.elapsed().as_secs_f64(),
                        cpu,
                        delivered: shared.delivered(),
                    });
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = rx.wait_for(|v| *v) => break,
                }
            }
            samples
        });
        Sampler { done, task }
    }

    async fn stop(self) -> Vec<Sample> {
        let _ = self.done.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// Medians over one-second windows (the first one, warm-up, left out):
/// (CPU-s per million deliveries, deliveries per second).
fn window_medians(samples: &[Sample]) -> (Option<f64>, Option<f64>) {
    let mut cpu = Vec::new();
    let mut rate = Vec::new();
    for w in samples.windows(2).skip(1) {
        let d = w[1].delivered.saturating_sub(w[0].delivered);
        let dt = w[1].at - w[0].at;
        if d >= 1000 && dt > 0.5 {
            cpu.push((w[1].cpu - w[0].cpu) / d as f64 * 1e6);
            rate.push(d as f64 / dt);
        }
    }
    (median(&cpu), median(&rate))
}

/// Loss, duplicates and early ends over every subscriber. `expected(o)`
/// is how many events subscriber `o` should have got in all.
fn tally(row: &mut Row, outcomes: &[Outcome], expected_next: impl Fn(&Outcome) -> u64) {
    let mut reasons: Vec<String> = Vec::new();
    for o in outcomes {
        row.lost += o.lost_in_gaps + expected_next(o).saturating_sub(o.next_seq);
        row.duplicated += o.duplicated;
        if let Some(why) = &o.ended {
            row.ended_early += 1;
            if reasons.len() < 5 && !reasons.contains(why) {
                reasons.push(why.clone());
            }
        }
    }
    for r in reasons {
        row.errors.push(format!("subscriber ended: {r}"));
    }
}

pub async fn fanout(c: &Common, f: &Fanout) -> Row {
    let mut row = row_for(&f.id, &f.title, f.sel, f.workers.or(c.target.workers), c);
    row.subs = f.subs;
    row.topics = f.topics;
    row.rate = f.rate;
    let mut target = c.target.clone();
    if f.workers.is_some() {
        target.workers = f.workers;
    }
    target.extra_args.extend(f.gateway_args.iter().cloned());
    let needs = Needs {
        connections: f.subs + 10,
        ..Needs::default()
    };
    let mut gw = match target.start(&run_name(&row), &needs).await {
        Ok(g) => g,
        Err(e) => {
            row.errors.push(e);
            return row;
        }
    };
    row.gateway_args = gw.args.clone();
    let topics: Vec<String> = (0..f.topics.max(1))
        .map(|i| format!("bench.t{i}"))
        .collect();
    let sub_topic: Vec<usize> = (0..f.subs).map(|i| i % topics.len()).collect();
    let specs = (0..f.subs)
        .map(|i| Spec {
            idx: i,
            transport: f.sel.of(i),
            topic: topics[sub_topic[i]].clone(),
            since: None,
            first_seq: 0,
            expect: None,
            track_position: false,
            // Keep the load generator small at ten thousand connections.
            read_buf: if f.subs > 2000 {
                c.read_buf.min(4096)
            } else {
                c.read_buf
            },
            instance: None,
        })
        .collect();
    let rss0 = gw.rss_bytes();
    let subs = match open(&gw, specs, c.connect_concurrency, Duration::from_secs(120)).await {
        Ok(s) => s,
        Err(e) => {
            row.errors.push(e);
            gw.stop().await;
            return row;
        }
    };
    row.connect_per_s = Some(round(subs.ready as f64 / subs.setup.as_secs_f64(), 0));
    if let (Some(a), Some(b)) = (rss0, gw.rss_bytes()) {
        row.rss_per_conn_bytes = Some(round(b.saturating_sub(a) as f64 / f.subs as f64, 0));
    }
    if subs.ready < f.subs {
        row.errors.push(format!(
            "{} of {} subscribers connected",
            subs.ready, f.subs
        ));
    }
    let shared = subs.shared.clone();
    let plan = Plan {
        via: f.via.unwrap_or(c.via),
        topics,
        rate: f.rate,
        duration: f.duration,
        max_events: None,
        event_bytes: c.event_bytes,
        batch: 100,
        window: c.window,
        run_id: format!("{}-{}", c.run_id, run_name(&row)),
        first_seq: 0,
        acked: None,
    };
    shared.measuring.store(false, Ordering::Relaxed);
    let warm = {
        let shared = shared.clone();
        let warmup = c.warmup;
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            shared.measuring.store(true, Ordering::Relaxed);
        })
    };
    let cpu0 = gw.cpu_times();
    let bench0 = procfs::cpu_seconds(std::process::id()).ok();
    let d0 = shared.delivered();
    let t0 = Instant::now();
    let sampler = Sampler::start(gw.pid, shared.clone());
    let flow = Flow {
        shared: &shared,
        sub_topic: &sub_topic,
    };
    let published = publish::run(gw.addr, &plan, f.rate.is_none().then_some(flow)).await;
    let samples = sampler.stop().await;
    warm.abort();
    // Drain: wait for the last events (bounded).
    let expected: u64 = sub_topic.iter().map(|&t| published.per_topic[t]).sum();
    let drain_until = Instant::now() + c.drain_timeout;
    let mut last = shared.delivered();
    let mut last_change = Instant::now();
    while last < expected + d0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = shared.delivered();
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let elapsed = last_change.max(t0 + published.elapsed).duration_since(t0);
    let cpu1 = gw.cpu_times();
    let bench1 = procfs::cpu_seconds(std::process::id()).ok();
    let delivered = shared.delivered() - d0;
    let latency = shared.latency.summary();
    let outcomes = subs.close().await;
    row.disconnects = gw.disconnects().await;
    // Writes that carried events: one `eventwire_publish_to_write_seconds`
    // sample each.
    if let (Some(d), Some(w)) = (
        gw.metric_sum("eventwire_events_delivered_total").await,
        gw.metric_sum("eventwire_publish_to_write_seconds_count")
            .await,
    ) && w > 0.0
    {
        row.deliveries_per_write = Some(round(d / w, 2));
    }
    if !gw.alive() {
        row.errors.push("the gateway exited during the run".into());
    }
    gw.stop().await;

    row.duration_s = round(published.elapsed.as_secs_f64(), 2);
    row.published = published.total;
    row.publish_duplicates = published.duplicates;
    if let Some(e) = published.error {
        row.errors.push(format!("publish: {e}"));
    }
    if f.rate.is_none() {
        row.throttled_s = Some(round(published.throttled.as_secs_f64(), 2));
    }
    row.deliveries = delivered;
    row.deliveries_per_s = Some(round(delivered as f64 / elapsed.as_secs_f64(), 0));
    row.latency = Some(latency);
    if let (Some((u0, s0)), Some((u1, s1))) = (cpu0, cpu1) {
        let total = (u1 - u0) + (s1 - s0);
        row.gateway_cpu_s = Some(round(total, 2));
        if total > 0.0 {
            row.gateway_sys_share = Some(round((s1 - s0) / total, 2));
        }
        if delivered > 0 {
            row.cpu_s_per_million = Some(round(total / delivered as f64 * 1e6, 3));
        }
    }
    if let (Some(a), Some(b)) = (bench0, bench1) {
        row.bench_cpu_s = Some(round(b - a, 2));
    }
    let (cpu_med, rate_med) = window_medians(&samples);
    row.cpu_s_per_million_median = cpu_med.map(|v| round(v, 3));
    row.deliveries_per_s_median = rate_med.map(|v| round(v, 0));
    tally(&mut row, &outcomes, |o| {
        if o.ready_after_us.is_some() {
            published.per_topic[sub_topic[o.idx]]
        } else {
            o.next_seq
        }
    });
    row
}

/// Scenario 1: N idle, subscribed connections; the gateway's RSS growth per
/// connection, and how fast they were set up.
pub async fn idle(c: &Common, id: &str, title: &str, n: usize, sel: Sel) -> Row {
    let mut row = row_for(id, title, sel, c.target.workers, c);
    row.subs = n;
    row.topics = 1;
    let needs = Needs {
        connections: n + 10,
        ..Needs::default()
    };
    let mut gw = match c.target.start(&run_name(&row), &needs).await {
        Ok(g) => g,
        Err(e) => {
            row.errors.push(e);
            return row;
        }
    };
    row.gateway_args = gw.args.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = gw.rss_bytes();
    let cpu0 = gw.cpu_seconds();
    let specs = (0..n)
        .map(|i| Spec {
            idx: i,
            transport: sel.of(i),
            topic: "bench.idle".into(),
            since: None,
            first_seq: 0,
            expect: None,
            track_position: false,
            read_buf: c.read_buf.min(4096),
            instance: None,
        })
        .collect();
    match open(&gw, specs, c.connect_concurrency, Duration::from_secs(120)).await {
        Ok(subs) => {
            row.connect_per_s = Some(round(subs.ready as f64 / subs.setup.as_secs_f64(), 0));
            row.duration_s = round(subs.setup.as_secs_f64(), 2);
            if subs.ready < n {
                row.errors
                    .push(format!("{} of {n} subscribers connected", subs.ready));
            }
            // Let the gateway settle (lazy buffers, the allocator) before reading.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss1 = gw.rss_bytes();
            row.rss_before_bytes = rss0;
            row.rss_after_bytes = rss1;
            if let (Some(a), Some(b)) = (rss0, rss1)
                && subs.ready > 0
            {
                row.rss_per_conn_bytes =
                    Some(round(b.saturating_sub(a) as f64 / subs.ready as f64, 0));
            }
            if let (Some(a), Some(b)) = (cpu0, gw.cpu_seconds()) {
                row.gateway_cpu_s = Some(round(b - a, 2));
            }
            let outcomes = subs.close().await;
            tally(&mut row, &outcomes, |o| o.next_seq);
        }
        Err(e) => row.errors.push(e),
    }
    row.disconnects = gw.disconnects().await;
    if !gw.alive() {
        row.errors.push("the gateway exited during the run".into());
    }
    gw.stop().await;
    row
}

/// Scenario 5: `n` clients receive `live` events, all disconnect, `gap`
/// events are published, and all reconnect at once with their last position.
/// Replay time is from a client's connect to its `gap`-th event.
#[allow(clippy::too_many_arguments)]
pub async fn storm(
    c: &Common,
    id: &str,
    title: &str,
    n: usize,
    gap: u64,
    sel: Sel,
    workers: Option<usize>,
    reconnect_concurrency: usize,
) -> Row {
    const LIVE: u64 = 10;
    let mut row = row_for(id, title, sel, workers.or(c.target.workers), c);
    row.subs = n;
    row.topics = 1;
    let mut target = c.target.clone();
    if workers.is_some() {
        target.workers = workers;
    }
    let needs = Needs {
        connections: 2 * n + 10,
        history_events: (LIVE + gap) as usize * 2,
        ..Needs::default()
    };
    let mut gw = match target.start(&run_name(&row), &needs).await {
        Ok(g) => g,
        Err(e) => {
            row.errors.push(e);
            return row;
        }
    };
    row.gateway_args = gw.args.clone();
    let topic = "bench.storm".to_owned();
    let spec = |i: usize, since: Option<String>, first: u64, expect: Option<u64>| Spec {
        idx: i,
        transport: sel.of(i),
        topic: topic.clone(),
        since,
        first_seq: first,
        expect,
        track_position: true,
        read_buf: c.read_buf.min(8192),
        instance: None,
    };
    let plan = |events: u64, first_seq: u64, tag: &str| Plan {
        via: c.via,
        topics: vec![topic.clone()],
        rate: None,
        duration: Duration::from_secs(60),
        max_events: Some(events),
        event_bytes: c.event_bytes,
        batch: 100,
        window: u64::MAX,
        run_id: format!("{}-{}-{tag}", c.run_id, run_name(&row)),
        first_seq,
        acked: None,
    };
    let result = async {
        // Phase 1: connected, receiving live events.
        let specs = (0..n).map(|i| spec(i, None, 0, None)).collect();
        let subs = open(&gw, specs, c.connect_concurrency, Duration::from_secs(120)).await?;
        if subs.ready < n {
            return Err(format!("{} of {n} subscribers connected", subs.ready));
        }
        let p = publish::run(gw.addr, &plan(LIVE, 0, "live"), None).await;
        if let Some(e) = p.error {
            return Err(format!("publish: {e}"));
        }
        let until = Instant::now() + Duration::from_secs(30);
        while subs.shared.delivered() < LIVE * n as u64 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let first = subs.close().await;
        let mut resume_from = Vec::with_capacity(n);
        for o in &first {
            match (&o.last_position, o.next_seq == LIVE) {
                (Some(p), true) => resume_from.push(p.clone()),
                _ => return Err(format!("subscriber {} missed live events: {o:?}", o.idx)),
            }
        }
        // Phase 2: events published while every client is away.
        let p = publish::run(gw.addr, &plan(gap, LIVE, "gap"), None).await;
        if let Some(e) = p.error {
            return Err(format!("publish: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Phase 3: everyone comes back at once.
        let cpu0 = gw.cpu_seconds();
        let specs = resume_from
            .into_iter()
            .enumerate()
            .map(|(i, since)| spec(i, Some(since), LIVE, Some(gap)))
            .collect();
        let t0 = Instant::now();
        let subs = open(&gw, specs, reconnect_concurrency, Duration::from_secs(60)).await?;
        let until = t0 + Duration::from_secs(60);
        while subs.shared.delivered() < gap * n as u64 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let storm_s = t0.elapsed().as_secs_f64();
        let cpu1 = gw.cpu_seconds();
        let delivered = subs.shared.delivered();
        let outcomes = subs.close().await;
        Ok((outcomes, storm_s, delivered, cpu0.zip(cpu1)))
    }
    .await;
    match result {
        Ok((outcomes, storm_s, delivered, cpu)) => {
            row.duration_s = round(storm_s, 2);
            row.deliveries = delivered;
            row.published = LIVE + gap;
            let replay: Vec<u64> = outcomes.iter().filter_map(|o| o.done_after_us).collect();
            if replay.len() < n {
                row.errors.push(format!(
                    "{} of {n} clients got all {gap} missed events",
                    replay.len()
                ));
            }
            row.replay = Some(Percentiles::of_values_us(&replay));
            let setup: Vec<u64> = outcomes.iter().filter_map(|o| o.ready_after_us).collect();
            row.connect_p99_ms = Some(Percentiles::of_values_us(&setup).p99_ms);
            row.recovered_false = outcomes
                .iter()
                .filter(|o| o.recovered == Some(false))
                .count();
            if let Some((a, b)) = cpu {
                row.gateway_cpu_s = Some(round(b - a, 2));
                if delivered > 0 {
                    row.cpu_s_per_million = Some(round((b - a) / delivered as f64 * 1e6, 3));
                }
            }
            tally(&mut row, &outcomes, |o| {
                if o.ready_after_us.is_some() {
                    LIVE + gap
                } else {
                    o.next_seq
                }
            });
        }
        Err(e) => row.errors.push(e),
    }
    row.disconnects = gw.disconnects().await;
    if !gw.alive() {
        row.errors.push("the gateway exited during the run".into());
    }
    gw.stop().await;
    row
}
