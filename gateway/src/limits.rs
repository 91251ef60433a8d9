//! Limits on how much one client may take: the cap on concurrent streaming
//! connections (a permit held for the connection's whole life, so the count
//! can never leak), and token-bucket rates for emits and new connections.

use eventwire_protocol::{ErrorCode, ProtocolError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub struct ConnLimit {
    max: usize,
    current: AtomicUsize,
}

/// Returned by [`ConnLimit::try_acquire`]; dropping it frees the slot.
pub struct ConnPermit(Arc<ConnLimit>);

impl ConnLimit {
    pub fn new(max: usize) -> Arc<ConnLimit> {
        Arc::new(ConnLimit {
            max,
            current: AtomicUsize::new(0),
        })
    }

    pub fn try_acquire(self: &Arc<Self>) -> Result<ConnPermit, ProtocolError> {
        let taken = self
            .current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(ConnPermit(self.clone())),
            Err(_) => Err(ProtocolError::new(
                ErrorCode::TooManyConnections,
                format!(
                    "this gateway already holds its maximum of {} connections; retry later or elsewhere",
                    self.max
                ),
            )),
        }
    }

    pub fn in_use(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A shared allowance of some resource (bytes of request bodies being read,
/// bytes of events waiting to be routed, history reads running), taken in
/// units before the work starts and given back when the permit drops.
/// Waiting for room is bounded: past `wait`, the caller is told
/// `overloaded` instead of queueing without end.
pub struct Budget {
    units: Arc<tokio::sync::Semaphore>,
    total: usize,
    wait: std::time::Duration,
    what: &'static str,
}

impl Budget {
    pub fn new(total: usize, wait: std::time::Duration, what: &'static str) -> Budget {
        // A semaphore holds at most `MAX_PERMITS`; a take is at most u32::MAX.
        let total = total.clamp(1, u32::MAX as usize);
        Budget {
            units: Arc::new(tokio::sync::Semaphore::new(total)),
            total,
            wait,
            what,
        }
    }

    /// Takes `n` units (at most the whole budget, so a single large take can
    /// always eventually succeed), waiting up to the budget's wait.
    pub async fn take(&self, n: usize) -> Result<tokio::sync::OwnedSemaphorePermit, ProtocolError> {
        let n = n.clamp(1, self.total) as u32;
        match tokio::time::timeout(self.wait, self.units.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ProtocolError::new(
                ErrorCode::Overloaded,
                format!(
                    "the gateway is at its limit of {} and no room came free within {:?}; retry with backoff",
                    self.what, self.wait
                ),
            )),
        }
    }

    /// Takes `n` units, waiting as long as it takes: for work that already
    /// holds a bounded resource (a streaming connection's replay).
    pub async fn take_patiently(&self, n: usize) -> tokio::sync::OwnedSemaphorePermit {
        let n = n.clamp(1, self.total) as u32;
        self.units
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the semaphore is never closed")
    }

    /// Units taken now.
    pub fn in_use(&self) -> usize {
        self.total - self.units.available_permits()
    }
}

/// A token bucket: `burst` tokens at most, refilled at `rate` per second.
/// A rate of 0 means unlimited.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens if there are that many; all or nothing.
    pub fn try_take(&mut self, n: u32) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= f64::from(n) {
            self.tokens -= f64::from(n);
            true
        } else {
            false
        }
    }

    fn is_full(&self) -> bool {
        self.rate == 0.0
            || self.tokens + self.last.elapsed().as_secs_f64() * self.rate >= self.burst
    }
}

/// One token bucket per client IP address, for new connections or for
/// publishes. Behind a reverse proxy every client shares the proxy's
/// address: raise the rate there, or set it to 0 to turn the limit off.
pub struct PerIp {
    rate: u32,
    burst: u32,
    what: &'static str,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl PerIp {
    pub fn new(rate: u32, burst: u32, what: &'static str) -> PerIp {
        PerIp {
            rate,
            burst,
            what,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `ip`, or answers `rate_limited`.
    pub fn check(&self, ip: Option<IpAddr>, n: u32) -> Result<(), ProtocolError> {
        let Some(ip) = ip.filter(|_| self.rate > 0) else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock();
        if buckets.len() > 10_000 {
            // Forget addresses that have been quiet long enough to be full.
            buckets.retain(|_, b| !b.is_full());
        }
        let bucket = buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst));
        if bucket.try_take(n) {
            Ok(())
        } else {
            Err(ProtocolError::new(
                ErrorCode::RateLimited,
                format!(
                    "too many {} from this address (at most {}/s, bursts of {})",
                    self.what, self.rate, self.burst
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_and_released() {
        let limit = ConnLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert_eq!(
            limit.try_acquire().err().unwrap().code,
            ErrorCode::TooManyConnections
        );
        drop(a);
        assert!(limit.try_acquire().is_ok());
        assert_eq!(limit.in_use(), 1);
    }

    #[tokio::test]
    async fn a_budget_waits_then_answers_overloaded() {
        let b = Budget::new(10, std::time::Duration::from_millis(50), "test units");
        let big = b.take(1_000).await.unwrap();
        assert_eq!(
            b.in_use(),
            10,
            "a take larger than the budget takes all of it"
        );
        assert_eq!(b.take(1).await.unwrap_err().code, ErrorCode::Overloaded);
        drop(big);
        let _a = b.take(4).await.unwrap();
        assert_eq!(b.in_use(), 4);
    }

    #[test]
    fn buckets_allow_bursts_then_the_rate() {
        let mut b = TokenBucket::new(10, 5);
        assert!((0..5).all(|_| b.try_take(1)));
        assert!(!b.try_take(1));
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(b.try_take(2), "about 2.5 tokens came back");
        assert!(!b.try_take(5), "all or nothing");
        let mut unlimited = TokenBucket::new(0, 1);
        assert!((0..10_000).all(|_| unlimited.try_take(1)));
    }

    #[test]
    fn per_ip_buckets_are_separate() {
        let l = PerIp::new(1, 2, "connections");
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(l.check(Some(a), 1).is_ok() && l.check(Some(a), 1).is_ok());
        assert_eq!(
            l.check(Some(a), 1).unwrap_err().code,
            ErrorCode::RateLimited
        );
        assert!(l.check(Some(b), 1).is_ok());
        assert!(l.check(None, 100).is_ok(), "no address, no limit");
    }
}
