//! Consumer groups on NATS: each group is a durable JetStream pull
//! consumer on the events stream, shared by every gateway on the stream,
//! so a worker may fetch from one gateway and ack on another, and a gateway
//! that dies holds nothing: JetStream redelivers after `ack_wait`.
//!
//! - The consumer is named `ewg-<uuid v5 of the group name>` (group names
//!   contain dots, consumer names may not) and its description carries the
//!   group's name and configuration.
//! - `ack_wait` is AckWait, `max_inflight` MaxAckPending, the topics the
//!   filter subjects. MaxDeliver is `max_deliver + 1`: a message coming
//!   back for attempt `max_deliver + 1` is not handed out but becomes a
//!   dead letter (record in the groups stream, then `+TERM`); a nack on
//!   the last attempt does the same at once.
//! - Dead letters live in the groups stream (`dead.rs`). A redrive moves
//!   them to the group's redrive subject, which a second consumer of the
//!   same name on the groups stream hands out, attempts starting over.
//! - A handle is the delivery's ack subject (`handle.rs`): ack is `+ACK`,
//!   nack `-NAK` with a delay, extend `+WPI`, each sent as a request so
//!   the answer comes after JetStream took it.
//!
//! What differs from the gateway's own groups is in docs/NATS.md ("Consumer
//! groups").

mod dead;
mod handle;

use super::{Core, NatsEngine, unavailable};
use crate::engine::EngineError;
use crate::engine::position::Position;
use crate::groups::backend::{Announcements, GroupBackend};
use crate::groups::config::{self, GroupConfig, GroupSpec, Start};
use crate::groups::group::{Counts, Delivery, Outcome, now_ms};
use crate::groups::ledger::DeadLetter;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::Stream;
use async_trait::async_trait;
use eventwire_protocol::{ErrorCode, ProtocolError};
use futures_util::StreamExt;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Longest single pull request of a long poll; a fetch waiting longer asks
/// again, and looks at redriven letters in between.
const LONG_POLL_SLICE: Duration = Duration::from_secs(2);
const DESCRIPTION: &str = "eventwire group ";

/// One group as this gateway knows it: its configuration and its two
/// consumers (events; redriven letters).
struct Known {
    config: GroupConfig,
    consumer: PullConsumer,
    redrive: PullConsumer,
}

pub struct NatsGroups {
    core: Arc<Core>,
    /// For `start` checks through the engine's history reads.
    engine: NatsEngine,
    groups_stream: Stream<()>,
    groups_stream_name: String,
    known: Mutex<BTreeMap<String, Arc<Known>>>,
    creating: tokio::sync::Mutex<()>,
    /// New dead letters, announced by the gateway (see
    /// [`GroupBackend::announcements`]).
    announce: mpsc::UnboundedSender<(String, DeadLetter)>,
    announcements: Mutex<Option<Announcements>>,
}

fn consumer_name(group: &str) -> String {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, group.as_bytes());
    format!("ewg-{}", id.simple())
}

fn not_found(group: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::GroupNotFound, format!("no group named {group}"))
}

fn failed(what: &str, e: impl std::fmt::Display) -> ProtocolError {
    unavailable(what, e).into()
}

/// The description a group's consumers carry: name and configuration.
fn describe(group: &str, config: &GroupConfig) -> String {
    let body = serde_json::json!({ "name": group, "config": config.view() });
    format!("{DESCRIPTION}{body}")
}

/// The group a consumer serves, from its description.
fn described(description: Option<&str>) -> Option<(String, GroupConfig)> {
    #[derive(serde::Deserialize)]
    struct Body {
        name: String,
        config: GroupSpec,
    }
    let body: Body = serde_json::from_str(description?.strip_prefix(DESCRIPTION)?).ok()?;
    let config = body.config.check(config::MAX_TOPICS).ok()?;
    Some((body.name, config))
}

impl NatsGroups {
    pub async fn start(core: Arc<Core>) -> Result<NatsGroups, EngineError> {
        let groups_stream = dead::ensure(&core).await?;
        let (announce, announcements) = mpsc::unbounded_channel();
        Ok(NatsGroups {
            engine: NatsEngine {
                core: core.clone(),
                interop: None,
            },
            groups_stream_name: dead::stream_name(&core.config.stream),
            core,
            groups_stream,
            known: Mutex::new(BTreeMap::new()),
            creating: tokio::sync::Mutex::new(()),
            announce,
            announcements: Mutex::new(Some(announcements)),
        })
    }

    fn events_stream(&self) -> &Stream<()> {
        &self.core.stream
    }

    fn streams(&self) -> [&str; 2] {
        [&self.core.config.stream, &self.groups_stream_name]
    }

    fn consumer_config(
        &self,
        group: &str,
        config: &GroupConfig,
        filters: Vec<String>,
        deliver_policy: DeliverPolicy,
    ) -> pull::Config {
        let mut c = pull::Config {
            durable_name: Some(consumer_name(group)),
            description: Some(describe(group, config)),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            max_deliver: config.max_deliver as i64 + 1,
            max_ack_pending: config.max_inflight as i64,
            ..pull::Config::default()
        };
        c.filter_subject = filters.into_iter().next().unwrap_or_default();
        c
    }

    /// The group, from this gateway's memory or else from JetStream.
    async fn known(&self, group: &str) -> Result<Arc<Known>, ProtocolError> {
        if let Some(k) = self.known.lock().get(group) {
            return Ok(k.clone());
        }
        let name = consumer_name(group);
        let timeout = self.core.config.timeout;
        let get = |stream: Stream<()>| {
            let name = name.clone();
            async move {
                tokio::time::timeout(timeout, stream.get_consumer::<pull::Config>(&name)).await
            }
        };
        let consumer = match get(self.events_stream().clone()).await {
            Err(_) => return Err(failed("reading a group", "timed out")),
            Ok(Ok(c)) => c,
            Ok(Err(e)) if consumer_missing(&e) => return Err(not_found(group)),
            Ok(Err(e)) => return Err(failed("reading a group", e)),
        };
        let config = match described(consumer.cached_info().config.description.as_deref()) {
            Some((name, config)) if name == group => config,
            _ => return Err(not_found(group)),
        };
        let redrive = match get(self.groups_stream.clone()).await {
            Err(_) => return Err(failed("reading a group", "timed out")),
            Ok(Ok(c)) => c,
            Ok(Err(e)) if consumer_missing(&e) => return Err(not_found(group)),
            Ok(Err(e)) => return Err(failed("reading a group", e)),
        };
        let known = Arc::new(Known {
            config,
            consumer,
            redrive,
        });
        self.known.lock().insert(group.to_owned(), known.clone());
        Ok(known)
    }

    /// Forgets a group that JetStream says is gone.
    fn gone(&self, group: &str) -> ProtocolError {
        self.known.lock().remove(group);
        ProtocolError::new(
            ErrorCode::GroupNotFound,
            format!("group {group} was deleted"),
        )
    }

    /// Turns one fetched message into a delivery, or retires it to the dead
    /// letters when it comes back after its last attempt.
    async fn deliver(
        &self,
        group: &str,
        config: &GroupConfig,
        msg: async_nats::jetstream::Message,
    ) -> Option<Delivery> {
        let reply = msg.reply.as_ref()?.to_string();
        let info = msg.info().ok()?;
        let (stream_seq, delivered, published) = (
            info.stream_sequence,
            info.delivered.max(1) as u32,
            SystemTime::from(info.published),
        );
        let redriven = info.stream == self.groups_stream_name;
        let event = if redriven {
            dead::event(msg.payload.clone())
        } else {
            self.core.codec.decode(
                &msg.subject,
                msg.headers.as_ref(),
                &msg.payload,
                stream_seq,
                published,
            )
        };
        let event = match event {
            Ok(e) => e,
            Err(why) => {
                // Not an event a gateway would deliver: reported like the
                // live feed does, and never handed out.
                if !redriven {
                    self.core
                        .report_rejected(&msg.subject, Some(stream_seq), msg.headers.as_ref(), &why)
                        .await;
                }
                let _ = msg.ack_with(AckKind::Term).await;
                return None;
            }
        };
        if delivered > config.max_deliver {
            let letter = DeadLetter {
                event,
                attempts: config.max_deliver,
                reason: "not acked within ack_wait".to_owned(),
                at: now_ms(),
            };
            if let Err(e) = self.bury(group, &letter, &reply).await {
                tracing::warn!(group, error = %e, "could not retire a dead letter; it comes back after ack_wait");
            }
            return None;
        }
        Some(Delivery {
            handle: handle::encode(&reply)?,
            attempt: delivered,
            event,
        })
    }

    /// Stores a dead letter, announces it, then ends its delivery with
    /// `+TERM`. Stored before terminated: a crash in between leaves the
    /// message to come back and be buried again (the record is deduped).
    async fn bury(
        &self,
        group: &str,
        letter: &DeadLetter,
        ack_subject: &str,
    ) -> Result<(), EngineError> {
        let id = format!("{group}:{ack_subject}");
        let message = async_nats::jetstream::message::PublishMessage::build()
            .payload(dead::record(letter))
            .message_id(id);
        let subject = dead::dead_subject(&self.core.config.prefix, group);
        let timeout = self.core.config.timeout;
        let stored = async { self.core.js.send_publish(subject, message).await?.await };
        tokio::time::timeout(timeout, stored)
            .await
            .map_err(|_| unavailable("storing a dead letter", "timed out"))?
            .map_err(|e| unavailable("storing a dead letter", e))?;
        let _ = self.announce.send((group.to_owned(), letter.clone()));
        self.settle_one(ack_subject, AckKind::Term).await
    }

    /// Sends a settling message to an ack subject and waits for JetStream
    /// to answer it.
    async fn settle_one(&self, ack_subject: &str, kind: AckKind) -> Result<(), EngineError> {
        let request = self
            .core
            .client
            .request(ack_subject.to_owned(), kind.into());
        match tokio::time::timeout(self.core.config.timeout, request).await {
            Err(_) => Err(unavailable("settling a delivery", "timed out")),
            Ok(Err(e)) => Err(unavailable("settling a delivery", e)),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// What is ready now: redriven letters first, then events, at most
    /// `max`, without waiting.
    async fn ready(
        &self,
        group: &str,
        known: &Known,
        max: usize,
    ) -> Result<Vec<Delivery>, ProtocolError> {
        let mut out = Vec::new();
        for consumer in [&known.redrive, &known.consumer] {
            while out.len() < max {
                let want = max - out.len();
                let got = self.pull(group, known, consumer, want, None).await?;
                let n = got.len();
                out.extend(got.into_iter().flatten());
                if n < want {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One pull request: without waiting (`expires` None) or a long poll.
    /// Each message yields a delivery or, when it was retired, nothing.
    async fn pull(
        &self,
        group: &str,
        known: &Known,
        consumer: &PullConsumer,
        max: usize,
        expires: Option<Duration>,
    ) -> Result<Vec<Option<Delivery>>, ProtocolError> {
        let batch = match expires {
            None => consumer.fetch().max_messages(max).messages().await,
            Some(e) => {
                consumer
                    .batch()
                    .max_messages(max)
                    .expires(e)
                    .messages()
                    .await
            }
        };
        let mut batch = batch.map_err(|e| failed("fetching from a group", e))?;
        // A deleted consumer answers nothing at all: bound the wait, then
        // ask whether the group is still there.
        let deadline =
            tokio::time::Instant::now() + expires.unwrap_or_default() + self.core.config.timeout;
        let mut out = Vec::new();
        loop {
            let msg = match tokio::time::timeout_at(deadline, batch.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(_) if !out.is_empty() => break,
                Err(_) => {
                    return match known.consumer.get_info().await {
                        Err(e) if e.to_string().contains("not found") => Err(self.gone(group)),
                        _ => Err(failed("fetching from a group", "JetStream did not answer")),
                    };
                }
            };
            match msg {
                Ok(msg) => out.push(self.deliver(group, &known.config, msg).await),
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("Consumer Deleted") || text.contains("consumer deleted") {
                        return Err(self.gone(group));
                    }
                    // `max_inflight` reached, or the request expired: what
                    // arrived so far is the answer.
                    if text.contains("MaxAckPending") || text.contains("408") {
                        break;
                    }
                    return Err(failed("fetching from a group", e));
                }
            }
        }
        Ok(out)
    }

    /// Settles each handle as `step` says; every handle gets an outcome,
    /// in order.
    async fn settle(
        &self,
        group: &str,
        handles: &[String],
        step: impl Fn(&handle::Ack, &GroupConfig) -> Step,
    ) -> Result<Vec<Outcome>, ProtocolError> {
        let known = self.known(group).await?;
        let name = consumer_name(group);
        let mut seen = HashSet::new();
        let mut work = Vec::with_capacity(handles.len());
        let mut outcomes = Vec::with_capacity(handles.len());
        for h in handles {
            match handle::decode(h, self.streams(), &name) {
                None => outcomes.push(Outcome::Unknown),
                Some(ack) if !seen.insert((ack.stream.clone(), ack.stream_seq)) => {
                    outcomes.push(Outcome::Expired)
                }
                Some(ack) => {
                    let step = step(&ack, &known.config);
                    outcomes.push(match &step {
                        Step::Send(_, outcome) => *outcome,
                        Step::Bury(_) => Outcome::Dead,
                    });
                    work.push((outcomes.len() - 1, ack, step));
                }
            }
        }
        // JetStream does not say whether an ack found its event pending;
        // its ack floor does, for events acked in order: below it, a handle
        // is spent.
        let floors = self.ack_floors(&known, &work).await?;
        work.retain(|(i, ack, _)| {
            let floor = if ack.stream == self.groups_stream_name {
                floors.1
            } else {
                floors.0
            };
            if ack.stream_seq <= floor {
                outcomes[*i] = Outcome::Expired;
                false
            } else {
                true
            }
        });
        let results =
            futures_util::future::join_all(work.into_iter().map(|(i, ack, step)| async move {
                let r = match step {
                    Step::Bury(reason) => self.bury_by_handle(group, &ack, reason).await,
                    Step::Send(kind, _) => self.settle_one(&ack.subject, kind).await,
                };
                (i, r)
            }))
            .await;
        for (i, r) in results {
            if let Err(e) = r {
                if outcomes[i] == Outcome::Dead {
                    return Err(e.into());
                }
                // No consumer answered: the group (or this delivery's
                // consumer) is gone.
                if e.to_string().contains("no responders") {
                    outcomes[i] = Outcome::Expired;
                } else {
                    return Err(e.into());
                }
            }
        }
        Ok(outcomes)
    }

    /// The ack floors (events stream, groups stream) of the group's two
    /// consumers, read only for the streams the handles name.
    async fn ack_floors(
        &self,
        known: &Known,
        work: &[(usize, handle::Ack, Step)],
    ) -> Result<(u64, u64), ProtocolError> {
        let mut floors = (0, 0);
        for (i, consumer) in [&known.consumer, &known.redrive].into_iter().enumerate() {
            let redrive = i == 1;
            if !work
                .iter()
                .any(|(_, a, _)| (a.stream == self.groups_stream_name) == redrive)
            {
                continue;
            }
            let info = tokio::time::timeout(self.core.config.timeout, consumer.get_info())
                .await
                .map_err(|_| failed("reading a group", "timed out"))?
                .map_err(|e| failed("reading a group", e))?;
            let floor = info.ack_floor.stream_sequence;
            if redrive {
                floors.1 = floor;
            } else {
                floors.0 = floor;
            }
        }
        Ok(floors)
    }

    /// A nack on the last attempt: reads the event back from its stream and
    /// buries it.
    async fn bury_by_handle(
        &self,
        group: &str,
        ack: &handle::Ack,
        reason: String,
    ) -> Result<(), EngineError> {
        let redriven = ack.stream == self.groups_stream_name;
        let stream = if redriven {
            &self.groups_stream
        } else {
            self.events_stream()
        };
        let raw = tokio::time::timeout(
            self.core.config.timeout,
            stream.get_raw_message(ack.stream_seq),
        )
        .await
        .map_err(|_| unavailable("reading a dead letter's event", "timed out"))?
        .map_err(|e| unavailable("reading a dead letter's event", e))?;
        let event = if redriven {
            dead::event(raw.payload)
        } else {
            self.core.codec.decode(
                &raw.subject,
                Some(&raw.headers),
                &raw.payload,
                ack.stream_seq,
                SystemTime::from(raw.time),
            )
        }
        .map_err(|e| EngineError::Unavailable(e.message))?;
        let letter = DeadLetter {
            event,
            attempts: ack.delivered,
            reason,
            at: now_ms(),
        };
        self.bury(group, &letter, &ack.subject).await
    }

    /// The dead letters of a group, oldest first, with their sequences in
    /// the groups stream; at most `limit`.
    async fn letters(
        &self,
        group: &str,
        limit: usize,
    ) -> Result<Vec<(u64, DeadLetter)>, ProtocolError> {
        let subject = dead::dead_subject(&self.core.config.prefix, group);
        let mut out = Vec::new();
        let mut next = 1;
        while out.len() < limit {
            let read = tokio::time::timeout(
                self.core.config.timeout,
                self.groups_stream
                    .raw_message_builder()
                    .sequence(next)
                    .next_by_subject(subject.clone())
                    .send(),
            )
            .await
            .map_err(|_| failed("reading dead letters", "timed out"))?;
            let raw = match read {
                Ok(raw) => raw,
                Err(e) if e.to_string().contains("no message found") => break,
                Err(e) => return Err(failed("reading dead letters", e)),
            };
            next = raw.sequence + 1;
            match dead::parse_record(&raw.payload) {
                Ok(d) => out.push((raw.sequence, d)),
                Err(e) => {
                    tracing::warn!(group, seq = raw.sequence, error = %e, "skipping an unreadable dead letter")
                }
            }
        }
        Ok(out)
    }

    async fn dead_count(&self, group: &str) -> Result<usize, ProtocolError> {
        let subject = dead::dead_subject(&self.core.config.prefix, group);
        let mut info = self
            .groups_stream
            .info_with_subjects(&subject)
            .await
            .map_err(|e| failed("counting dead letters", e))?;
        let mut n = 0;
        while let Some(entry) = info.next().await {
            let (s, count) = entry.map_err(|e| failed("counting dead letters", e))?;
            if s == subject {
                n += count;
            }
        }
        Ok(n)
    }
}

/// What settling one handle takes.
enum Step {
    /// One message to the ack subject.
    Send(AckKind, Outcome),
    /// A nack on the last attempt: to the dead letters, with this reason.
    Bury(String),
}

fn consumer_missing(e: &async_nats::Error) -> bool {
    // `get_consumer` boxes the JetStream error; its text is the stable part
    // (error code 10014, "consumer not found").
    e.to_string().contains("consumer not found")
}

#[async_trait]
impl GroupBackend for NatsGroups {
    async fn create(&self, name: &str, config: GroupConfig) -> Result<bool, ProtocolError> {
        config::check_name(name)?;
        if config.topics.len() > 1 {
            return Err(ProtocolError::new(
                ErrorCode::InvalidGroup,
                "on NATS a group reads one topic pattern (one JetStream filter subject); use a wildcard such as \"ui.>\", or one group per pattern",
            ));
        }
        let _creating = self.creating.lock().await;
        self.known.lock().remove(name);
        match self.known(name).await {
            Ok(existing) if existing.config == config => return Ok(false),
            Ok(_) => {
                return Err(ProtocolError::new(
                    ErrorCode::GroupConflict,
                    format!(
                        "group {name} exists with another configuration; delete it first to change it"
                    ),
                ));
            }
            Err(e) if e.code == ErrorCode::GroupNotFound => {}
            Err(e) => return Err(e),
        }
        let deliver_policy = match &config.start {
            Start::New => DeliverPolicy::New,
            Start::Earliest => DeliverPolicy::All,
            Start::After(p) => {
                crate::groups::check_start(&self.engine, &config, p).await?;
                DeliverPolicy::ByStartSequence {
                    start_sequence: Position::parse(p)?.offset + 1,
                }
            }
        };
        let filters = config
            .topics
            .iter()
            .map(|p| self.core.codec.filter(p.as_str()))
            .collect();
        let redrive_filter = vec![dead::redrive_subject(&self.core.config.prefix, name)];
        let timeout = self.core.config.timeout;
        // The redrive consumer first: a group whose events consumer exists
        // is complete.
        let made = async {
            self.groups_stream
                .create_consumer(self.consumer_config(
                    name,
                    &config,
                    redrive_filter,
                    DeliverPolicy::All,
                ))
                .await?;
            self.events_stream()
                .create_consumer(self.consumer_config(name, &config, filters, deliver_policy))
                .await
        };
        match tokio::time::timeout(timeout, made).await {
            Err(_) => return Err(failed("creating a group", "timed out")),
            Ok(Err(e)) if e.to_string().contains("already") => {
                return Err(ProtocolError::new(
                    ErrorCode::GroupConflict,
                    format!("group {name} was just created with another configuration"),
                ));
            }
            Ok(Err(e)) => return Err(failed("creating a group", e)),
            Ok(Ok(_)) => {}
        }
        self.known(name).await?;
        Ok(true)
    }

    async fn get(&self, name: &str) -> Result<GroupConfig, ProtocolError> {
        Ok(self.known(name).await?.config.clone())
    }

    async fn list(&self) -> Result<Vec<String>, ProtocolError> {
        let mut consumers = self.events_stream().consumers();
        let mut names = Vec::new();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|e| failed("listing groups", e))?;
            if let Some((name, _)) = described(info.config.description.as_deref())
                && consumer_name(&name) == info.name
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    async fn delete(&self, name: &str) -> Result<(), ProtocolError> {
        self.known(name).await?;
        let consumer = consumer_name(name);
        let prefix = &self.core.config.prefix;
        let deleted = self
            .events_stream()
            .delete_consumer(&consumer)
            .await
            .map_err(|e| failed("deleting a group", e));
        self.known.lock().remove(name);
        deleted?;
        let _ = self.groups_stream.delete_consumer(&consumer).await;
        for subject in [
            dead::dead_subject(prefix, name),
            dead::redrive_subject(prefix, name),
        ] {
            if let Err(e) = self.groups_stream.purge().filter(subject).await {
                tracing::warn!(group = name, error = %e, "could not purge a deleted group's letters");
            }
        }
        Ok(())
    }

    async fn fetch(
        &self,
        name: &str,
        max: usize,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>, ProtocolError> {
        let known = self.known(name).await?;
        let until = tokio::time::Instant::now() + wait;
        loop {
            let mut out = self.ready(name, &known, max).await?;
            let now = tokio::time::Instant::now();
            if !out.is_empty() || now >= until || stop.is_cancelled() {
                return Ok(out);
            }
            // Wait for one event, then take whatever else is ready. A pull
            // request of one message is never left holding a delivery
            // nobody reads.
            let slice = (until - now)
                .min(LONG_POLL_SLICE)
                .max(Duration::from_millis(100));
            let first = tokio::select! {
                r = self.pull(name, &known, &known.consumer, 1, Some(slice)) => r?,
                _ = stop.cancelled() => return Ok(out),
            };
            if first.iter().any(Option::is_some) {
                out.extend(first.into_iter().flatten());
                if max > 1 {
                    out.extend(self.ready(name, &known, max - 1).await?);
                }
                return Ok(out);
            }
        }
    }

    async fn ack(&self, name: &str, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError> {
        self.settle(name, handles, |_, _| {
            Step::Send(AckKind::Ack, Outcome::Acked)
        })
        .await
    }

    async fn nack(
        &self,
        name: &str,
        handles: &[String],
        delay: Option<Duration>,
        reason: Option<String>,
    ) -> Result<Vec<Outcome>, ProtocolError> {
        self.settle(name, handles, |ack, config| {
            if ack.delivered >= config.max_deliver {
                Step::Bury(reason.clone().unwrap_or_else(|| "nacked".to_owned()))
            } else {
                let wait = delay.unwrap_or_else(|| config.backoff_after(ack.delivered));
                Step::Send(AckKind::Nak(Some(wait)), Outcome::Nacked)
            }
        })
        .await
    }

    async fn extend(&self, name: &str, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError> {
        self.settle(name, handles, |_, _| {
            Step::Send(AckKind::Progress, Outcome::Extended)
        })
        .await
    }

    async fn dead(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, usize), ProtocolError> {
        self.known(name).await?;
        let letters = self.letters(name, limit).await?;
        let total = self.dead_count(name).await?;
        Ok((letters.into_iter().map(|(_, d)| d).collect(), total))
    }

    async fn redrive(
        &self,
        name: &str,
        ids: Option<&[String]>,
    ) -> Result<(usize, Vec<String>), ProtocolError> {
        self.known(name).await?;
        let letters = self.letters(name, usize::MAX).await?;
        let subject = dead::redrive_subject(&self.core.config.prefix, name);
        let mut n = 0;
        for (seq, d) in &letters {
            if ids.is_some_and(|ids| !ids.contains(&d.event.id)) {
                continue;
            }
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(d.event.json.clone())
                .message_id(format!("{name}:redrive:{seq}"));
            let sent = async {
                self.core
                    .js
                    .send_publish(subject.clone(), message)
                    .await?
                    .await
            };
            tokio::time::timeout(self.core.config.timeout, sent)
                .await
                .map_err(|_| failed("redriving", "timed out"))?
                .map_err(|e| failed("redriving", e))?;
            self.groups_stream
                .delete_message(*seq)
                .await
                .map_err(|e| failed("redriving", e))?;
            n += 1;
        }
        let unknown = ids
            .unwrap_or_default()
            .iter()
            .filter(|i| !letters.iter().any(|(_, d)| d.event.id == **i))
            .cloned()
            .collect();
        Ok((n, unknown))
    }

    async fn counts(&self, name: &str) -> Result<Counts, ProtocolError> {
        let known = self.known(name).await?;
        let (main, redrive) = tokio::join!(known.consumer.get_info(), known.redrive.get_info());
        let main = main.map_err(|e| {
            if e.to_string().contains("not found") {
                self.gone(name)
            } else {
                failed("reading a group", e)
            }
        })?;
        let redrive = redrive.map_err(|e| failed("reading a group", e))?;
        let dead = self.dead_count(name).await? as u64;
        Ok(Counts {
            lag: main.num_pending + redrive.num_pending,
            lag_capped: false,
            pending: (main.num_ack_pending + redrive.num_ack_pending) as u64,
            delivered: main.delivered.consumer_sequence + redrive.delivered.consumer_sequence,
            redelivered: (main.num_redelivered + redrive.num_redelivered) as u64,
            acked: main.ack_floor.consumer_sequence + redrive.ack_floor.consumer_sequence,
            dead,
            dead_total: dead,
            ..Counts::default()
        })
    }

    fn announcements(&self) -> Option<Announcements> {
        self.announcements.lock().take()
    }
}
