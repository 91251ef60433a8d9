//! Reconnect delays: exponential growth with full jitter, so a crowd of
//! clients that lost the same gateway does not come back in lockstep.

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min_ms: f64,
    max_ms: f64,
}

impl Backoff {
    pub fn new(min_ms: f64, max_ms: f64) -> Backoff {
        Backoff {
            min_ms,
            // A compare, not `f64::max` (which calls `fmax` for NaN, and
            // the options are never NaN here).
            max_ms: if max_ms > min_ms { max_ms } else { min_ms },
        }
    }

    /// The delay before attempt `attempt` (1 for the first retry): uniform
    /// between the minimum and `min × 2^(attempt-1)`, capped at the maximum.
    pub fn delay(&self, attempt: u32, random: f64) -> f64 {
        let exp = (1u32 << attempt.saturating_sub(1).min(30)) as f64;
        let grown = self.min_ms * exp;
        let cap = if grown < self.max_ms {
            grown
        } else {
            self.max_ms
        };
        self.min_ms + (cap - self.min_ms) * random.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let b = Backoff::new(500.0, 20_000.0);
        assert_eq!(b.delay(1, 0.99), 500.0);
        assert_eq!(b.delay(2, 1.0), 1000.0);
        assert_eq!(b.delay(3, 1.0), 2000.0);
        assert_eq!(b.delay(20, 1.0), 20_000.0);
        assert_eq!(b.delay(1000, 1.0), 20_000.0);
        for attempt in 1..40 {
            for r in [0.0, 0.3, 0.999] {
                let d = b.delay(attempt, r);
                assert!((500.0..=20_000.0).contains(&d), "{attempt} {r} {d}");
            }
        }
    }

    #[test]
    fn jitter_spreads_the_delay() {
        let b = Backoff::new(500.0, 20_000.0);
        assert_eq!(b.delay(6, 0.0), 500.0);
        assert_eq!(b.delay(6, 1.0), 16_000.0);
        assert_eq!(b.delay(6, 0.5), 8_250.0);
    }
}
