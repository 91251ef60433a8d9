//! The JetStream stream behind the engine: created on first start, brought
//! in line with the gateway's flags on every start, and watched for being
//! replaced (which would change the epoch under running gateways).

use super::NatsConfig;
use super::codec::Codec;
use crate::engine::EngineError;
use async_nats::jetstream::stream::{Config, Info, RetentionPolicy};
use async_nats::jetstream::{self, ErrorCode};
use std::time::Duration;

/// The settings the gateway owns. Anything else an operator set on the
/// stream (placement, extra subjects, sources...) is left alone.
fn apply(config: &NatsConfig, codec: &Codec, c: &mut Config) {
    let ours = codec.all_subjects();
    if !c.subjects.contains(&ours) {
        c.subjects.push(ours);
    }
    // JetStream reads 0 and -1 as "no limit" and reports -1.
    let limit = |n: usize| if n == 0 { -1 } else { n as i64 };
    c.max_messages = limit(config.max_messages);
    c.max_bytes = limit(config.max_bytes);
    c.max_age = config.max_age;
    c.duplicate_window = dedupe_window(config);
    c.num_replicas = config.replicas;
}

/// The stream's description names its epoch, so that a backend reads the
/// exact string instead of recomputing it from the creation time (which
/// many clients parse with less than nanosecond precision). Its last word
/// is the epoch (docs/NATS.md, "Positions").
pub fn description(epoch: &str) -> String {
    format!("eventwire gateway events, epoch {epoch}")
}

/// JetStream refuses a duplicate window longer than the stream's max age.
fn dedupe_window(config: &NatsConfig) -> Duration {
    if config.max_age.is_zero() {
        config.dedupe_window
    } else {
        config.dedupe_window.min(config.max_age)
    }
}

pub fn unavailable(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("NATS: {what}: {e}"))
}

/// Creates the stream, or updates the settings the gateway owns, and
/// returns its current state.
pub async fn ensure(
    js: &jetstream::Context,
    config: &NatsConfig,
    codec: &Codec,
) -> Result<Info, EngineError> {
    let existing = match js.get_stream(&config.stream).await {
        Ok(stream) => Some(stream.cached_info().clone()),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                None
            }
            _ => return Err(unavailable("reading the stream", e)),
        },
    };
    let info = match existing {
        Some(info) => info,
        None => {
            let mut wanted = Config {
                name: config.stream.clone(),
                ..Config::default()
            };
            apply(config, codec, &mut wanted);
            tracing::info!(stream = %config.stream, subjects = ?wanted.subjects, replicas = wanted.num_replicas, "creating the JetStream stream");
            let mut stream = js
                .create_stream(wanted)
                .await
                .map_err(|e| unavailable("creating the stream", e))?;
            stream
                .info()
                .await
                .cloned()
                .map_err(|e| unavailable("reading the stream", e))?
        }
    };
    if info.config.retention != RetentionPolicy::Limits {
        // Interest or work-queue retention deletes what consumers have
        // read, so history and resume would silently lose events.
        return Err(EngineError::Unavailable(format!(
            "the JetStream stream {} has {:?} retention; the gateway needs limits retention \
             (use another --nats-stream)",
            config.stream, info.config.retention
        )));
    }
    let mut wanted = info.config.clone();
    apply(config, codec, &mut wanted);
    wanted.description = Some(description(&super::codec::epoch(
        info.created.unix_timestamp_nanos(),
    )));
    if wanted == info.config {
        return Ok(info);
    }
    tracing::info!(stream = %config.stream, "updating the JetStream stream to match this gateway's flags");
    js.update_stream(wanted)
        .await
        .map_err(|e| unavailable("updating the stream", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_window_fits_in_max_age() {
        let mut c = NatsConfig::for_tests("nats://127.0.0.1:1", "S", "p");
        c.dedupe_window = Duration::from_secs(120);
        assert_eq!(dedupe_window(&c), Duration::from_secs(120));
        c.max_age = Duration::from_secs(60);
        assert_eq!(dedupe_window(&c), Duration::from_secs(60));
    }
}
