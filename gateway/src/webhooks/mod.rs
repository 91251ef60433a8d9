//! Webhooks: events pushed to a backend's HTTP route, signed per the
//! Standard Webhooks spec, with retries, dead letters and redrive.
//!
//! Each webhook is a consumer group (`webhooks.{name}`) plus a dispatcher
//! that works in it like any worker: fetch, POST, ack or nack. Retries,
//! `max_deliver`, dead letters, order under `max_inflight: 1` and the
//! group's durability are the group's; this module adds the HTTP side.
//!
//! `config.rs` is the PUT body, `target.rs` where requests may go,
//! `sign.rs` the signature, `dispatch.rs` the delivery loop, `store.rs`
//! the webhooks file, `http.rs` the API.

pub mod config;
pub mod dispatch;
pub mod http;
pub mod sign;
pub mod store;
pub mod target;

use crate::groups::backend::GroupBackend;
use config::{WebhookConfig, WebhookSpec};
use eventwire_protocol::{ErrorCode, ProtocolError};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use store::{FileStore, WebhooksFile};
use tokio_util::sync::CancellationToken;

/// Per-webhook counters, for `GET /v1/webhooks/{name}` and `/metrics`.
#[derive(Default)]
pub struct Stats {
    attempts: AtomicU64,
    delivered: AtomicU64,
    failures: AtomicU64,
    dead: AtomicU64,
    latency_us: AtomicU64,
    last_failure: Mutex<Option<(u64, String)>>,
}

impl Stats {
    fn attempted(&self, took: Duration) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.latency_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, reason: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_failure.lock() = Some((crate::groups::group::now_ms(), reason.to_owned()));
    }

    fn dead(&self) {
        self.dead.fetch_add(1, Ordering::Relaxed);
    }
}

/// One webhook: its configuration, group, counters and dispatcher.
pub struct Hook {
    pub name: String,
    pub config: WebhookConfig,
    /// The backing group's name, and the groups it lives in.
    pub group: String,
    pub groups: Arc<dyn GroupBackend>,
    pub stats: Stats,
    /// Stops the dispatcher: on delete and at shutdown.
    stop: CancellationToken,
}

pub struct Webhooks {
    groups: Arc<dyn GroupBackend>,
    client: reqwest::Client,
    map: RwLock<BTreeMap<String, Arc<Hook>>>,
    /// Serializes creation and deletion (and so the file's rewrites).
    changing: tokio::sync::Mutex<()>,
    store: Option<FileStore>,
    shutdown: CancellationToken,
    max_topics: usize,
}

/// Where the webhooks come from at startup.
pub struct Sources {
    /// The durable engine's directory: webhooks are kept there.
    pub keep_in: Option<PathBuf>,
    /// `--webhooks FILE`.
    pub declared: Option<PathBuf>,
}

impl Webhooks {
    /// Loads the kept webhooks, then the declared ones, and starts their
    /// dispatchers.
    pub async fn start(
        groups: Arc<dyn GroupBackend>,
        sources: Sources,
        max_topics: usize,
        shutdown: CancellationToken,
    ) -> Result<Arc<Webhooks>, String> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(target::GuardedResolver))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| format!("webhooks: cannot build the HTTP client: {e}"))?;
        let hooks = Arc::new(Webhooks {
            groups,
            client,
            map: RwLock::new(BTreeMap::new()),
            changing: tokio::sync::Mutex::new(()),
            store: sources.keep_in.as_deref().map(FileStore::new),
            shutdown,
            max_topics,
        });
        if let Some(store) = &hooks.store {
            for (name, spec) in store.load()?.webhooks {
                // Kept webhooks were checked when created; their names are
                // checked again at every connection.
                hooks
                    .create(&name, spec, false)
                    .await
                    .map_err(|e| format!("kept webhook {name}: {e}"))?;
            }
        }
        if let Some(path) = &sources.declared {
            for (name, spec) in store::read(path, false)?.webhooks {
                hooks.create(&name, spec, true).await.map_err(|e| {
                    format!(
                        "--webhooks {}: webhook {name}: {e} (a webhook that exists with another configuration must be deleted through the API first)",
                        path.display()
                    )
                })?;
            }
        }
        Ok(hooks)
    }

    pub fn get(&self, name: &str) -> Result<Arc<Hook>, ProtocolError> {
        self.map.read().get(name).cloned().ok_or_else(|| {
            ProtocolError::new(
                ErrorCode::WebhookNotFound,
                format!("no webhook named {name}"),
            )
        })
    }

    pub fn list(&self) -> Vec<Arc<Hook>> {
        self.map.read().values().cloned().collect()
    }

    /// Creates a webhook, or confirms one with the same configuration.
    /// `resolve` also refuses, now, a host name that resolves to a refused
    /// address. Returns the webhook and whether it was created.
    pub async fn create(
        self: &Arc<Self>,
        name: &str,
        spec: WebhookSpec,
        resolve: bool,
    ) -> Result<(Arc<Hook>, bool), ProtocolError> {
        config::check_name(name)?;
        let config = spec.check(self.max_topics)?;
        if resolve {
            target::check_at_put(&config.url).await?;
        }
        let _changing = self.changing.lock().await;
        if let Ok(existing) = self.get(name) {
            if existing.config == config {
                return Ok((existing, false));
            }
            return Err(ProtocolError::new(
                ErrorCode::WebhookConflict,
                format!(
                    "webhook {name} exists with another configuration; delete it first to change it"
                ),
            ));
        }
        let group_name = config::group_name(name);
        self.groups
            .create(&group_name, config.group())
            .await
            .map_err(|e| match e.code {
                ErrorCode::GroupConflict => ProtocolError::new(
                    ErrorCode::WebhookConflict,
                    format!(
                        "the consumer group {group_name} exists with another configuration; delete it or choose another webhook name"
                    ),
                ),
                _ => e,
            })?;
        let hook = Arc::new(Hook {
            name: name.to_owned(),
            config,
            group: group_name.clone(),
            groups: self.groups.clone(),
            stats: Stats::default(),
            stop: self.shutdown.child_token(),
        });
        self.map.write().insert(name.to_owned(), hook.clone());
        if let Err(e) = self.keep() {
            self.map.write().remove(name);
            let _ = self.groups.delete(&group_name).await;
            tracing::error!(webhook = %name, error = %e, "could not keep the webhooks file");
            return Err(ProtocolError::new(
                ErrorCode::EngineUnavailable,
                "the webhook could not be stored; try again",
            ));
        }
        tracing::info!(webhook = %name, url = %hook.config.url, group = %group_name, "webhook created");
        tokio::spawn(dispatch::run(
            hook.clone(),
            self.client.clone(),
            Arc::downgrade(self),
        ));
        Ok((hook, true))
    }

    /// Deletes a webhook and its group (pending events and dead letters
    /// with it).
    pub async fn delete(&self, name: &str) -> Result<(), ProtocolError> {
        let _changing = self.changing.lock().await;
        let hook = self.get(name)?;
        self.map.write().remove(name);
        hook.stop.cancel();
        if let Err(e) = self.keep() {
            tracing::error!(webhook = %name, error = %e, "could not keep the webhooks file");
        }
        match self.groups.delete(&hook.group).await {
            Err(e) if e.code != ErrorCode::GroupNotFound => return Err(e),
            _ => {}
        }
        tracing::info!(webhook = %name, "webhook deleted");
        Ok(())
    }

    /// Rewrites the kept file from the map (durable engine only).
    fn keep(&self) -> std::io::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let file = WebhooksFile {
            webhooks: self
                .map
                .read()
                .iter()
                .map(|(n, h)| (n.clone(), h.config.spec()))
                .collect(),
        };
        store.save(&file)
    }

    /// Appends each webhook's counters to a Prometheus text exposition.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let hooks = self.list();
        if hooks.is_empty() {
            return;
        }
        type Series = (&'static str, fn(&Stats) -> u64);
        let counters: [Series; 4] = [
            ("eventwire_webhook_attempts_total", |s| {
                s.attempts.load(Ordering::Relaxed)
            }),
            ("eventwire_webhook_delivered_total", |s| {
                s.delivered.load(Ordering::Relaxed)
            }),
            ("eventwire_webhook_failures_total", |s| {
                s.failures.load(Ordering::Relaxed)
            }),
            ("eventwire_webhook_dead_total", |s| {
                s.dead.load(Ordering::Relaxed)
            }),
        ];
        // Webhook names are topics: nothing in them needs escaping.
        for (name, value) in counters {
            let _ = writeln!(out, "# TYPE {name} counter");
            for h in &hooks {
                let _ = writeln!(out, "{name}{{webhook=\"{}\"}} {}", h.name, value(&h.stats));
            }
        }
        let name = "eventwire_webhook_latency_seconds";
        let _ = writeln!(out, "# TYPE {name} summary");
        for h in &hooks {
            let s = &h.stats;
            let _ = writeln!(
                out,
                "{name}_sum{{webhook=\"{w}\"}} {}\n{name}_count{{webhook=\"{w}\"}} {}",
                s.latency_us.load(Ordering::Relaxed) as f64 / 1e6,
                s.attempts.load(Ordering::Relaxed),
                w = h.name
            );
        }
    }
}
