//! Any text as a WebSocket client frame: a typed message or a coded error.
#![no_main]
use eventwire_protocol::frame::{ClientMsg, parse_client_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_client_frame(text, 64) {
        Ok(ClientMsg::Subscribe { topics, .. }) | Ok(ClientMsg::Unsubscribe { topics, .. }) => {
            assert!(!topics.is_empty() && topics.len() <= 64);
        }
        Ok(_) => {}
        Err(e) => assert!(!e.error.message.is_empty()),
    }
});
