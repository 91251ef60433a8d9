//! `eventwire-bench smoke`: about five seconds of real traffic on both
//! transports, checking only correctness (every event once, in order, to
//! every subscriber; resume without loss). It asserts no speed, so it can
//! run in CI on a busy machine.

use crate::chaos;
use crate::publish::Via;
use crate::report::Row;
use crate::scenario::{self, Common, Fanout, Sel};
use crate::sub::Transport;
use std::process::ExitCode;
use std::time::Duration;

struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
            println!("ok   {name}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {}", detail());
        }
    }

    fn delivery(&mut self, what: &str, row: &Row) {
        self.check(
            &format!("{what}: no setup or publish errors"),
            row.errors.is_empty(),
            || row.errors.join("; "),
        );
        self.check(
            &format!("{what}: events were published"),
            row.published > 0,
            || "nothing was published".into(),
        );
        self.check(&format!("{what}: zero events lost"), row.lost == 0, || {
            format!("{} lost", row.lost)
        });
        self.check(
            &format!("{what}: zero duplicates"),
            row.duplicated == 0,
            || format!("{} duplicated", row.duplicated),
        );
        self.check(
            &format!("{what}: no subscriber cut off"),
            row.ended_early == 0,
            || {
                format!(
                    "{} ended early; disconnects {:?}",
                    row.ended_early, row.disconnects
                )
            },
        );
    }
}

pub async fn run(c: &Common) -> ExitCode {
    let mut checks = Checks {
        passed: 0,
        failed: 0,
    };
    let mut c = c.clone();
    c.warmup = Duration::ZERO;
    let http = Fanout {
        id: "smoke".into(),
        title: "smoke, POST".into(),
        subs: 300,
        topics: 3,
        sel: Sel::Mix,
        rate: Some(600.0),
        duration: Duration::from_millis(2500),
        workers: None,
        via: Some(Via::Http),
        gateway_args: Vec::new(),
    };
    let row = scenario::fanout(&c, &http).await;
    checks.delivery("300 subscribers (SSE + WS), 3 topics, POST batches", &row);
    checks.check(
        "every subscriber got every event of its topic",
        row.deliveries == row.published * 100,
        || {
            format!(
                "{} deliveries for {} events × 100",
                row.deliveries, row.published
            )
        },
    );

    let emit = Fanout {
        id: "smoke".into(),
        title: "smoke, emit".into(),
        subs: 100,
        topics: 1,
        sel: Sel::Mix,
        rate: Some(300.0),
        duration: Duration::from_millis(1500),
        workers: None,
        via: Some(Via::Ws),
        gateway_args: Vec::new(),
    };
    let row = scenario::fanout(&c, &emit).await;
    checks.delivery("100 subscribers (SSE + WS), WebSocket emit", &row);

    let row = scenario::storm(&c, "smoke", "smoke, resume", 100, 20, Sel::Mix, None, 100).await;
    checks.delivery("100 clients resume 20 events back (SSE + WS)", &row);
    checks.check(
        "every resumed client got every missed event",
        row.replay.is_some_and(|p| p.samples == 100),
        || format!("{:?}", row.replay),
    );
    checks.check(
        "every resume was recovered:true",
        row.recovered_false == 0,
        || format!("{} recovered:false", row.recovered_false),
    );

    // Chaos, small and fast: clients cut every 0.3–0.9 s resume by position
    // and instance; one run per transport, each with a stale-socket style.
    for (transport, style) in [
        (Transport::Sse, chaos::Style::Read),
        (Transport::Ws, chaos::Style::Unread),
    ] {
        let plan = chaos::Plan {
            clients: 60,
            rate: 50.0,
            duration: Duration::from_secs(3),
            cut_ms: (300, 900),
            style,
            transport,
            instance: true,
        };
        let row = chaos::run(&c, &plan).await;
        let what = format!("chaos, {transport:?}, {} cuts", style.label());
        checks.check(&format!("{what}: no errors"), row.errors.is_empty(), || {
            row.errors.join("; ")
        });
        checks.check(
            &format!("{what}: clients were cut"),
            row.reconnects > 0,
            || "no reconnect happened".into(),
        );
        checks.check(
            &format!("{what}: every event processed once by every client"),
            row.published > 0 && row.lost == 0 && row.duplicated == 0,
            || {
                format!(
                    "{} published, {} lost, {} duplicated",
                    row.published, row.lost, row.duplicated
                )
            },
        );
        checks.check(
            &format!("{what}: every stale stream was superseded"),
            row.open_at_end == Some(plan.clients as f64),
            || {
                format!(
                    "{:?} streams open for {} clients",
                    row.open_at_end, plan.clients
                )
            },
        );
    }

    println!(
        "bench-smoke: {} passed, {} failed",
        checks.passed, checks.failed
    );
    if checks.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
