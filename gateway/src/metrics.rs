//! Prometheus metrics: the names are part of the public contract (README).
//!
//! Handles are resolved once, at startup: looking a metric up by name and
//! labels on every delivery would cost more than the delivery itself.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

use crate::conn::Transport;

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; every gateway built in this
/// process (tests build many) shares it.
pub fn recorder() -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "eventwire_publish_to_write_seconds".into(),
                    ),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .expect("valid buckets")
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
        .clone()
}

pub struct Metrics {
    pub connections_sse: Gauge,
    pub connections_ws: Gauge,
    pub published: Counter,
    pub duplicates: Counter,
    pub delivered_sse: Counter,
    pub delivered_ws: Counter,
    pub replay_hit: Counter,
    pub replay_miss: Counter,
    pub publish_to_write: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        recorder();
        Metrics {
            connections_sse: gauge!("eventwire_connections", "transport" => "sse"),
            connections_ws: gauge!("eventwire_connections", "transport" => "ws"),
            published: counter!("eventwire_events_published_total"),
            duplicates: counter!("eventwire_events_duplicate_total"),
            delivered_sse: counter!("eventwire_events_delivered_total", "transport" => "sse"),
            delivered_ws: counter!("eventwire_events_delivered_total", "transport" => "ws"),
            replay_hit: counter!("eventwire_replay_total", "result" => "hit"),
            replay_miss: counter!("eventwire_replay_total", "result" => "miss"),
            publish_to_write: histogram!("eventwire_publish_to_write_seconds"),
        }
    }

    pub fn connections(&self, t: Transport) -> &Gauge {
        match t {
            Transport::Sse => &self.connections_sse,
            Transport::WebSocket => &self.connections_ws,
        }
    }

    pub fn delivered(&self, t: Transport) -> &Counter {
        match t {
            Transport::Sse => &self.delivered_sse,
            Transport::WebSocket => &self.delivered_ws,
        }
    }

    /// Counts a connection the gateway ended, by reason (`slow_consumer`, ...).
    pub fn disconnect(&self, reason: &'static str) {
        counter!("eventwire_disconnects_total", "reason" => reason).increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
