//! The real gateway binary as a child process on a data directory: started,
//! stopped with SIGTERM, killed with SIGKILL, restarted on the same files.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eventwire-bin-it-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway process on a data directory.
pub struct Gw {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
}

pub fn command(dir: &Path, port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventwire-gateway"));
    if !extra.iter().any(|a| a.starts_with("--history-max")) {
        cmd.args(["--history-max-events", "1000000"]);
    }
    cmd.args(["--engine", "disk", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    cmd
}

impl Gw {
    pub async fn start(dir: &Path, extra: &[&str]) -> Gw {
        let port = free_port();
        let child = command(dir, port, extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let gw = Gw {
            child,
            base: format!("127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if gw
                .http
                .get(gw.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.base, path)
    }

    pub async fn publish(&self, event: &Value) -> Result<Value, String> {
        let r = self
            .http
            .post(self.url("/v1/events"))
            .header("content-type", "application/json")
            .body(event.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("status {}", r.status()));
        }
        r.json().await.map_err(|e| e.to_string())
    }

    /// Every retained event matching `topic`, paging through history.
    pub async fn history(&self, topic: &str) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let mut url = self.url(&format!("/v1/events?topic={topic}&limit=1000"));
            if let Some(last) = out.last() {
                url.push_str(&format!("&since={}", last["seq"].as_str().unwrap()));
            }
            let page: Value = self
                .http
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let events = page["events"].as_array().unwrap().clone();
            if events.is_empty() {
                return out;
            }
            out.extend(events);
        }
    }

    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap();
        assert!(status.success());
    }
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
pub async fn refused(dir: &Path) -> String {
    let out = tokio::time::timeout(
        WAIT,
        command(dir, free_port(), &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("the gateway should have exited")
    .unwrap();
    assert!(!out.status.success(), "the gateway started");
    // The log goes to stdout.
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
