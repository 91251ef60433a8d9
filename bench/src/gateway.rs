//! The gateway under test: one started fresh for a scenario (and stopped at
//! its end), or one already running that the bench only talks to.

use crate::http;
use crate::procfs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How to reach (or start) the gateway.
#[derive(Debug, Clone)]
pub struct Target {
    /// Start this binary per scenario...
    pub bin: PathBuf,
    /// ...or use a running gateway at this address (then `pid` gives /proc readings).
    pub url: Option<SocketAddr>,
    pub pid: Option<u32>,
    /// `TOKIO_WORKER_THREADS` for a started gateway; None leaves tokio's default.
    pub workers: Option<usize>,
    pub outbox_bytes: Option<usize>,
    /// Extra flags for a started gateway.
    pub extra_args: Vec<String>,
    /// A command the gateway is run under, e.g. `valgrind --tool=callgrind`.
    pub wrapper: Vec<String>,
    /// Where a started gateway's stderr goes.
    pub log_dir: PathBuf,
}

/// A gateway for one scenario.
pub struct Gateway {
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    child: Option<Child>,
    pub args: Vec<String>,
    /// The fresh data dir this gateway was given, removed when it is dropped.
    data_dir: Option<PathBuf>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(dir) = &self.data_dir {
            // The child is killed on drop after this; its files can go now.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Per-scenario needs that change the gateway's flags.
#[derive(Debug, Clone, Default)]
pub struct Needs {
    pub connections: usize,
    pub history_events: usize,
    pub static_dir: Option<PathBuf>,
}

impl Target {
    pub async fn start(&self, name: &str, needs: &Needs) -> Result<Gateway, String> {
        if let Some(addr) = self.url {
            wait_ready(addr, Duration::from_secs(5)).await?;
            return Ok(Gateway {
                addr,
                pid: self.pid,
                child: None,
                args: Vec::new(),
                data_dir: None,
            });
        }
        let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut args: Vec<String> = vec![
            "--listen".into(),
            addr.to_string(),
            "--max-connections".into(),
            (needs.connections + 1000).max(10_000).to_string(),
            "--history-max-events".into(),
            needs.history_events.max(10_000).to_string(),
            "--shutdown-timeout".into(),
            "1s".into(),
            // The load generator is one address opening thousands of
            // connections and emitting as fast as it can: the per-address
            // protections would measure themselves, not the gateway.
            "--connect-rate".into(),
            "0".into(),
            "--emit-rate".into(),
            "0".into(),
        ];
        if let Some(b) = self.outbox_bytes {
            args.extend(["--outbox-bytes".into(), b.to_string()]);
        }
        if let Some(dir) = &needs.static_dir {
            args.extend(["--static-dir".into(), dir.display().to_string()]);
        }
        // The engine under test is named by the scenario; the rest measure
        // the memory engine, as before the disk engine became the default.
        if !self.extra_args.iter().any(|a| a == "--engine") {
            args.extend(["--engine".into(), "memory".into()]);
        }
        // A disk engine named by the scenario gets a fresh data dir per
        // gateway: the default (`./eventwire-data`) would carry one run's
        // events and groups into the next and skew it.
        let mut data_dir = None;
        if !self.extra_args.iter().any(|a| a == "--data-dir") {
            let dir = std::env::temp_dir().join(format!(
                "eventwire-bench-{name}-{}-{port}",
                std::process::id()
            ));
            args.extend(["--data-dir".into(), dir.display().to_string()]);
            data_dir = Some(dir);
        }
        args.extend(self.extra_args.iter().cloned());
        let mut cmd = match self.wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.args(&args);
        cmd.env("RUST_LOG", "warn");
        match self.workers {
            Some(n) => cmd.env("TOKIO_WORKER_THREADS", n.to_string()),
            None => cmd.env_remove("TOKIO_WORKER_THREADS"),
        };
        std::fs::create_dir_all(&self.log_dir).ok();
        let log = std::fs::File::create(self.log_dir.join(format!("gateway-{name}.log")))
            .map_err(|e| format!("gateway log: {e}"))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let pid = child.id();
        let ready_within = if self.wrapper.is_empty() { 10 } else { 60 };
        let gw = Gateway {
            addr,
            pid,
            child: Some(child),
            args,
            data_dir,
        };
        wait_ready(addr, Duration::from_secs(ready_within)).await?;
        eprintln!(
            "gateway {name}: pid {} on {addr}",
            gw.pid.map_or("?".into(), |p| p.to_string())
        );
        Ok(gw)
    }
}

impl Target {
    /// Starts a gateway for scenario `name`, runs `measure` against its
    /// address and stops it. Returns the engine the gateway said it ran
    /// (`?` if it never started) and the first error, if any.
    pub async fn run_on<Fut>(
        &self,
        name: &str,
        needs: &Needs,
        measure: impl FnOnce(SocketAddr) -> Fut,
    ) -> (String, Option<String>)
    where
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let gw = match self.start(name, needs).await {
            Ok(g) => g,
            Err(e) => return ("?".into(), Some(e)),
        };
        let engine = gw.engine().await;
        let error = measure(gw.addr).await.err();
        gw.stop().await;
        (engine, error)
    }
}

impl Gateway {
    /// The engine the gateway says it runs (`/readyz`), "?" when it does
    /// not say: its flags decide, not the scenario.
    pub async fn engine(&self) -> String {
        crate::http::get(self.addr, "/readyz")
            .await
            .ok()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok())
            .and_then(|v| v["engine"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into())
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        procfs::cpu_seconds(self.pid?).ok()
    }

    /// (user, system) CPU seconds.
    pub fn cpu_times(&self) -> Option<(f64, f64)> {
        procfs::cpu_times(self.pid?).ok()
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        procfs::rss_bytes(self.pid?).ok()
    }

    /// Whether a gateway the bench started is still running.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// `eventwire_disconnects_total` by reason, from `/metrics`.
    pub async fn disconnects(&self) -> Vec<(String, f64)> {
        let Ok(body) = http::get(self.addr, "/metrics").await else {
            return Vec::new();
        };
        body.lines()
            .filter_map(|l| l.strip_prefix("eventwire_disconnects_total{reason=\""))
            .filter_map(|l| {
                let (reason, rest) = l.split_once('"')?;
                let v = rest.rsplit(' ').next()?.parse().ok()?;
                Some((reason.to_owned(), v))
            })
            .collect()
    }

    /// The sum of every series of one metric on `/metrics` (None if unread).
    pub async fn metric_sum(&self, name: &str) -> Option<f64> {
        let body = http::get(self.addr, "/metrics").await.ok()?;
        let mut sum = None;
        for l in body.lines() {
            let Some(rest) = l.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                continue;
            }
            if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                *sum.get_or_insert(0.0) += v;
            }
        }
        sum
    }

    /// Kills a started gateway with SIGKILL, as a crash would.
    pub async fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops a started gateway: SIGTERM, then SIGKILL if it lingers.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

async fn wait_ready(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let until = Instant::now() + within;
    loop {
        if http::get(addr, "/readyz").await.is_ok() {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!(
                "the gateway at {addr} was not ready within {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
