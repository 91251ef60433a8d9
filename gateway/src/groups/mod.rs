//! Consumer groups: named, durable cursors over the events matching some
//! patterns, shared by competing workers with acks, retries and dead letters.
//!
//! Everything that works in a group goes through [`GroupBackend`]
//! (`backend.rs`). This file is the gateway's own implementation of it: the
//! registry (create, find, delete, list) and the two background tasks every
//! gateway runs for its groups: one wakes waiting fetches when a matching
//! event arrives and times out deliveries; one announces new dead letters
//! as events. `group.rs` is one group at work, `ledger.rs` its state,
//! `store.rs` where that state is kept, `http.rs` the HTTP API.

pub mod backend;
pub mod config;
pub mod consume;
pub mod group;
pub mod http;
pub mod ledger;
pub mod store;

use crate::engine::{Engine, EngineError, HistoryQuery, NewEvent};
use async_trait::async_trait;
pub use backend::GroupBackend;
use config::{GroupConfig, Start};
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
pub use group::Group;
use group::{Counts, Delivery, Outcome};
use ledger::{DeadLetter, Ledger};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
pub use store::{GroupStore, MemoryGroupStore, StoredGroup};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often deliveries are checked for timeouts when no worker fetches,
/// so dead letters appear (and are announced) without one.
const TICK: Duration = Duration::from_millis(250);

/// A per-group metric: name, Prometheus type, and its value in the counts.
type Series = (&'static str, &'static str, fn(&group::Counts) -> u64);

/// The topic a group's new dead letters are announced on.
pub fn dead_letter_topic(group: &str) -> String {
    format!("eventwire.groups.{group}.dead")
}

pub struct Groups {
    engine: Arc<dyn Engine>,
    store: Arc<dyn GroupStore>,
    map: RwLock<BTreeMap<String, Arc<Group>>>,
    /// Serializes creation, which awaits the engine between the existence
    /// check and the insert.
    creating: tokio::sync::Mutex<()>,
    announce: mpsc::UnboundedSender<(String, DeadLetter)>,
    announcements: parking_lot::Mutex<Option<backend::Announcements>>,
}

impl Groups {
    /// Loads the groups the store holds and starts the background tasks.
    pub async fn start(
        engine: Arc<dyn Engine>,
        store: Arc<dyn GroupStore>,
    ) -> Result<Arc<Groups>, EngineError> {
        let (announce, announcements) = mpsc::unbounded_channel();
        let mut map = BTreeMap::new();
        for stored in store.load()? {
            let name = stored.name.clone();
            let group = Group::new(stored, store.clone(), engine.clone(), announce.clone());
            map.insert(name, Arc::new(group));
        }
        let live = engine
            .subscribe(Pattern::parse(">").expect("valid"))
            .await?;
        let groups = Arc::new(Groups {
            engine: engine.clone(),
            store,
            map: RwLock::new(map),
            creating: tokio::sync::Mutex::new(()),
            announce,
            announcements: parking_lot::Mutex::new(Some(announcements)),
        });
        tokio::spawn(watch(Arc::downgrade(&groups), live.events));
        Ok(groups)
    }

    /// The running group of that name.
    pub fn group(&self, name: &str) -> Result<Arc<Group>, ProtocolError> {
        self.map.read().get(name).cloned().ok_or_else(|| {
            ProtocolError::new(ErrorCode::GroupNotFound, format!("no group named {name}"))
        })
    }

    fn all(&self) -> Vec<Arc<Group>> {
        self.map.read().values().cloned().collect()
    }

    /// Creates a group, or confirms one with the same configuration.
    /// Returns the group and whether it was created.
    pub async fn create_group(
        &self,
        name: &str,
        config: GroupConfig,
    ) -> Result<(Arc<Group>, bool), ProtocolError> {
        config::check_name(name)?;
        let _creating = self.creating.lock().await;
        if let Ok(existing) = self.group(name) {
            if existing.config == config {
                return Ok((existing, false));
            }
            return Err(ProtocolError::new(
                ErrorCode::GroupConflict,
                format!(
                    "group {name} exists with another configuration; delete it first to change it"
                ),
            ));
        }
        let cursor = match &config.start {
            Start::Earliest => None,
            Start::New => Some(self.newest().await?),
            Start::After(p) => {
                check_start(self.engine.as_ref(), &config, p).await?;
                Some(p.clone())
            }
        };
        let stored = StoredGroup {
            name: name.to_owned(),
            config,
            incarnation: format!("g{:08x}", uuid::Uuid::new_v4().as_u128() as u32),
            ledger: Ledger::new(cursor),
        };
        self.store.create(&stored)?;
        let group = Arc::new(Group::new(
            stored,
            self.store.clone(),
            self.engine.clone(),
            self.announce.clone(),
        ));
        self.map.write().insert(name.to_owned(), group.clone());
        Ok((group, true))
    }

    /// The newest position: where the engine's live stream would start now.
    async fn newest(&self) -> Result<String, EngineError> {
        let probe = self
            .engine
            .subscribe(Pattern::parse(">").expect("valid"))
            .await?;
        Ok(probe.from)
    }
}

#[async_trait]
impl GroupBackend for Groups {
    async fn create(&self, name: &str, config: GroupConfig) -> Result<bool, ProtocolError> {
        Ok(self.create_group(name, config).await?.1)
    }

    async fn get(&self, name: &str) -> Result<GroupConfig, ProtocolError> {
        Ok(self.group(name)?.config.clone())
    }

    async fn list(&self) -> Result<Vec<String>, ProtocolError> {
        Ok(self.map.read().keys().cloned().collect())
    }

    async fn delete(&self, name: &str) -> Result<(), ProtocolError> {
        let group = self.group(name)?;
        self.store.remove(name)?;
        self.map.write().remove(name);
        group.delete();
        Ok(())
    }

    async fn fetch(
        &self,
        name: &str,
        max: usize,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Vec<Delivery>, ProtocolError> {
        self.group(name)?.fetch(max, wait, stop).await
    }

    async fn ack(&self, name: &str, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError> {
        self.group(name)?.ack(handles)
    }

    async fn nack(
        &self,
        name: &str,
        handles: &[String],
        delay: Option<Duration>,
        reason: Option<String>,
    ) -> Result<Vec<Outcome>, ProtocolError> {
        self.group(name)?.nack(handles, delay, reason)
    }

    async fn extend(&self, name: &str, handles: &[String]) -> Result<Vec<Outcome>, ProtocolError> {
        self.group(name)?.extend(handles)
    }

    async fn dead(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, usize), ProtocolError> {
        Ok(self.group(name)?.dead(limit))
    }

    async fn redrive(
        &self,
        name: &str,
        ids: Option<&[String]>,
    ) -> Result<(usize, Vec<String>), ProtocolError> {
        self.group(name)?.redrive(ids)
    }

    async fn counts(&self, name: &str) -> Result<Counts, ProtocolError> {
        self.group(name)?.counts().await
    }

    fn announcements(&self) -> Option<backend::Announcements> {
        self.announcements.lock().take()
    }
}

/// Appends each group's counts to a Prometheus text exposition.
pub async fn render_metrics(backend: &dyn GroupBackend, out: &mut String) {
    use std::fmt::Write;
    let Ok(names) = backend.list().await else {
        return;
    };
    if names.is_empty() {
        return;
    }
    let mut rows = Vec::with_capacity(names.len());
    for name in &names {
        if let Ok(c) = backend.counts(name).await {
            rows.push((name.as_str(), c));
        }
    }
    let series: [Series; 6] = [
        ("eventwire_group_lag", "gauge", |c| c.lag),
        ("eventwire_group_pending", "gauge", |c| c.pending),
        ("eventwire_group_dead", "gauge", |c| c.dead),
        ("eventwire_group_delivered_total", "counter", |c| {
            c.delivered
        }),
        ("eventwire_group_redelivered_total", "counter", |c| {
            c.redelivered
        }),
        ("eventwire_group_dead_total", "counter", |c| c.dead_total),
    ];
    for (name, kind, value) in series {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (group, c) in &rows {
            // Group names are topics: nothing in them needs escaping.
            let _ = writeln!(out, "{name}{{group=\"{group}\"}} {}", value(c));
        }
    }
}

/// Wakes the groups a live event matches, and times deliveries out.
async fn watch(groups: Weak<Groups>, mut live: crate::engine::EventStream) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = live.recv() => {
                let Some(ev) = ev else { return };
                let Some(groups) = groups.upgrade() else { return };
                for g in groups.map.read().values() {
                    if g.config.matches(ev.topic.as_str()) {
                        g.wake();
                    }
                }
            }
            _ = tick.tick() => {
                let Some(groups) = groups.upgrade() else { return };
                let now = group::now_ms();
                for g in groups.all() {
                    if let Err(e) = g.expire(now) {
                        tracing::warn!(group = %g.name, error = %e, "could not time deliveries out");
                    }
                }
            }
        }
    }
}

/// Checks that a group may start after position `p`: a position of this
/// engine with every matching event after it still retained.
pub async fn check_start(
    engine: &dyn Engine,
    config: &GroupConfig,
    p: &str,
) -> Result<(), ProtocolError> {
    engine.check_position(p)?;
    let h = engine
        .history(HistoryQuery {
            patterns: config.topics.clone(),
            since: Some(p.to_owned()),
            limit: 1,
        })
        .await?;
    if !h.recovered {
        return Err(ProtocolError::new(
            ErrorCode::InvalidPosition,
            "`start` is older than the events retained, or not a position of this engine; use \"earliest\" or \"new\"",
        ));
    }
    Ok(())
}

/// The event announcing a new dead letter on [`dead_letter_topic`].
pub fn announcement(group: &str, dead: &DeadLetter) -> Result<NewEvent, ProtocolError> {
    let raw = serde_json::json!({
        "type": dead_letter_topic(group),
        "source": "eventwire/groups",
        "data": {
            "group": group,
            "id": dead.event.id,
            "seq": dead.event.seq,
            "topic": dead.event.topic.as_str(),
            "attempts": dead.attempts,
            "reason": dead.reason,
            "time": http::rfc3339(dead.at),
        },
    })
    .to_string();
    crate::publish::ingest::prepare(&raw, usize::MAX, "eventwire/groups")
}

/// Publishes each new dead letter on [`dead_letter_topic`] through the
/// publish pipeline, so monitoring can subscribe to it like to any other
/// event, and it counts as published.
///
/// Holds the gateway weakly: the groups it serves hold the sending end.
pub async fn announce(
    shared: Weak<crate::state::Shared>,
    mut announcements: backend::Announcements,
) {
    while let Some((group, dead)) = announcements.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let event = match announcement(&group, &dead) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "could not build a dead-letter announcement");
                continue;
            }
        };
        if let Err(e) = crate::publish::accept_prepared(&shared, event).await {
            tracing::warn!(group = %group, error = %e, "could not announce a dead letter");
        }
    }
}
