//! eventwire-bench: the load generator for the eventwire gateway (issue 7).
//!
//! `all` runs every scenario over SSE and WebSocket against a fresh gateway
//! each and writes docs/bench/{report.json,RESULTS.md,chart.svg}; `smoke` is
//! the 5-second correctness run for CI (loss and duplicates, never speed).

mod browser;
mod chaos;
mod durable;
mod gateway;
mod groups;
mod http;
mod procfs;
mod publish;
mod report;
mod scenario;
mod smoke;
mod sse;
mod stats;
mod sub;
mod webhooks;
mod ws;

use clap::{Args, Parser, Subcommand};
use publish::Via;
use report::{Report, Row};
use scenario::{Common, Fanout, Sel};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "eventwire-bench",
    about = "Load generator and benchmark report for the eventwire gateway. Loopback only."
)]
struct Cli {
    #[command(flatten)]
    opts: Opts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct Opts {
    /// Gateway binary started fresh for each scenario (build it with `cargo build --release -p eventwire-gateway`).
    #[arg(
        long,
        global = true,
        default_value = "target/release/eventwire-gateway"
    )]
    gateway_bin: PathBuf,
    /// Use a running gateway at this loopback address instead (e.g. 127.0.0.1:8080).
    #[arg(long, global = true, value_parser = loopback)]
    url: Option<SocketAddr>,
    /// The running gateway's pid, for CPU and memory readings with --url.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// TOKIO_WORKER_THREADS for a started gateway.
    #[arg(long, global = true, default_value_t = 2)]
    workers: usize,
    /// --outbox-bytes for a started gateway (its default otherwise).
    #[arg(long, global = true)]
    outbox_bytes: Option<usize>,
    /// Another flag for a started gateway (repeat).
    #[arg(long = "gateway-arg", global = true, allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// Run a started gateway under this command, e.g. "valgrind --tool=callgrind".
    #[arg(long, global = true)]
    gateway_wrapper: Option<String>,
    /// Size of each published event envelope, in bytes.
    #[arg(long, global = true, default_value_t = 100)]
    event_bytes: usize,
    /// How events are published.
    #[arg(long, global = true, value_enum, default_value = "http")]
    publish: Via,
    /// Connections being set up at once. Keep it under the gateway's listen
    /// backlog (128 today), or dropped SYNs add 1 s retransmits to set-up.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    /// Max-rate runs: most events a subscriber may lag behind the publisher.
    #[arg(long, global = true, default_value_t = 200)]
    window: u64,
    /// Latencies of the first milliseconds of a run are not recorded.
    #[arg(long, global = true, default_value_t = 1000)]
    warmup_ms: u64,
    /// Longest wait for the last events once publishing stops, in seconds.
    #[arg(long, global = true, default_value_t = 5)]
    drain_timeout_s: u64,
    /// Bytes per socket read in a subscriber.
    #[arg(long, global = true, default_value_t = 16 * 1024)]
    read_buf: usize,
    /// Worker threads of the load generator itself.
    #[arg(long, global = true, default_value_t = 2)]
    bench_threads: usize,
}

fn loopback(s: &str) -> Result<SocketAddr, String> {
    let a: SocketAddr = s
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("{e} (expected e.g. 127.0.0.1:8080)"))?;
    if a.ip().is_loopback() {
        Ok(a)
    } else {
        Err("the bench only talks to loopback addresses".into())
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Every scenario over SSE and WS (plus one-worker runs and the browser), then the report.
    All(AllArgs),
    /// 5 seconds, a few hundred subscribers on both transports: zero loss and
    /// zero duplicates, or a non-zero exit. Asserts no speed.
    Smoke,
    /// One fan-out run.
    Fanout(FanoutArgs),
    /// N idle connections: gateway RSS per connection, set-up rate.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        #[arg(long, value_enum, default_value = "sse")]
        transport: Sel,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Resume storm: N clients reconnect at once, each `gap` events behind.
    Storm {
        #[arg(long, default_value_t = 5000)]
        clients: usize,
        #[arg(long, default_value_t = 100)]
        gap: u64,
        #[arg(long, value_enum, default_value = "sse")]
        transport: Sel,
        /// Reconnects in flight at once (default: all of them).
        #[arg(long)]
        reconnect_concurrency: Option<usize>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Chaos: clients cut at random every 5–15 s and resuming, in three cut
    /// styles (clean close; old socket left open unread; left open and still
    /// read). Prints delivery ratio, duplicates and replay time per style and
    /// transport as a Markdown table; fails on any loss or duplicate.
    Chaos(ChaosArgs),
    /// Consumer groups: workers fetch and ack in batches (a backlog as fast
    /// as they can, then a steady rate for publish-to-worker latency).
    Groups {
        #[arg(long, default_value_t = 4)]
        group_workers: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds of the steady-rate run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// Webhooks: a gateway POSTs events to a fast local receiver (a backlog
    /// as fast as it delivers, then a steady rate for publish-to-receiver
    /// latency); `--fail` makes the receiver answer 500 to that share of
    /// requests. Fails on any missing or duplicated event.
    Webhooks {
        /// The webhook's max_inflight.
        #[arg(long, default_value_t = 16)]
        inflight: u32,
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Seconds of the steady-rate run.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Share of requests answered 500 (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        fail: f64,
    },
    /// The disk engine: publish throughput and p99 (disk/always, disk/never,
    /// memory; 1, 16, 64 publishers; single events and batches of 100), and
    /// the restart time with many retained events. Prints a Markdown table.
    Durable {
        /// Seconds of publishing per run (0: only the restart measurement).
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Events retained for the restart measurement (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        restart_events: u64,
        /// Also write the figures as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The browser benchmark (tests/bench-browser/run.mjs) and the client size.
    Browser(BrowserArgs),
    /// Rewrites RESULTS.md and chart.svg from a report.json.
    Report {
        #[arg(long, default_value = "docs/bench/report.json")]
        from: PathBuf,
    },
}

#[derive(Args, Debug)]
struct AllArgs {
    /// Seconds of publishing per fan-out scenario.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Only these scenarios (comma-separated: 1,2a,2b,2c,2d,2e,3,4,5).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Transports to run.
    #[arg(long, value_delimiter = ',', value_enum, default_values = ["sse", "ws"])]
    transports: Vec<Sel>,
    /// Also run 2a, 2c and 3 with a one-thread gateway.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    one_worker: bool,
    #[arg(long, default_value_t = 10_000)]
    idle_conns: usize,
    #[arg(long, default_value_t = 5000)]
    storm_clients: usize,
    /// Divide every subscriber count by this (a quick trial of the whole run).
    #[arg(long, default_value_t = 1)]
    scale_down: usize,
    #[arg(long)]
    no_browser: bool,
    #[command(flatten)]
    browser: BrowserArgs,
    /// Directory for report.json, RESULTS.md and chart.svg.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
    /// Mark the report as preliminary, with this note.
    #[arg(long)]
    preliminary: Option<String>,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[arg(long, default_value_t = 1000)]
    subs: usize,
    /// Events per second in total; omit for the maximum rate without loss.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 1)]
    topics: usize,
    #[arg(long, value_enum, default_value = "sse")]
    transport: Sel,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ChaosArgs {
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Events per second, on one topic.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Seconds of publishing (cuts happen only meanwhile).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Shortest life of a connection before it is cut, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    cut_min_ms: u64,
    /// Longest life of a connection before it is cut, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    cut_max_ms: u64,
    #[arg(long, value_delimiter = ',', value_enum, default_values = ["clean", "unread", "read"])]
    styles: Vec<chaos::Style>,
    #[arg(long, value_delimiter = ',', value_enum, default_values = ["sse", "ws"])]
    transports: Vec<sub::Transport>,
    /// Whether clients send an `instance` (so a reconnect supersedes its
    /// stale stream): on, off, or both (each run twice).
    #[arg(long, value_enum, default_value = "on")]
    instance: InstanceSel,
    /// Also write every row as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InstanceSel {
    On,
    Off,
    Both,
}

#[derive(Args, Debug, Clone)]
pub struct BrowserArgs {
    /// Events per run.
    #[arg(long, default_value_t = 20_000)]
    browser_events: usize,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    browser_runs: usize,
    /// Rebuild the npm package with `scripts/build-client --pack` first.
    #[arg(long)]
    build_client: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (soft, hard) = procfs::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.opts.bench_threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run(cli, (soft, hard)))
}

fn common(o: &Opts) -> Common {
    Common {
        target: gateway::Target {
            bin: o.gateway_bin.clone(),
            url: o.url,
            pid: o.pid,
            workers: Some(o.workers),
            outbox_bytes: o.outbox_bytes,
            extra_args: o.gateway_args.clone(),
            wrapper: o
                .gateway_wrapper
                .as_deref()
                .map(|w| w.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            log_dir: PathBuf::from("target/bench-logs"),
        },
        connect_concurrency: o.connect_concurrency,
        event_bytes: o.event_bytes,
        via: o.publish,
        window: o.window,
        warmup: Duration::from_millis(o.warmup_ms),
        drain_timeout: Duration::from_secs(o.drain_timeout_s),
        read_buf: o.read_buf.max(1024),
        run_id: format!(
            "{:x}",
            stats::now_ns() ^ u64::from(std::process::id()) << 32
        ),
    }
}

fn new_report(nofile: (u64, u64)) -> Report {
    Report {
        generated_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: procfs::machine(),
        nofile_limit: nofile,
        ..Report::default()
    }
}

/// One line per row on stderr, as the run goes.
fn say(row: &Row) {
    let lat = row
        .latency
        .map(|l| {
            format!(
                " p50/p99/p999 {:.2}/{:.2}/{:.2} ms",
                l.p50_ms, l.p99_ms, l.p999_ms
            )
        })
        .unwrap_or_default();
    let cpu = row
        .cpu_s_per_million_median
        .or(row.cpu_s_per_million)
        .map(|c| format!(" cpu/M {c:.2}s"))
        .unwrap_or_default();
    let rate = row
        .deliveries_per_s_median
        .or(row.deliveries_per_s)
        .map(|d| format!(" {d:.0} deliv/s"))
        .unwrap_or_default();
    let rss = row
        .rss_per_conn_bytes
        .map(|b| format!(" rss/conn {:.1} KiB", b / 1024.0))
        .unwrap_or_default();
    let replay = row
        .replay
        .map(|p| format!(" replay p50/p99 {:.0}/{:.0} ms", p.p50_ms, p.p99_ms))
        .unwrap_or_default();
    let per_write = row
        .deliveries_per_write
        .map(|d| format!(" ev/write {d:.2}"))
        .unwrap_or_default();
    let conn = row
        .connect_per_s
        .map(|c| format!(" setup {c:.0}/s"))
        .unwrap_or_default();
    eprintln!(
        "[{} {}{}] subs {}{rate}{lat}{cpu}{per_write}{rss}{replay}{conn} lost {} dup {} cut {}{}",
        row.scenario,
        row.transport,
        row.workers.map(|w| format!(" w{w}")).unwrap_or_default(),
        row.subs,
        row.lost,
        row.duplicated,
        row.ended_early,
        if row.errors.is_empty() {
            String::new()
        } else {
            format!(" ERRORS: {}", row.errors.join("; "))
        }
    );
}

fn check_limit(n: usize, hard: u64) {
    // The bench holds one descriptor per connection, and so does the gateway.
    if (n as u64) + 200 > hard {
        eprintln!(
            "warning: RLIMIT_NOFILE hard limit {hard} is too low for {n} connections; raise it (ulimit -Hn) or expect failures"
        );
    }
}

fn write_single(row: &Row, out: Option<&PathBuf>, nofile: (u64, u64)) {
    say(row);
    let mut r = new_report(nofile);
    r.rows.push(row.clone());
    let json = serde_json::to_string_pretty(&r).expect("serializes");
    match out {
        Some(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).ok();
            }
            if let Err(e) = std::fs::write(p, json + "\n") {
                eprintln!("cannot write {}: {e}", p.display());
            }
        }
        None => println!("{json}"),
    }
}

async fn run(cli: Cli, nofile: (u64, u64)) -> ExitCode {
    let c = common(&cli.opts);
    match cli.cmd {
        Cmd::Smoke => smoke::run(&c).await,
        Cmd::Durable {
            duration,
            restart_events,
            out,
        } => {
            match durable::all(
                &c.target,
                Duration::from_secs(duration),
                c.event_bytes,
                restart_events,
            )
            .await
            {
                Ok(r) => {
                    println!("{}", durable::markdown(&r));
                    if let Some(path) = out {
                        let json = serde_json::to_string_pretty(&r).expect("serializable");
                        if let Err(e) = std::fs::write(&path, json) {
                            eprintln!("{}: {e}", path.display());
                            return ExitCode::FAILURE;
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("durable: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Fanout(a) => {
            check_limit(a.subs, nofile.1);
            let f = Fanout {
                id: "custom".into(),
                title: format!(
                    "{} subs × {}",
                    a.subs,
                    a.rate.map_or("max".into(), |r| format!("{r} ev/s"))
                ),
                subs: a.subs,
                topics: a.topics,
                sel: a.transport,
                rate: a.rate,
                duration: Duration::from_secs(a.duration),
                workers: None,
                via: None,
                gateway_args: Vec::new(),
            };
            let row = scenario::fanout(&c, &f).await;
            write_single(&row, a.out.as_ref(), nofile);
            if row.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Idle {
            conns,
            transport,
            out,
        } => {
            check_limit(conns, nofile.1);
            let row = scenario::idle(&c, "1", "idle connections", conns, transport).await;
            write_single(&row, out.as_ref(), nofile);
            if row.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Storm {
            clients,
            gap,
            transport,
            reconnect_concurrency,
            out,
        } => {
            check_limit(clients * 2, nofile.1);
            let row = scenario::storm(
                &c,
                "5",
                "resume storm",
                clients,
                gap,
                transport,
                None,
                reconnect_concurrency.unwrap_or(clients),
            )
            .await;
            write_single(&row, out.as_ref(), nofile);
            if row.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Chaos(a) => chaos_runs(&c, a).await,
        Cmd::Groups {
            group_workers,
            batch,
            events,
            rate,
            duration,
        } => {
            let plan = groups::Plan {
                workers: group_workers,
                batch,
                events,
                rate,
                duration: Duration::from_secs(duration),
                event_bytes: c.event_bytes,
            };
            let o = groups::run(&c.target, &plan).await;
            println!("{}", serde_json::to_string_pretty(&o).expect("serializes"));
            if o.error.is_none() && o.duplicates == 0 && o.missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Webhooks {
            inflight,
            events,
            rate,
            duration,
            fail,
        } => {
            let plan = webhooks::Plan {
                inflight,
                events,
                rate,
                duration: Duration::from_secs(duration),
                fail,
                event_bytes: c.event_bytes,
            };
            let o = webhooks::run(&c.target, &plan).await;
            println!("{}", serde_json::to_string_pretty(&o).expect("serializes"));
            if o.error.is_none() && o.duplicates == 0 && o.missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Browser(b) => {
            let mut r = new_report(nofile);
            browser::run(&c, &b, &mut r).await;
            let json = serde_json::to_string_pretty(&serde_json::json!({
                "browser": r.browser, "client_size": r.client_size
            }))
            .expect("serializes");
            std::fs::create_dir_all("docs/bench").ok();
            if let Err(e) = std::fs::write("docs/bench/browser.json", json.clone() + "\n") {
                eprintln!("cannot write docs/bench/browser.json: {e}");
            }
            println!("{json}");
            if r.browser.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Report { from } => {
            let text = match std::fs::read_to_string(&from) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: {e}", from.display());
                    return ExitCode::FAILURE;
                }
            };
            let mut r: Report = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{}: {e}", from.display());
                    return ExitCode::FAILURE;
                }
            };
            r.targets = report::targets(&r, Some(cli.opts.workers));
            let dir = from.parent().map(PathBuf::from).unwrap_or_default();
            let name = from.file_name().map(|n| n.to_string_lossy().into_owned());
            match report::write(&r, &dir, name.as_deref().unwrap_or("report.json")) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::All(a) => all(&c, &cli.opts, a, nofile).await,
    }
}

async fn chaos_runs(c: &Common, a: ChaosArgs) -> ExitCode {
    let instances: &[bool] = match a.instance {
        InstanceSel::On => &[true],
        InstanceSel::Off => &[false],
        InstanceSel::Both => &[false, true],
    };
    let mut rows = Vec::new();
    eprintln!("{}", chaos::TABLE_HEAD);
    for &transport in &a.transports {
        for &style in &a.styles {
            for &instance in instances {
                let plan = chaos::Plan {
                    clients: a.clients,
                    rate: a.rate,
                    duration: Duration::from_secs(a.duration),
                    cut_ms: (a.cut_min_ms, a.cut_max_ms.max(a.cut_min_ms)),
                    style,
                    transport,
                    instance,
                };
                let row = chaos::run(c, &plan).await;
                eprintln!("{}", row.markdown());
                if !row.errors.is_empty() {
                    eprintln!("  errors: {}", row.errors.join("; "));
                }
                rows.push(row);
            }
        }
    }
    println!("{}", chaos::TABLE_HEAD);
    for r in &rows {
        println!("{}", r.markdown());
    }
    if let Some(p) = &a.out {
        let json = serde_json::to_string_pretty(&rows).expect("serializes");
        if let Err(e) = std::fs::write(p, json + "\n") {
            eprintln!("cannot write {}: {e}", p.display());
        }
    }
    if rows.iter().all(chaos::Row::clean) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn all(c: &Common, o: &Opts, a: AllArgs, nofile: (u64, u64)) -> ExitCode {
    let scale = a.scale_down.max(1);
    let wanted = |id: &str| a.only.is_empty() || a.only.iter().any(|x| x == id);
    let d = Duration::from_secs(a.duration);
    let w = Some(o.workers);
    let mut report = new_report(nofile);
    if let Some(note) = &a.preliminary {
        report.preliminary = true;
        report.note = note.clone();
    }
    check_limit(a.idle_conns.max(a.storm_clients * 2) / scale, nofile.1);
    let fan = |id: &str,
               title: &str,
               subs: usize,
               topics: usize,
               rate: Option<f64>,
               sel: Sel,
               workers: Option<usize>| Fanout {
        id: id.into(),
        title: title.into(),
        subs: (subs / scale).max(1),
        topics,
        sel,
        rate,
        duration: d,
        workers,
        via: None,
        gateway_args: Vec::new(),
    };
    let one = a.one_worker.then_some(Some(1));
    let mut plans: Vec<Fanout> = Vec::new();
    for &t in &a.transports {
        for workers in std::iter::once(w).chain(one) {
            if wanted("2a") {
                plans.push(fan(
                    "2a",
                    "1k subs × 100 ev/s",
                    1000,
                    1,
                    Some(100.0),
                    t,
                    workers,
                ));
            }
        }
        if wanted("2b") {
            plans.push(fan("2b", "10k subs × 10 ev/s", 10_000, 1, Some(10.0), t, w));
        }
        for workers in std::iter::once(w).chain(one) {
            if wanted("2c") {
                plans.push(fan(
                    "2c",
                    "5k subs × 20 ev/s",
                    5000,
                    1,
                    Some(20.0),
                    t,
                    workers,
                ));
            }
        }
        // The opt-in --write-delay, at delays long enough to coalesce at
        // these rates (10 ms and 50 ms between one subscriber's events).
        for (id, title, subs, rate, delay) in [
            (
                "2d",
                "1k subs × 100 ev/s, --write-delay 50ms",
                1000,
                100.0,
                "50ms",
            ),
            (
                "2e",
                "5k subs × 20 ev/s, --write-delay 100ms",
                5000,
                20.0,
                "100ms",
            ),
        ] {
            if wanted(id) {
                let mut f = fan(id, title, subs, 1, Some(rate), t, w);
                f.gateway_args = vec![format!("--write-delay={delay}")];
                plans.push(f);
            }
        }
        for workers in std::iter::once(w).chain(one) {
            if wanted("3") {
                plans.push(fan(
                    "3",
                    "1k subs, max rate without loss",
                    1000,
                    1,
                    None,
                    t,
                    workers,
                ));
            }
        }
        if wanted("4") {
            plans.push(fan(
                "4",
                "100 topics × 100 subs, 1,000 ev/s spread",
                10_000,
                100,
                Some(1000.0),
                t,
                w,
            ));
        }
    }
    let save = |report: &mut Report| {
        report.targets = report::targets(report, w);
        if let Err(e) = report::write(report, &a.out, "report.json") {
            eprintln!("cannot write the report: {e}");
        }
    };
    if wanted("1") {
        for &t in &a.transports {
            let row = scenario::idle(c, "1", "10k idle connections", a.idle_conns / scale, t).await;
            say(&row);
            report.rows.push(row);
            save(&mut report);
        }
    }
    for f in &plans {
        let row = scenario::fanout(c, f).await;
        say(&row);
        report.rows.push(row);
        save(&mut report);
    }
    if wanted("5") {
        for &t in &a.transports {
            let n = a.storm_clients / scale;
            let row = scenario::storm(
                c,
                "5",
                "resume storm, 5k clients, 100 back",
                n,
                100,
                t,
                w,
                n,
            )
            .await;
            say(&row);
            report.rows.push(row);
            save(&mut report);
            // The same storm with reconnects paced under the listen backlog:
            // what the gateway does once the kernel does not drop SYNs.
            let row = scenario::storm(
                c,
                "5p",
                "resume storm, paced 100 at a time",
                n,
                100,
                t,
                w,
                100,
            )
            .await;
            say(&row);
            report.rows.push(row);
            save(&mut report);
        }
    }
    if !a.no_browser {
        browser::run(c, &a.browser, &mut report).await;
    }
    // Keep the scenario order of the issue in the table.
    let order = ["1", "2a", "2b", "2c", "3", "4", "5", "5p"];
    report.rows.sort_by_key(|r| {
        (
            order.iter().position(|x| *x == r.scenario).unwrap_or(99),
            r.transport.clone(),
            r.workers.map_or(0, |w| usize::MAX - w),
        )
    });
    save(&mut report);
    eprintln!(
        "wrote {}/report.json, RESULTS.md, chart.svg",
        a.out.display()
    );
    for t in &report.targets {
        eprintln!(
            "target: {} [{}]: {} (limit {}) {}",
            t.target,
            t.row,
            t.measured.map_or("–".into(), |m| format!("{m:.3}")),
            t.limit,
            match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            }
        );
    }
    ExitCode::SUCCESS
}
