//! The live feed: the one JetStream consumer a gateway reads the stream
//! through, however many browsers it serves.
//!
//! The consumer is ordered and ephemeral (no acks, in memory, one replica,
//! reaped by the server when the gateway goes away). The feed remembers the
//! last stream sequence it handed on; whenever the consumer breaks (NATS
//! restarted, a missed heartbeat, a gap in the consumer sequence) it makes a
//! new one starting right after that sequence. So an event is never skipped
//! and never handed on twice, however often the consumer is replaced.

use super::Core;
use crate::engine::EngineError;
use crate::engine::{Event, EventStream, Subscription};
use async_nats::jetstream::consumer::pull::{self, Stream as Messages};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use eventwire_protocol::Pattern;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Messages asked for per pull request; the client asks again at half.
const BATCH: usize = 512;
/// How often an idle server proves the consumer is alive; two missed in a
/// row replace the consumer.
const HEARTBEAT: Duration = Duration::from_secs(2);
const EXPIRES: Duration = Duration::from_secs(30);
/// How long the server keeps a consumer nobody pulls from: a gateway that
/// died leaves nothing behind for long.
pub const INACTIVE: Duration = Duration::from_secs(30);

/// An ephemeral consumer config reading from `start` on: shared by the live
/// feed and history reads.
pub fn consumer_config(filter: String, start: u64) -> pull::Config {
    pull::Config {
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: start.max(1),
        },
        ack_policy: AckPolicy::None,
        filter_subject: filter,
        inactive_threshold: INACTIVE,
        memory_storage: true,
        num_replicas: 1,
        ..pull::Config::default()
    }
}

/// Starts a feed of the events matching `pattern` published after now.
pub async fn subscribe(core: Arc<Core>, pattern: &Pattern) -> Result<Subscription, EngineError> {
    let info = core.stream_info().await?;
    let from = info.state.last_sequence;
    let filter = core.codec.filter(pattern.as_str());
    let consumer = core
        .create_consumer(consumer_config(filter.clone(), from + 1))
        .await?;
    let (tx, rx): (_, EventStream) = mpsc::unbounded_channel();
    let (gaps_tx, gaps) = tokio::sync::watch::channel(0);
    let feed = Feed {
        id: core.next_feed_id(),
        core: core.clone(),
        filter,
        last: from,
        tx,
        gaps: gaps_tx,
    };
    tokio::spawn(feed.run(consumer));
    Ok(Subscription {
        events: rx,
        from: core.codec.position(from),
        gaps,
    })
}

struct Feed {
    id: u64,
    core: Arc<Core>,
    filter: String,
    /// The stream sequence of the last message handed on (or skipped as
    /// undecodable): the next consumer starts right after it.
    last: u64,
    tx: mpsc::UnboundedSender<Arc<Event>>,
    /// Counts gaps, for the hub (see `Subscription::gaps`).
    gaps: tokio::sync::watch::Sender<u64>,
}

/// Why a consumer stopped being read.
enum Stop {
    /// The subscriber is gone: the feed ends.
    Unsubscribed,
    /// The consumer broke: make a new one.
    Broken(String),
}

impl Feed {
    async fn run(mut self, first: PullConsumer) {
        let mut consumer = Some(first);
        let mut attempt: u32 = 0;
        loop {
            let current = match consumer.take() {
                Some(c) => c,
                None => {
                    let pause = backoff(attempt);
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        _ = self.tx.closed() => break,
                        _ = self.core.connected(pause) => {}
                    }
                    if self.core.broken().is_some() {
                        // The stream was replaced: nothing this feed could
                        // deliver would carry a valid position. Stay quiet;
                        // `ready` and `publish` report why.
                        self.tx.closed().await;
                        break;
                    }
                    // Also checks that the stream is still the same incarnation.
                    let info = match self.core.stream_info().await {
                        Ok(info) => info,
                        Err(e) => {
                            self.core.feed_trouble(self.id, Some(describe(&e)));
                            continue;
                        }
                    };
                    if info.state.first_sequence > self.last + 1 {
                        // Retention evicted events this feed never handed on
                        // (an outage longer than the history). They cannot be
                        // delivered; say so loudly. Clients that resume from
                        // before the gap are told `recovered: false`.
                        self.core.counters.feed_gaps.increment(1);
                        self.gaps.send_modify(|n| *n += 1);
                        tracing::error!(
                            after = self.last,
                            first_retained = info.state.first_sequence,
                            "live feed resumes past evicted events: connected clients miss them"
                        );
                    }
                    let config = consumer_config(self.filter.clone(), self.last + 1);
                    match self.core.create_consumer(config).await {
                        Ok(c) => c,
                        Err(e) => {
                            self.core.feed_trouble(self.id, Some(describe(&e)));
                            continue;
                        }
                    }
                }
            };
            let name = current.cached_info().name.clone();
            let stop = match current
                .stream()
                .max_messages_per_batch(BATCH)
                .heartbeat(HEARTBEAT)
                .expires(EXPIRES)
                .messages()
                .await
            {
                Ok(messages) => {
                    attempt = 0;
                    self.core.feed_trouble(self.id, None);
                    self.pump(messages).await
                }
                Err(e) => Stop::Broken(format!("cannot read the consumer: {e}")),
            };
            self.core.forget_consumer(name);
            match stop {
                Stop::Unsubscribed => break,
                Stop::Broken(why) => {
                    self.core.counters.feed_restarts.increment(1);
                    tracing::warn!(filter = %self.filter, after = self.last, reason = %why, "live feed from JetStream interrupted; resuming after the last event handed on");
                    self.core.feed_trouble(self.id, Some(why));
                }
            }
        }
        self.core.feed_trouble(self.id, None);
    }

    /// Hands messages on until the consumer breaks or nobody listens.
    async fn pump(&mut self, mut messages: Messages) -> Stop {
        let mut expected = 1;
        let mut disconnects = self.core.disconnects.clone();
        disconnects.mark_unchanged();
        loop {
            let next = tokio::select! {
                _ = self.tx.closed() => return Stop::Unsubscribed,
                _ = disconnects.changed() => return Stop::Broken("disconnected from NATS".into()),
                next = messages.next() => next,
            };
            let msg = match next {
                None => return Stop::Broken("the consumer ended".into()),
                Some(Err(e)) => return Stop::Broken(e.to_string()),
                Some(Ok(msg)) => msg,
            };
            let (consumer_seq, stream_seq, stored_at) = match msg.info() {
                Ok(i) => (i.consumer_sequence, i.stream_sequence, i.published),
                Err(e) => return Stop::Broken(format!("unreadable message metadata: {e}")),
            };
            if consumer_seq != expected {
                return Stop::Broken(format!(
                    "consumer sequence {consumer_seq} where {expected} was due"
                ));
            }
            expected += 1;
            if stream_seq <= self.last {
                continue;
            }
            self.last = stream_seq;
            match self.core.codec.decode(
                &msg.subject,
                msg.headers.as_ref(),
                &msg.payload,
                stream_seq,
                SystemTime::from(stored_at),
            ) {
                Ok(ev) => {
                    if self.tx.send(ev).is_err() {
                        return Stop::Unsubscribed;
                    }
                }
                Err(why) => {
                    self.core
                        .report_rejected(&msg.subject, Some(stream_seq), msg.headers.as_ref(), &why)
                        .await;
                }
            }
        }
    }
}

fn describe(e: &EngineError) -> String {
    match e {
        EngineError::Unavailable(m) | EngineError::InvalidPosition(m) => m.clone(),
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(match attempt {
        0 => 50,
        1 => 200,
        2 => 500,
        3 => 1000,
        _ => 2000,
    })
}
