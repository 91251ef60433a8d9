//! The browser half: runs tests/bench-browser/run.mjs (headless Chromium
//! through playwright-core) and records the client package's gzip size.

use crate::BrowserArgs;
use crate::report::Report;
use crate::scenario::Common;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

const PKG: &str = "channel-wasm/pkg";
/// What scripts/build-client counts: the wasm, and index.js (the wrapper
/// bundled with the hand-written browser glue).
const PKG_FILES: [&str; 2] = ["eventwire_channel_bg.wasm", "index.js"];

pub async fn run(c: &Common, b: &BrowserArgs, report: &mut Report) {
    if b.build_client {
        match build_client().await {
            Ok(size) => report.client_size = Some(size),
            Err(e) => eprintln!("scripts/build-client failed: {e}"),
        }
    }
    if report.client_size.is_none() {
        match measure_pkg().await {
            Ok(size) => report.client_size = Some(size),
            Err(e) => {
                eprintln!("client size: {e} (build it with `bash scripts/build-client --pack`)")
            }
        }
    }
    let out = Path::new("target/bench-browser/result.json");
    let _ = std::fs::remove_file(out);
    let mut cmd = Command::new("node");
    cmd.arg("tests/bench-browser/run.mjs")
        .args(["--gateway-bin", &c.target.bin.display().to_string()])
        .args(["--events", &b.browser_events.to_string()])
        .args(["--runs", &b.browser_runs.to_string()])
        .args(["--event-bytes", &c.event_bytes.to_string()])
        .args(["--out", &out.display().to_string()])
        .stdin(Stdio::null())
        // The result is read from the file; progress goes to stderr.
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(w) = c.target.workers {
        cmd.env("TOKIO_WORKER_THREADS", w.to_string());
    }
    let status = match tokio::time::timeout(Duration::from_secs(600), cmd.status()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("cannot run node: {e}");
            return;
        }
        Err(_) => {
            eprintln!("the browser benchmark did not finish within 10 minutes");
            return;
        }
    };
    if !status.success() {
        eprintln!("the browser benchmark failed ({status})");
    }
    match std::fs::read_to_string(out)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        Some(v) => report.browser = Some(v),
        None => eprintln!("no browser result in {}", out.display()),
    }
}

async fn build_client() -> Result<Value, String> {
    let out = Command::new("bash")
        .args(["scripts/build-client", "--pack"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("exit {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("eventwire ") && l.contains("gzip -9"))
        .ok_or("no size line in its output")?;
    parse_size_line(line).ok_or_else(|| format!("cannot read {line:?}"))
}

/// Reads `eventwire V: wasm W B (G B gzip), JS J B; total R B raw, T B gzip -9`.
fn parse_size_line(line: &str) -> Option<Value> {
    let num_before = |s: &str, marker: &str| -> Option<u64> {
        let head = &s[..s.find(marker)?];
        head.rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())?
            .parse()
            .ok()
    };
    let wasm_part = &line[line.find("wasm ")?..];
    Some(json!({
        "source": "scripts/build-client --pack",
        "line": line,
        "wasm_bytes": num_before(wasm_part, " B (")?,
        "wasm_gzip_bytes": num_before(wasm_part, " B gzip)")?,
        "total_raw_bytes": num_before(line, " B raw")?,
        "total_gzip_bytes": num_before(line, " B gzip -9")?,
    }))
}

/// The same figures as scripts/build-client, from an already built package.
async fn measure_pkg() -> Result<Value, String> {
    let mut raw = 0u64;
    let mut gz = 0u64;
    let mut wasm = (0u64, 0u64);
    for f in PKG_FILES {
        let path = Path::new(PKG).join(f);
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let out = Command::new("gzip")
            .arg("-9c")
            .arg(&path)
            .output()
            .await
            .map_err(|e| format!("gzip: {e}"))?;
        let g = out.stdout.len() as u64;
        raw += size;
        gz += g;
        if f.ends_with(".wasm") {
            wasm = (size, g);
        }
    }
    let line = format!(
        "wasm {} B ({} B gzip), JS {} B; total {raw} B raw, {gz} B gzip -9",
        wasm.0,
        wasm.1,
        raw - wasm.0
    );
    Ok(json!({
        "source": format!("gzip -9 of {PKG}/{{{}}}", PKG_FILES.join(",")),
        "line": line,
        "wasm_bytes": wasm.0,
        "wasm_gzip_bytes": wasm.1,
        "total_raw_bytes": raw,
        "total_gzip_bytes": gz,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_build_client_line() {
        let v = parse_size_line(
            "eventwire 0.1.0: wasm 79512 B (34811 B gzip), JS 28533 B; total 108045 B raw, 41530 B gzip -9",
        )
        .unwrap();
        assert_eq!(v["wasm_bytes"], 79512);
        assert_eq!(v["wasm_gzip_bytes"], 34811);
        assert_eq!(v["total_raw_bytes"], 108045);
        assert_eq!(v["total_gzip_bytes"], 41530);
    }
}
