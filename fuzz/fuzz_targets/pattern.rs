//! Any pair of strings as pattern and topic: parsing never panics, accepted
//! ones are clean, and `covers` agrees with `matches`.
#![no_main]
use eventwire_protocol::{Pattern, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\u{1}').unwrap_or((text, ""));
    let pa = Pattern::parse(a);
    if let Ok(p) = &pa {
        assert!(!p.as_str().contains(['\n', '\r', ':', ' ', '\0']));
    }
    if let (Ok(p), Ok(t)) = (&pa, Topic::parse(b)) {
        // A pattern covers the literal pattern of every topic it matches.
        let literal = Pattern::parse(t.as_str()).expect("a topic is a pattern");
        assert_eq!(p.matches(t.as_str()), p.covers(&literal));
    }
});
