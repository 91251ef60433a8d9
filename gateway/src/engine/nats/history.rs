//! History reads: the retained events after a position, from the stream.
//!
//! The stream's state (first and last sequence) decides `recovered` through
//! the same [`Window`] as every engine. The events themselves come through a
//! short-lived ephemeral consumer that starts at the right sequence and is
//! deleted after the read; a resume from the newest position (the common
//! case after a short disconnect) needs no consumer at all.

use super::Core;
use super::feed::consumer_config;
use crate::engine::position::{Position, Window};
use crate::engine::{EngineError, History, HistoryQuery};
use futures_util::StreamExt;
use std::time::SystemTime;

/// Most messages fetched per request.
const PAGE: u64 = 1024;

pub async fn read(core: &Core, query: HistoryQuery) -> Result<History, EngineError> {
    let since = query.since.as_deref().map(Position::parse).transpose()?;
    if since.as_ref().is_some_and(|p| p.epoch != core.codec.epoch) {
        return Ok(History::default());
    }
    let info = core.stream_info().await?;
    // An empty stream reports first = last + 1 (or 0 when never written).
    let first = info.state.first_sequence.max(1);
    let last = info.state.last_sequence;
    let Some(Window {
        start,
        recovered,
        after,
    }) = Window::of(since.as_ref(), &core.codec.epoch, first, last)
    else {
        return Ok(History::default());
    };
    let mut history = History {
        events: Vec::new(),
        recovered,
        after,
        more: false,
    };
    if start > last {
        return Ok(history);
    }
    // One pattern filters on the server; several are matched here, since
    // NATS 2.9 takes a single filter subject per consumer.
    let server_filtered = query.patterns.len() == 1;
    let filter = match query.patterns.as_slice() {
        [one] => core.codec.filter(one.as_str()),
        _ => core.codec.all_subjects(),
    };
    let consumer = core.create_consumer(consumer_config(filter, start)).await?;
    let name = consumer.cached_info().name.clone();
    let mut pending = consumer.cached_info().num_pending;
    let result = async {
        'read: while pending > 0 {
            let mut want = pending.min(PAGE);
            if server_filtered {
                // Every pending message matches: the count alone says
                // whether there is more.
                let missing = (query.limit - history.events.len()) as u64;
                if missing == 0 {
                    history.more = true;
                    break;
                }
                want = want.min(missing);
            }
            let mut batch = consumer
                .fetch()
                .max_messages(want as usize)
                .expires(core.config.timeout)
                .messages()
                .await
                .map_err(|e| super::unavailable("reading history", e))?;
            let mut got = 0;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| super::unavailable("reading history", e))?;
                got += 1;
                let info = msg
                    .info()
                    .map_err(|e| super::unavailable("reading history", e))?;
                pending = info.pending;
                let ev = match core.codec.decode(
                    &msg.subject,
                    msg.headers.as_ref(),
                    &msg.payload,
                    info.stream_sequence,
                    SystemTime::from(info.published),
                ) {
                    Ok(ev) => ev,
                    Err(_) => continue,
                };
                if !query.patterns.iter().any(|p| p.matches(ev.topic.as_str())) {
                    continue;
                }
                if history.events.len() == query.limit {
                    history.more = true;
                    break 'read;
                }
                history.events.push(ev);
            }
            if got == 0 {
                break;
            }
        }
        Ok::<_, EngineError>(())
    }
    .await;
    core.forget_consumer(name);
    result.map(|()| history)
}
