//! The report: one JSON file per run, a Markdown summary with a table of
//! every scenario and transport, the targets of issue 7, and an SVG chart.

use crate::stats::Percentiles;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One scenario on one transport (and one gateway worker count).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    pub title: String,
    pub transport: String,
    /// `TOKIO_WORKER_THREADS` of the gateway; null: tokio's default.
    pub workers: Option<usize>,
    pub subs: usize,
    pub topics: usize,
    /// Events per second published (all topics); null: as fast as possible without loss.
    pub rate: Option<f64>,
    /// Size of each published envelope.
    pub event_bytes: usize,
    /// How long events were published (scenario 5: the storm; 1: connection set-up).
    pub duration_s: f64,
    pub published: u64,
    pub publish_duplicates: u64,
    pub deliveries: u64,
    pub deliveries_per_s: Option<f64>,
    /// Median over one-second windows.
    pub deliveries_per_s_median: Option<f64>,
    pub latency: Option<Percentiles>,
    pub lost: u64,
    pub duplicated: u64,
    /// Subscribers whose connection ended before the run did.
    pub ended_early: usize,
    pub gateway_cpu_s: Option<f64>,
    /// Of `gateway_cpu_s`, the share spent in the kernel (system time).
    pub gateway_sys_share: Option<f64>,
    /// Gateway CPU-seconds per million deliveries, over the whole run.
    pub cpu_s_per_million: Option<f64>,
    /// The same, median over one-second windows.
    pub cpu_s_per_million_median: Option<f64>,
    /// Events per write (the gateway's delivered events over its writes
    /// that carried events): above 1, writes were coalesced.
    #[serde(default)]
    pub deliveries_per_write: Option<f64>,
    /// The load generator's own CPU over the run.
    pub bench_cpu_s: Option<f64>,
    pub throttled_s: Option<f64>,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_per_conn_bytes: Option<f64>,
    pub connect_per_s: Option<f64>,
    pub connect_p99_ms: Option<f64>,
    /// Scenario 5: from reconnect to the last missed event, per client.
    pub replay: Option<Percentiles>,
    pub recovered_false: usize,
    /// `eventwire_disconnects_total` by reason at the end of the run.
    pub disconnects: Vec<(String, f64)>,
    pub loadavg_before: Option<f64>,
    pub gateway_args: Vec<String>,
    pub errors: Vec<String>,
}

impl Row {
    /// Zero loss, zero duplicates, nobody cut off, nothing failed.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.ended_early == 0 && self.errors.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub generated_unix: u64,
    pub preliminary: bool,
    pub note: String,
    pub command: String,
    pub machine: serde_json::Value,
    pub nofile_limit: (u64, u64),
    pub rows: Vec<Row>,
    pub browser: Option<serde_json::Value>,
    pub client_size: Option<serde_json::Value>,
    pub targets: Vec<Target>,
}

/// One target of issue 7, against what was measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Target {
    pub target: String,
    pub row: String,
    pub limit: f64,
    /// Whether the measured value must be at most (true) or at least the limit.
    pub at_most: bool,
    pub measured: Option<f64>,
    pub unit: String,
    pub met: Option<bool>,
}

fn find<'a>(
    rows: &'a [Row],
    scenario: &str,
    transport: &str,
    workers: Option<usize>,
) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.transport == transport && r.workers == workers)
}

fn label(r: &Row) -> String {
    format!(
        "{} {}{}",
        r.scenario,
        r.transport,
        r.workers.map(|w| format!(" w{w}")).unwrap_or_default()
    )
}

/// Evaluates the targets against the rows (and browser/size figures).
pub fn targets(report: &Report, workers: Option<usize>) -> Vec<Target> {
    let mut out = Vec::new();
    let rows = &report.rows;
    let mut push = |target: &str,
                    row: String,
                    limit: f64,
                    at_most: bool,
                    measured: Option<f64>,
                    unit: &str| {
        out.push(Target {
            target: target.to_owned(),
            row,
            limit,
            at_most,
            met: measured.map(|m| if at_most { m <= limit } else { m >= limit }),
            measured,
            unit: unit.to_owned(),
        });
    };
    let cpu = |r: &Row| r.cpu_s_per_million_median.or(r.cpu_s_per_million);
    for t in ["sse", "ws"] {
        // 2d and 2e are 2a and 2c with the opt-in --write-delay.
        for (scenario, limit) in [("2a", 2.0), ("2c", 4.0), ("2d", 2.0), ("2e", 4.0)] {
            for w in [workers, Some(1)] {
                if let Some(r) = find(rows, scenario, t, w) {
                    push(
                        &format!("gateway CPU per 1M deliveries, {} ≤ {limit}", r.title),
                        label(r),
                        limit,
                        true,
                        cpu(r),
                        "CPU-s",
                    );
                }
            }
        }
    }
    for t in ["sse", "ws"] {
        for w in [workers, Some(1)] {
            if let Some(r) = find(rows, "3", t, w) {
                let ok = r.clean();
                push(
                    "≥ 600,000 deliveries/s without loss, 1,000 subscribers",
                    label(r),
                    600_000.0,
                    false,
                    if ok {
                        r.deliveries_per_s_median.or(r.deliveries_per_s)
                    } else {
                        Some(0.0)
                    },
                    "deliveries/s",
                );
            }
        }
    }
    for t in ["sse", "ws"] {
        for (scenario, limit) in [("2a", 10.0), ("2b", 50.0)] {
            if let Some(r) = find(rows, scenario, t, workers) {
                push(
                    &format!("p99 latency, {} ≤ {limit} ms", r.title),
                    label(r),
                    limit,
                    true,
                    r.latency.map(|l| l.p99_ms),
                    "ms",
                );
            }
        }
    }
    for t in ["sse", "ws"] {
        if let Some(r) = find(rows, "1", t, workers) {
            push(
                "RSS per idle connection ≤ 8 KiB",
                label(r),
                8192.0,
                true,
                r.rss_per_conn_bytes,
                "bytes",
            );
        }
    }
    for t in ["sse", "ws"] {
        if let Some(r) = find(rows, "5", t, workers) {
            push(
                "resume storm replay p99 ≤ 1 s",
                label(r),
                1000.0,
                true,
                r.replay.map(|p| p.p99_ms),
                "ms",
            );
        }
    }
    if let Some(b) = &report.browser {
        push(
            "browser dispatch ≥ 0.8 × EventSource (EventChannel over SSE)",
            "browser".into(),
            0.8,
            false,
            b["ratio_sse_median"].as_f64(),
            "ratio",
        );
        push(
            "browser dispatch ≥ 0.8 × EventSource (EventChannel over WebSocket)",
            "browser".into(),
            0.8,
            false,
            b["ratio_ws_median"].as_f64(),
            "ratio",
        );
    }
    if let Some(s) = &report.client_size {
        push(
            "client ≤ 20 KB gzip (20,000 B: wasm + JS, gzip -9)",
            "client".into(),
            20_000.0,
            true,
            s["total_gzip_bytes"].as_f64(),
            "bytes",
        );
    }
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.decimals$}"))
}

fn thousands(v: Option<f64>) -> String {
    let Some(v) = v else { return "–".into() };
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// RESULTS.md: the table of every row, the targets, the browser run.
pub fn markdown(r: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# eventwire benchmark results\n");
    if r.preliminary {
        let _ = writeln!(
            md,
            "> **Preliminary.** {}\n",
            if r.note.is_empty() {
                "Measured on a shared, busy machine."
            } else {
                &r.note
            }
        );
    }
    let m = &r.machine;
    let _ = writeln!(
        md,
        "Machine: {} × {}, {} GiB, kernel {}; load average {} at start. The gateway and the load generator share it. \
         Command: `{}`. Full figures: [report.json](report.json).\n",
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["memory_gib"],
        m["kernel"].as_str().unwrap_or("?"),
        m["loadavg_1m_at_start"],
        r.command
    );
    let _ = writeln!(md, "![chart](chart.svg)\n");
    let _ = writeln!(
        md,
        "Where the gateway spends its time, and what to change: [PROFILE.md](PROFILE.md).\n\n\
         Reproduce: `cargo build --release -p eventwire-gateway -p eventwire-bench && bash scripts/build-client --pack && \
         target/release/eventwire-bench all` (about 4 minutes; `--duration`, `--only 2a,3`, `--transports ws`, \
         `--no-browser` narrow it). CI's correctness run: `target/release/eventwire-bench smoke`.\n"
    );
    let _ = writeln!(md, "## Targets (issue 7)\n");
    let _ = writeln!(md, "| target | run | measured | limit | met |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    for t in &r.targets {
        let measured = match t.unit.as_str() {
            "deliveries/s" | "bytes" => thousands(t.measured),
            "ratio" => opt(t.measured, 2),
            _ => opt(t.measured, 2),
        };
        let limit = match t.unit.as_str() {
            "deliveries/s" | "bytes" => thousands(Some(t.limit)),
            _ => format!("{}", t.limit),
        };
        let met = match t.met {
            Some(true) => "met".to_owned(),
            Some(false) => {
                let m = t.measured.unwrap_or(0.0);
                let by = if t.at_most {
                    m / t.limit
                } else {
                    t.limit / m.max(1e-9)
                };
                if by.is_finite() && by < 1000.0 {
                    format!("**missed** ({by:.2}×)")
                } else {
                    "**missed**".to_owned()
                }
            }
            None => "not measured".to_owned(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {} | {} |",
            t.target, t.row, measured, t.unit, limit, met
        );
    }
    let _ = writeln!(md, "\n## Every scenario × transport\n");
    let _ = writeln!(
        md,
        "CPU = gateway CPU-seconds (user + system, `/proc/<pid>/stat`) per million deliveries: median of 1-second windows, then over the whole run. \
         Kernel share = system time / (user + system) of the gateway: on loopback the sender's write also runs the receiver's TCP input path, so it is charged to the gateway. \
         Latency is publish (in the payload) to the subscriber's read, same clock. `w1` = gateway with `TOKIO_WORKER_THREADS=1`; otherwise 2 workers.\n"
    );
    let _ = writeln!(
        md,
        "| scenario | transport | subs × rate | deliveries/s: run (median) | p50 / p99 / p99.9 ms | CPU-s per 1M (median / run) | kernel share | lost | dup | cut off | RSS/conn | setup conn/s | replay p50 / p99 ms | bench CPU-s | notes |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for row in &r.rows {
        let rate = match row.rate {
            Some(rate) => format!("{} × {} ev/s", thousands(Some(row.subs as f64)), rate),
            None if row.scenario == "3" => format!("{} × max", thousands(Some(row.subs as f64))),
            None => thousands(Some(row.subs as f64)),
        };
        let topics = if row.topics > 1 {
            format!(" ({} topics)", row.topics)
        } else {
            String::new()
        };
        let lat = row.latency.map_or("–".into(), |l| {
            format!("{:.2} / {:.2} / {:.2}", l.p50_ms, l.p99_ms, l.p999_ms)
        });
        let replay = row.replay.map_or("–".into(), |l| {
            format!("{:.0} / {:.0}", l.p50_ms, l.p99_ms)
        });
        let mut notes: Vec<String> = row.errors.iter().take(2).cloned().collect();
        if row.recovered_false > 0 {
            notes.push(format!("{} recovered:false", row.recovered_false));
        }
        for (reason, n) in &row.disconnects {
            if *n > 0.0 {
                notes.push(format!("{n} {reason}"));
            }
        }
        let _ = writeln!(
            md,
            "| {} {} | {}{} | {}{} | {} ({}) | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.title,
            row.transport,
            row.workers.map(|w| format!(" w{w}")).unwrap_or_default(),
            rate,
            topics,
            thousands(row.deliveries_per_s),
            thousands(row.deliveries_per_s_median),
            lat,
            opt(row.cpu_s_per_million_median, 2),
            opt(row.cpu_s_per_million, 2),
            row.gateway_sys_share
                .map_or("–".into(), |x| format!("{:.0}%", x * 100.0)),
            row.lost,
            row.duplicated,
            row.ended_early,
            row.rss_per_conn_bytes
                .map_or("–".into(), |b| format!("{:.1} KiB", b / 1024.0)),
            thousands(row.connect_per_s),
            replay,
            opt(row.bench_cpu_s, 1),
            notes.join("; ").replace('|', "/"),
        );
    }
    if let Some(b) = &r.browser {
        let _ = writeln!(
            md,
            "\n## Browser dispatch (headless Chromium {})\n",
            b["chromium"].as_str().unwrap_or("?")
        );
        let _ = writeln!(
            md,
            "{} events of about {} bytes per client and run, published from Node in POST batches of {} ({} in flight); \
             events/s from the first to the last event reaching a JS handler; median of {} runs. \
             *live*: the client receives while Node publishes (it can be capped by the publisher, see its rate). \
             *backlog*: the page is kept busy while Node publishes, then dispatches the queued events as fast as it can: \
             the client's own cost per event. The target uses the backlog ratio.\n",
            b["events"], b["event_bytes"], b["batch"], b["parallel_posts"], b["runs"]
        );
        let _ = writeln!(md, "| client | live events/s | backlog events/s |");
        let _ = writeln!(md, "|---|---|---|");
        for (live, backlog, name) in [
            (
                "eventsource_median",
                "backlog_eventsource_median",
                "plain EventSource + JSON.parse",
            ),
            (
                "channel_sse_median",
                "backlog_channel_sse_median",
                "EventChannel, transport sse",
            ),
            (
                "websocket_median",
                "backlog_websocket_median",
                "plain WebSocket + JSON.parse",
            ),
            (
                "channel_ws_median",
                "backlog_channel_ws_median",
                "EventChannel, transport websocket",
            ),
        ] {
            let _ = writeln!(
                md,
                "| {name} | {} | {} |",
                thousands(b[live].as_f64()),
                thousands(b[backlog].as_f64())
            );
        }
        let _ = writeln!(
            md,
            "| publisher (Node) | {} | |",
            thousands(b["publish_median"].as_f64())
        );
        let _ = writeln!(
            md,
            "\nRatio to EventSource, EventChannel over SSE: **{}** backlog, {} live; over WebSocket: {} backlog, {} live. \
             EventChannel over WebSocket against a plain WebSocket: {} backlog, {} live.",
            opt(b["ratio_sse_backlog_median"].as_f64(), 2),
            opt(b["ratio_sse_live_median"].as_f64(), 2),
            opt(b["ratio_ws_backlog_median"].as_f64(), 2),
            opt(b["ratio_ws_live_median"].as_f64(), 2),
            opt(b["ratio_ws_to_websocket_backlog_median"].as_f64(), 2),
            opt(b["ratio_ws_to_websocket_live_median"].as_f64(), 2)
        );
        if let Some(errs) = b["errors"].as_array().filter(|e| !e.is_empty()) {
            let _ = writeln!(
                md,
                "\nBrowser run errors: {}",
                errs.iter()
                    .filter_map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    if let Some(s) = &r.client_size {
        let _ = writeln!(
            md,
            "\nClient package size: {} B gzip -9 (wasm {} B gzip + JS), {} B raw: `{}`.",
            s["total_gzip_bytes"],
            s["wasm_gzip_bytes"],
            s["total_raw_bytes"],
            s["line"].as_str().unwrap_or("")
        );
    }
    md
}

/// The chart: CPU-s per million deliveries and p99 latency per fan-out row.
pub fn chart(r: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let rows: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| x.cpu_s_per_million.is_some() && x.latency.is_some())
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let idle: Vec<&Row> = r
        .rows
        .iter()
        .filter(|x| x.scenario == "1" && x.rss_per_conn_bytes.is_some())
        .collect();
    let root = SVGBackend::new(path, (1100, 1080)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, rest) = root.split_vertically(380);
    let (middle, bottom) = rest.split_vertically(380);
    type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
    /// Where, caption, the rows, one value per row, a target line.
    type Panel<'a, 'b, 'r> = (
        &'b Area<'a>,
        &'static str,
        Vec<&'r Row>,
        Vec<f64>,
        Option<f64>,
    );
    let panels: [Panel; 3] = [
        (
            &top,
            "Gateway CPU-s per million deliveries (lower is better; red: the 2.0 target of 2a)",
            rows.clone(),
            rows.iter()
                .map(|x| {
                    x.cpu_s_per_million_median
                        .or(x.cpu_s_per_million)
                        .unwrap_or(0.0)
                })
                .collect(),
            Some(2.0),
        ),
        (
            &middle,
            "p99 latency, ms (lower is better; scenario 3 runs at the maximum rate, its queues are full by design)",
            rows.clone(),
            rows.iter()
                .map(|x| x.latency.map_or(0.0, |l| l.p99_ms))
                .collect(),
            None,
        ),
        (
            &bottom,
            "Gateway RSS per idle connection, KiB (red: the 8 KiB target)",
            idle.clone(),
            idle.iter()
                .map(|x| x.rss_per_conn_bytes.unwrap_or(0.0) / 1024.0)
                .collect(),
            Some(8.0),
        ),
    ];
    for (area, caption, rows, values, line) in panels {
        if rows.is_empty() {
            continue;
        }
        let names: Vec<String> = rows.iter().map(|x| label(x)).collect();
        let max = values
            .iter()
            .copied()
            .fold(line.unwrap_or(0.0), f64::max)
            .max(0.01)
            * 1.15;
        let n = values.len();
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0..max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", 11))
            .y_label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let color = if rows[i].transport == "ws" {
                    RGBColor(214, 120, 40)
                } else {
                    RGBColor(50, 110, 180)
                };
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), *v),
                    ],
                    color.filled(),
                );
                bar.set_margin(0, 0, 4, 4);
                bar
            }))
            .map_err(|e| e.to_string())?;
        if let Some(limit) = line {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (SegmentValue::Exact(0), limit),
                        (SegmentValue::Exact(n), limit),
                    ],
                    RED.stroke_width(2),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes report.json (or `json_name`), RESULTS.md and chart.svg into `dir`.
pub fn write(r: &Report, dir: &Path, json_name: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(r).expect("the report serializes");
    std::fs::write(dir.join(json_name), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("RESULTS.md"), markdown(r)).map_err(|e| e.to_string())?;
    chart(r, &dir.join("chart.svg"))
}
