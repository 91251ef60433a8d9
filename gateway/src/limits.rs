//! The cap on concurrent streaming connections, held as a permit for the
//! connection's whole life so the count can never leak.

use eventwire_protocol::{ErrorCode, ProtocolError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
}
