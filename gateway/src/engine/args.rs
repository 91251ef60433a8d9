//! Engine flags (flattened into the gateway's `Config`), and building the
//! chosen engine from them: one place knows every engine's settings.

use super::Engine;
use super::EngineError;
use super::disk::{DiskConfig, DiskEngine, DiskGroupStore, Fsync};
use super::memory::{MemoryConfig, MemoryEngine};
use super::nats::{InteropRule, NatsConfig, NatsEngine};
use crate::groups::{GroupStore, MemoryGroupStore};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// In-process broker with bounded history, lost at exit. One gateway only.
    Memory,
    /// NATS JetStream: several gateways share one stream (docs/NATS.md).
    Nats,
    /// Durable, on local disk under --data-dir. One gateway per data dir.
    Disk,
}

/// A NATS subject prefix or stream name must fit into subjects and API
/// subjects: the topic grammar for the prefix, one such segment for the name.
fn nats_prefix(s: &str) -> Result<String, String> {
    eventwire_protocol::Topic::parse(s)
        .map(|t| t.as_str().to_owned())
        .map_err(|e| e.message)
}

fn nats_replicas(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n @ 1..=5) => Ok(n),
        _ => Err("replicas are 1 to 5".into()),
    }
}

fn nats_stream(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Ok(s.to_owned())
    } else {
        Err("a stream name is 1 to 64 of A-Z, a-z, 0-9, '_' and '-'".into())
    }
}

#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Broker engine.
    #[arg(
        long = "engine",
        env = "EVENTWIRE_ENGINE",
        value_enum,
        default_value = "disk"
    )]
    pub kind: EngineKind,

    /// Events kept for replay, at most (nats: the stream's max messages; 0 = no limit).
    #[arg(long, env = "EVENTWIRE_HISTORY_MAX_EVENTS", default_value_t = 10_000)]
    pub history_max_events: usize,

    /// Bytes of events kept for replay, at most (nats: the stream's max bytes; 0 = no limit).
    #[arg(long, env = "EVENTWIRE_HISTORY_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub history_max_bytes: usize,

    /// NATS and disk engines: how long events are kept for replay; 0 keeps
    /// them until the count or size limit evicts them.
    #[arg(long, env = "EVENTWIRE_HISTORY_MAX_AGE", default_value = "0s", value_parser = humantime::parse_duration)]
    pub history_max_age: Duration,

    /// Disk engine: the data directory (created if missing; one gateway at a time).
    #[arg(long, env = "EVENTWIRE_DATA_DIR", default_value = "eventwire-data")]
    pub data_dir: PathBuf,

    /// Disk engine: when a publish is durable before its ack: `always`
    /// (fsync, shared by concurrent publishers), `interval:<duration>`
    /// (fsync at least that often), or `never` (the OS decides). Every mode
    /// survives a crash of the gateway; only `always` survives a crash of
    /// the machine.
    #[arg(long, env = "EVENTWIRE_FSYNC", default_value = "always", value_parser = Fsync::from_str)]
    pub fsync: Fsync,

    /// How long an event id is remembered for dedupe.
    #[arg(long, env = "EVENTWIRE_DEDUPE_WINDOW", default_value = "2m", value_parser = humantime::parse_duration)]
    pub dedupe_window: Duration,

    /// NATS engine: server URLs, comma-separated; credentials may go in the URL.
    #[arg(
        long,
        env = "EVENTWIRE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,

    /// NATS engine: events are stored on subjects `<prefix>.<type>`.
    #[arg(long, env = "EVENTWIRE_NATS_SUBJECT_PREFIX", default_value = "eventwire", value_parser = nats_prefix)]
    pub nats_subject_prefix: String,

    /// NATS engine: the JetStream stream, created or updated at start.
    #[arg(long, env = "EVENTWIRE_NATS_STREAM", default_value = "EVENTWIRE", value_parser = nats_stream)]
    pub nats_stream: String,

    /// NATS engine: stream replicas (3 or 5 on a cluster).
    #[arg(long, env = "EVENTWIRE_NATS_REPLICAS", default_value_t = 1, value_parser = nats_replicas)]
    pub nats_replicas: usize,

    /// NATS engine: a publish, history read or readiness check that NATS
    /// does not answer within this fails with `engine_unavailable`.
    #[arg(long, env = "EVENTWIRE_NATS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub nats_timeout: Duration,

    /// NATS engine: wrap bare JSON published on other subjects into events,
    /// as `SUBJECT=TYPE_PREFIX` (repeat, or comma-separate in the env var),
    /// e.g. `topic.>=legacy`. Off by default.
    #[arg(
        long = "nats-interop",
        env = "EVENTWIRE_NATS_INTEROP",
        value_delimiter = ','
    )]
    pub nats_interop: Vec<InteropRule>,
}

/// An engine and where consumer groups keep their state beside it.
pub struct Built {
    pub engine: Arc<dyn Engine>,
    /// The disk engine's groups live in its database; the other engines'
    /// last as long as the process.
    pub group_store: Arc<dyn GroupStore>,
}

/// Builds the engine the flags name. `max_event_bytes` bounds what the NATS
/// engine accepts from backends that publish on the stream directly.
pub async fn build(args: &EngineArgs, max_event_bytes: usize) -> Result<Built, EngineError> {
    let memory_groups = || Arc::new(MemoryGroupStore::new()) as Arc<dyn GroupStore>;
    Ok(match args.kind {
        EngineKind::Memory => Built {
            engine: Arc::new(MemoryEngine::new(MemoryConfig {
                max_events: args.history_max_events,
                max_bytes: args.history_max_bytes,
                dedupe_window: args.dedupe_window,
                ..MemoryConfig::default()
            })),
            group_store: memory_groups(),
        },
        EngineKind::Disk => {
            let mut c = DiskConfig::new(&args.data_dir);
            c.fsync = args.fsync;
            c.max_events = args.history_max_events;
            c.max_bytes = args.history_max_bytes;
            c.max_age = args.history_max_age;
            c.dedupe_window = args.dedupe_window;
            let engine = DiskEngine::open(c)?;
            let group_store = DiskGroupStore::open(engine.store().clone(), args.fsync)?;
            Built {
                engine: Arc::new(engine),
                group_store: Arc::new(group_store),
            }
        }
        EngineKind::Nats => Built {
            engine: Arc::new(
                NatsEngine::connect(NatsConfig::from_args(args, max_event_bytes)).await?,
            ),
            group_store: memory_groups(),
        },
    })
}
