//! Property tests: pattern matching against a naive reference matcher, and
//! envelope round-trips through JSON.

use eventwire_protocol::{Envelope, Pattern, Topic};
use proptest::prelude::*;
use serde_json::Value;

/// The specification, written as directly as possible: recursion over segments.
fn reference_match(pattern: &[&str], topic: &[&str]) -> bool {
    match (pattern.first(), topic.first()) {
        (Some(&">"), Some(_)) => true,
        (Some(&"*"), Some(_)) => reference_match(&pattern[1..], &topic[1..]),
        (Some(p), Some(t)) => p == t && reference_match(&pattern[1..], &topic[1..]),
        (None, None) => true,
        _ => false,
    }
}

fn segment() -> impl Strategy<Value = String> {
    // A tiny alphabet so that random patterns and topics actually collide.
    prop::sample::select(vec!["a", "b", "c-d", "E_1"]).prop_map(str::to_owned)
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 1..6).prop_map(|s| s.join("."))
}

fn pattern() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof![3 => segment(), 1 => Just("*".to_owned())], 1..6),
        any::<bool>(),
    )
        .prop_map(|(mut segs, rest)| {
            if rest {
                *segs.last_mut().unwrap() = ">".to_owned();
            }
            segs.join(".")
        })
}

proptest! {
    #[test]
    fn matching_agrees_with_reference(p in pattern(), t in topic()) {
        let parsed = Pattern::parse(&p).unwrap();
        Topic::parse(&t).unwrap();
        let ps: Vec<&str> = p.split('.').collect();
        let ts: Vec<&str> = t.split('.').collect();
        prop_assert_eq!(parsed.matches(&t), reference_match(&ps, &ts));
    }

    /// `covers` agrees with its definition, checked by brute force: every
    /// topic (of up to 6 segments over the test alphabet) that the narrower
    /// pattern matches, the wider one matches too.
    #[test]
    fn covers_means_every_matching_topic_is_matched(a in pattern(), b in pattern(), topics in prop::collection::vec(topic(), 64)) {
        let (pa, pb) = (Pattern::parse(&a).unwrap(), Pattern::parse(&b).unwrap());
        if pa.covers(&pb) {
            for t in &topics {
                prop_assert!(!pb.matches(t) || pa.matches(t), "{a} covers {b} but not {t}");
            }
            // A concrete witness: b with its wildcards filled in.
            let witness: Vec<&str> = b.split('.').map(|s| if s == "*" || s == ">" { "zz" } else { s }).collect();
            prop_assert!(pa.matches(&witness.join(".")));
        } else {
            // Not covered: some topic b matches escapes a. Search a few fillers.
            let fillers = ["zz", "a", "b", "c-d", "E_1"];
            let mut found = false;
            for f in fillers {
                for extra in [false, true] {
                    let mut segs: Vec<String> = b.split('.').map(|s| if s == "*" || s == ">" { f.to_string() } else { s.to_string() }).collect();
                    if extra && b.ends_with('>') { segs.push(f.to_string()); }
                    let t = segs.join(".");
                    if pb.matches(&t) && !pa.matches(&t) { found = true; }
                }
            }
            prop_assert!(found, "{a} does not cover {b}, yet no escaping topic was found");
        }
    }

    #[test]
    fn every_topic_matches_itself_and_the_full_wildcard(t in topic()) {
        prop_assert!(Pattern::parse(&t).unwrap().matches(&t));
        prop_assert!(Pattern::parse(">").unwrap().matches(&t));
    }

    #[test]
    fn arbitrary_strings_never_panic_and_accepted_ones_are_clean(s in ".{0,80}") {
        if let Ok(t) = Topic::parse(&s) {
            prop_assert!(t.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        }
        if let Ok(p) = Pattern::parse(&s) {
            prop_assert!(!p.as_str().contains(['\n', '\r', ':', ' ', '\0']));
        }
    }

    #[test]
    fn envelope_round_trips(
        t in topic(),
        id in proptest::option::of("[a-zA-Z0-9-]{1,40}"),
        corr in proptest::option::of("[ -~]{1,40}"),
        n in any::<i64>(),
        s in ".{0,40}",
    ) {
        let mut e = Envelope::new(t, serde_json::json!({"n": n, "s": s}));
        e.id = id;
        e.correlationid = corr;
        e.validate().unwrap();
        let text = serde_json::to_string(&e).unwrap();
        prop_assert!(!text.contains('\n'), "an envelope must encode on one line");
        let back: Envelope<Value> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, e);
    }
}
