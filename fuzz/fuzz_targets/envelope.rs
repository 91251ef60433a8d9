//! Any bytes as a published event: `ingest::prepare` must return an event or
//! an error, never panic, and an accepted event must encode on one line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(mut ev) = eventwire_gateway::publish::ingest::prepare(text, 64 * 1024, "fuzz") {
        let json = ev.encode("f-1");
        assert!(!json.contains(&b'\n') && !json.contains(&b'\r'), "an event must stay on one SSE line");
        assert!(eventwire_protocol::Topic::parse(ev.topic.as_str()).is_ok());
    }
});
