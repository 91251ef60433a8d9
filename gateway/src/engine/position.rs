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
}
