//! The NATS JetStream engine: several gateways share one stream, and
//! backend services publish and consume on it directly.
//!
//! Events are stored on `<prefix>.<type>`, deduped by `Nats-Msg-Id` (the
//! event's [`NewEvent::dedupe_key`]: `source` and `id`), and
//! positioned by the stream sequence, so any gateway can resume any client.
//! Each gateway reads the stream once (see `feed`) and fans out locally.

mod codec;
mod feed;
mod groups;
mod history;
pub mod interop;
mod stream;

use super::{Accepted, Engine, EngineError, History, HistoryQuery, NewEvent, Subscription};
use crate::config::Config;
use crate::engine::EngineArgs;
use crate::groups::GroupBackend;
use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream::Info};
use async_nats::{Client, ConnectOptions, ServerAddr};
use async_trait::async_trait;
use eventwire_protocol::Pattern;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

pub use codec::{BACKEND_SOURCE, MSG_ID};
pub use interop::InteropRule;

/// Everything the engine needs, taken from the gateway's flags.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// Server URLs, comma-separated.
    pub url: String,
    pub stream: String,
    /// Subjects are `<prefix>.<type>`.
    pub prefix: String,
    pub replicas: usize,
    /// Retention; 0 means no limit of that kind.
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    /// JetStream's duplicate window.
    pub dedupe_window: Duration,
    /// Bound on every request to NATS: a publish or history read that gets
    /// no answer in time fails with `engine_unavailable`.
    pub timeout: Duration,
    pub max_event_bytes: usize,
    pub interop: Vec<InteropRule>,
}

impl NatsConfig {
    pub fn from_args(c: &EngineArgs, max_event_bytes: usize) -> NatsConfig {
        NatsConfig {
            url: c.nats_url.clone(),
            stream: c.nats_stream.clone(),
            prefix: c.nats_subject_prefix.clone(),
            replicas: c.nats_replicas,
            max_messages: c.history_max_events,
            max_bytes: c.history_max_bytes,
            max_age: c.history_max_age,
            dedupe_window: c.dedupe_window,
            timeout: c.nats_timeout,
            max_event_bytes,
            interop: c.nats_interop.clone(),
        }
    }

    /// The defaults, pointed at one server, stream and prefix.
    pub fn for_tests(url: &str, stream: &str, prefix: &str) -> NatsConfig {
        let defaults = Config::defaults();
        let mut c = NatsConfig::from_args(&defaults.engine, defaults.max_event_bytes);
        c.url = url.into();
        c.stream = stream.into();
        c.prefix = prefix.into();
        c
    }
}

pub fn unavailable(what: &str, e: impl std::fmt::Display) -> EngineError {
    stream::unavailable(what, e)
}

/// The engine's own Prometheus counters (see docs/NATS.md).
struct Counters {
    /// The live consumer was replaced (NATS restarted, failover, gap).
    feed_restarts: metrics::Counter,
    /// A restarted feed found events evicted that it had not handed on.
    feed_gaps: metrics::Counter,
    /// Stream messages that are not valid events (a backend's mistake).
    skipped: metrics::Counter,
    interop_stored: metrics::Counter,
    interop_duplicate: metrics::Counter,
    interop_failed: metrics::Counter,
    interop_invalid: metrics::Counter,
}

impl Counters {
    fn new() -> Counters {
        // Handles made before the recorder exists would count nothing.
        crate::metrics::recorder();
        let interop = |result: &'static str| metrics::counter!("eventwire_nats_interop_total", "result" => result);
        Counters {
            feed_restarts: metrics::counter!("eventwire_nats_feed_restarts_total"),
            feed_gaps: metrics::counter!("eventwire_nats_feed_gaps_total"),
            skipped: metrics::counter!("eventwire_nats_skipped_total"),
            interop_stored: interop("stored"),
            interop_duplicate: interop("duplicate"),
            interop_failed: interop("failed"),
            interop_invalid: interop("invalid"),
        }
    }
}

/// State shared by the engine, its live feeds and the interop task.
pub(crate) struct Core {
    config: NatsConfig,
    client: Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream<()>,
    codec: codec::Codec,
    /// Creation time of the stream incarnation the epoch names.
    created: i128,
    /// Set, with the reason, once the stream turns out to have been
    /// replaced: this engine's positions can no longer be served.
    broken: OnceLock<String>,
    /// Live feeds that cannot read the stream right now, and why.
    feed_trouble: Mutex<BTreeMap<u64, String>>,
    next_feed: AtomicU64,
    /// The highest stream sequence reported as refused (see `report_rejected`).
    reported: AtomicU64,
    counters: Counters,
    /// Bumped on every disconnection: a feed then replaces its consumer as
    /// soon as the client is back, instead of waiting for missed heartbeats
    /// (a restarted server has lost it anyway).
    disconnects: watch::Receiver<u64>,
}

impl Core {
    fn broken(&self) -> Option<&String> {
        self.broken.get()
    }

    /// Fails fast when NATS cannot take a request: a publish must not wait
    /// in the client's buffer for a reconnect and be stored after its
    /// client was told it failed.
    fn usable(&self) -> Result<(), EngineError> {
        if let Some(why) = self.broken() {
            return Err(EngineError::Unavailable(why.clone()));
        }
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(EngineError::Unavailable(format!(
                "not connected to NATS ({})",
                match state {
                    async_nats::connection::State::Pending => "connecting",
                    _ => "disconnected; reconnecting",
                }
            ))),
        }
    }

    /// The stream's current state, checking it is still the incarnation
    /// the epoch names.
    async fn stream_info(&self) -> Result<Info, EngineError> {
        self.usable()?;
        let info = tokio::time::timeout(self.config.timeout, self.stream.get_info())
            .await
            .map_err(|_| unavailable("reading the stream", "timed out"))?
            .map_err(|e| unavailable("reading the stream", e))?;
        let created = info.created.unix_timestamp_nanos();
        if created != self.created {
            let why = format!(
                "the JetStream stream {} was deleted and created again; positions from before are \
                 void: restart this gateway",
                self.config.stream
            );
            tracing::error!("{why}");
            let _ = self.broken.set(why.clone());
            return Err(EngineError::Unavailable(why));
        }
        Ok(info)
    }

    async fn create_consumer(&self, config: pull::Config) -> Result<PullConsumer, EngineError> {
        self.usable()?;
        tokio::time::timeout(self.config.timeout, self.stream.create_consumer(config))
            .await
            .map_err(|_| unavailable("creating a consumer", "timed out"))?
            .map_err(|e| unavailable("creating a consumer", e))
    }

    /// Deletes a consumer that is no longer read, without waiting; if that
    /// fails the server reaps it after its inactivity threshold anyway.
    fn forget_consumer(&self, name: String) {
        let stream = self.stream.clone();
        let timeout = self.config.timeout;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(timeout, stream.delete_consumer(&name)).await;
        });
    }

    fn next_feed_id(&self) -> u64 {
        self.next_feed.fetch_add(1, Ordering::Relaxed)
    }

    fn feed_trouble(&self, feed: u64, trouble: Option<String>) {
        let mut all = self.feed_trouble.lock();
        match trouble {
            Some(t) => all.insert(feed, t),
            None => all.remove(&feed),
        };
    }

    /// Sleeps `pause`, then waits until the client is connected.
    async fn connected(&self, pause: Duration) {
        tokio::time::sleep(pause).await;
        while self.client.connection_state() != async_nats::connection::State::Connected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tells whoever published `subject`'s message why no browser will see
    /// it: a JSON report on [`codec::Codec::rejected_subject`] (core NATS,
    /// best effort), besides the log line and the counter. A silent skip
    /// would leave a backend with an acknowledged publish and no event.
    async fn report_rejected(
        &self,
        subject: &str,
        stream_seq: Option<u64>,
        headers: Option<&async_nats::HeaderMap>,
        error: &eventwire_protocol::ProtocolError,
    ) {
        // Several live feeds (hub, consumer groups) and feed restarts read
        // the same message: report each once per gateway. Feeds read in
        // stream order, so the highest reported sequence is enough.
        if let Some(seq) = stream_seq {
            if self.reported.fetch_max(seq, Ordering::Relaxed) >= seq {
                return;
            }
            self.counters.skipped.increment(1);
        }
        tracing::warn!(%subject, ?stream_seq, code = error.code.as_str(), reason = %error.message, "refusing a message that is not a valid event");
        let id = headers
            .and_then(|h| h.get(codec::MSG_ID))
            .map(|v| v.as_str().to_owned());
        let report = serde_json::json!({
            "subject": subject,
            "stream": self.config.stream,
            "stream_seq": stream_seq,
            "msg_id": id,
            "error": error,
        });
        let to = self.codec.rejected_subject();
        if let Err(e) = self.client.publish(to, report.to_string().into()).await {
            tracing::warn!(error = %e, "could not report a refused message");
        }
    }

    async fn publish(&self, event: &NewEvent) -> Result<Accepted, EngineError> {
        self.usable()?;
        let id = event.id().to_owned();
        let message = PublishMessage::build()
            .payload(codec::Codec::payload(event))
            .message_id(event.dedupe_key())
            .expected_stream(&self.config.stream);
        let subject = self.codec.subject(event.topic.as_str());
        let ack = async { self.js.send_publish(subject, message).await?.await };
        let ack = tokio::time::timeout(self.config.timeout, ack)
            .await
            .map_err(|_| publish_failed(PublishErrorKind::TimedOut, "", self.config.timeout))?
            .map_err(|e| publish_failed(e.kind(), &e.to_string(), self.config.timeout))?;
        Ok(Accepted {
            id,
            seq: self.codec.position(ack.sequence),
            duplicate: ack.duplicate,
        })
    }
}

fn publish_failed(kind: PublishErrorKind, detail: &str, timeout: Duration) -> EngineError {
    EngineError::Unavailable(match kind {
        PublishErrorKind::TimedOut => format!(
            "NATS did not acknowledge the event within {}; it may or may not be stored: \
             resend it with the same id",
            humantime::format_duration(timeout)
        ),
        PublishErrorKind::StreamNotFound => "no JetStream stream answered for this subject \
             (JetStream is down, or the stream is electing a leader); the event was not stored"
            .to_owned(),
        _ => format!("NATS refused the event: {detail}"),
    })
}

/// The engine. Dropping it stops its feeds and its interop task.
pub struct NatsEngine {
    core: Arc<Core>,
    interop: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for NatsEngine {
    fn drop(&mut self) {
        if let Some(task) = &self.interop {
            task.abort();
        }
    }
}

fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, EngineError> {
    let addrs = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .map_err(|e| EngineError::Unavailable(format!("--nats-url {u:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(EngineError::Unavailable("--nats-url is empty".into()));
    }
    Ok(addrs)
}

impl NatsEngine {
    /// Connects, creates or updates the stream, and starts the interop
    /// mapping if any is configured. Fails if NATS cannot be reached now.
    pub async fn connect(config: NatsConfig) -> Result<NatsEngine, EngineError> {
        let addrs = server_addrs(&config.url)?;
        let (disconnects_tx, disconnects) = watch::channel(0u64);
        let disconnects_tx = Arc::new(disconnects_tx);
        let client = ConnectOptions::new()
            .name("eventwire-gateway")
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            .ping_interval(Duration::from_secs(10))
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis((attempt as u64 * 100).min(2_000))
            })
            .event_callback(move |event| {
                let disconnects = disconnects_tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => tracing::info!("connected to NATS"),
                        async_nats::Event::Disconnected => {
                            disconnects.send_modify(|n| *n += 1);
                            tracing::warn!("disconnected from NATS; reconnecting")
                        }
                        other => tracing::warn!(event = %other, "NATS"),
                    }
                }
            })
            .connect(addrs)
            .await
            .map_err(|e| unavailable(&format!("connecting to {}", config.url), e))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.timeout)
            .build(client.clone());
        let mut codec = codec::Codec {
            prefix: config.prefix.clone(),
            epoch: String::new(),
            max_event_bytes: config.max_event_bytes.saturating_add(4096),
        };
        let info = stream::ensure(&js, &config, &codec).await?;
        let created = info.created.unix_timestamp_nanos();
        codec.epoch = codec::epoch(created);
        let core = Arc::new(Core {
            stream: js
                .get_stream_no_info(&config.stream)
                .await
                .map_err(|e| unavailable("opening the stream", e))?,
            config,
            client,
            js,
            codec,
            created,
            broken: OnceLock::new(),
            feed_trouble: Mutex::new(BTreeMap::new()),
            next_feed: AtomicU64::new(1),
            reported: AtomicU64::new(0),
            counters: Counters::new(),
            disconnects,
        });
        let interop = if core.config.interop.is_empty() {
            None
        } else {
            Some(interop::start(core.clone()).await?)
        };
        tracing::info!(stream = %core.config.stream, epoch = %core.codec.epoch, subjects = %core.codec.all_subjects(), "NATS JetStream engine ready");
        Ok(NatsEngine { core, interop })
    }

    /// The epoch of the stream incarnation this engine serves.
    pub fn epoch(&self) -> &str {
        &self.core.codec.epoch
    }

    /// The subject an event of type `topic` is stored under.
    pub fn subject(&self, topic: &str) -> String {
        self.core.codec.subject(topic)
    }

    /// The NATS client, for tests and embedding.
    pub fn client(&self) -> &Client {
        &self.core.client
    }
}

#[async_trait]
impl Engine for NatsEngine {
    fn name(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, event: NewEvent) -> Result<Accepted, EngineError> {
        self.core.publish(&event).await
    }

    async fn subscribe(&self, pattern: Pattern) -> Result<Subscription, EngineError> {
        feed::subscribe(self.core.clone(), &pattern).await
    }

    async fn history(&self, query: HistoryQuery) -> Result<History, EngineError> {
        history::read(&self.core, query).await
    }

    async fn groups(&self) -> Result<Option<Arc<dyn GroupBackend>>, EngineError> {
        Ok(Some(Arc::new(
            groups::NatsGroups::start(self.core.clone()).await?,
        )))
    }

    async fn ready(&self) -> Result<(), EngineError> {
        self.core.stream_info().await?;
        if let Some((_, why)) = self.core.feed_trouble.lock().iter().next() {
            return Err(EngineError::Unavailable(format!(
                "the live feed from JetStream is interrupted: {why}"
            )));
        }
        Ok(())
    }
}
