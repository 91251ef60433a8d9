//! The wire form of a stream position: `<epoch>-<offset>`.
//!
//! Clients treat it as opaque. The epoch names the stream incarnation (a
//! memory engine's process start, a JetStream stream), so a position from
//! another incarnation is recognised as foreign instead of silently reused.

use super::EngineError;

/// Positions longer than this are rejected before any parsing.
pub const MAX_POSITION_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position<'a> {
    pub epoch: &'a str,
    pub offset: u64,
}

impl<'a> Position<'a> {
    pub fn parse(s: &'a str) -> Result<Position<'a>, EngineError> {
        let bad = || {
            let shown: String = s.chars().take(32).flat_map(char::escape_default).collect();
            EngineError::InvalidPosition(format!(
                "position \"{shown}\" is not one this gateway issued (expected <epoch>-<offset>)"
            ))
        };
        if s.len() > MAX_POSITION_LEN {
            return Err(bad());
        }
        let (epoch, offset) = s.rsplit_once('-').ok_or_else(bad)?;
        if epoch.is_empty()
            || !epoch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(bad());
        }
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let offset = offset.parse().map_err(|_| bad())?;
        Ok(Position { epoch, offset })
    }

    pub fn format(epoch: &str, offset: u64) -> String {
        format!("{epoch}-{offset}")
    }
}

/// Where a history read starts, for an engine whose retained events are the
/// offsets `first..=last` of one epoch (an empty store has `first = last + 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first offset to read.
    pub start: u64,
    /// False when `since` is older than the oldest retained event.
    pub recovered: bool,
    /// The offset `since` stands for.
    pub after: Option<u64>,
}

impl Window {
    /// `None` when `since` belongs to another epoch or lies in the future (a
    /// position this engine never issued): nothing about it can be trusted,
    /// and it must not hide live events, so the read is empty and
    /// unrecovered.
    pub fn of(since: Option<&Position>, epoch: &str, first: u64, last: u64) -> Option<Window> {
        match since {
            None => Some(Window {
                start: first,
                recovered: true,
                after: None,
            }),
            Some(p) if p.epoch != epoch || p.offset > last => None,
            Some(p) => Some(Window {
                start: (p.offset + 1).max(first),
                recovered: p.offset + 1 >= first,
                after: Some(p.offset),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let s = Position::format("ab12", 42);
        assert_eq!(
            Position::parse(&s).unwrap(),
            Position {
                epoch: "ab12",
                offset: 42
            }
        );
        for bad in [
            "",
            "42",
            "-1",
            "a-",
            "a-b",
            "a b-1",
            "a-1-",
            "a\n-1",
            &"9".repeat(100),
        ] {
            assert!(Position::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Position::parse("a-99999999999999999999999").is_err());
    }

    #[test]
    fn window_bounds() {
        let at = |o| Position {
            epoch: "e",
            offset: o,
        };
        // Retained 5..=9.
        assert_eq!(Window::of(None, "e", 5, 9).unwrap().start, 5);
        let w = Window::of(Some(&at(6)), "e", 5, 9).unwrap();
        assert_eq!((w.start, w.recovered, w.after), (7, true, Some(6)));
        assert!(Window::of(Some(&at(4)), "e", 5, 9).unwrap().recovered);
        let w = Window::of(Some(&at(2)), "e", 5, 9).unwrap();
        assert_eq!((w.start, w.recovered), (5, false));
        assert_eq!(Window::of(Some(&at(10)), "e", 5, 9), None);
        assert_eq!(Window::of(Some(&at(6)), "x", 5, 9), None);
        // Empty, nothing ever written.
        assert!(Window::of(Some(&at(0)), "e", 1, 0).unwrap().recovered);
    }
}
