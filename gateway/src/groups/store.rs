//! Where a group's state is kept: behind [`GroupStore`], so that each engine
//! brings its own (memory now; the durable disk engine next).
//!
//! A group keeps its working state in memory and journals every change to
//! its store before it answers the request that caused it. What a store
//! must provide:
//!
//! - `create` and `remove` are durable before they return;
//! - `record` applies the whole list or none of it, and is durable once a
//!   `sync` that starts after it returns: the group calls `sync` after
//!   releasing its lock and before it answers `fetch`, `ack`, `nack`,
//!   `extend` or `redrive`, so requests working at the same time share one
//!   sync (a store may as well make `record` durable itself and `sync` a
//!   no-op);
//! - `load` gives back, after a restart (SIGKILL included), every group with
//!   the ledger that applying all recorded changes in order with
//!   [`Ledger::apply`] produces. Changes carry whole events (`Deliver`), so
//!   a store can keep pending events and dead letters even after the
//!   engine's retention dropped them. A store may compact (e.g. write the
//!   ledger and drop the changes before it): replaying is idempotent.
//!
//! `record` is called with the group's lock held, so calls for one group are
//! never concurrent and arrive in order.

use super::config::GroupConfig;
use super::ledger::{Change, Ledger};
use crate::engine::EngineError;
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// A group as a store holds it.
#[derive(Debug, Clone)]
pub struct StoredGroup {
    pub name: String,
    pub config: GroupConfig,
    /// Named in every handle, so a handle from a deleted and recreated
    /// group (or from another gateway's group) is unknown, not confused.
    pub incarnation: String,
    pub ledger: Ledger,
}

pub trait GroupStore: Send + Sync + 'static {
    /// Every group held, as it stood after its last recorded change.
    fn load(&self) -> Result<Vec<StoredGroup>, EngineError>;

    fn create(&self, group: &StoredGroup) -> Result<(), EngineError>;

    fn record(&self, name: &str, changes: &[Change]) -> Result<(), EngineError>;

    fn remove(&self, name: &str) -> Result<(), EngineError>;

    /// Makes every change recorded before this call durable.
    fn sync(&self) -> Result<(), EngineError> {
        Ok(())
    }
}

/// Groups that last as long as the store value: the memory engine's. It
/// keeps a ledger per group built from the journal alone, so tests can
/// prove the journal is complete by building a second gateway on the same
/// store, as a durable store's restart would.
#[derive(Default)]
pub struct MemoryGroupStore {
    groups: Mutex<BTreeMap<String, StoredGroup>>,
}

impl MemoryGroupStore {
    pub fn new() -> MemoryGroupStore {
        MemoryGroupStore::default()
    }
}

impl GroupStore for MemoryGroupStore {
    fn load(&self) -> Result<Vec<StoredGroup>, EngineError> {
        Ok(self.groups.lock().values().cloned().collect())
    }

    fn create(&self, group: &StoredGroup) -> Result<(), EngineError> {
        self.groups.lock().insert(group.name.clone(), group.clone());
        Ok(())
    }

    fn record(&self, name: &str, changes: &[Change]) -> Result<(), EngineError> {
        let mut groups = self.groups.lock();
        let group = groups.get_mut(name).ok_or_else(|| {
            EngineError::Unavailable(format!("group {name} is not in the group store"))
        })?;
        for c in changes {
            group.ledger.apply(c);
        }
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), EngineError> {
        self.groups.lock().remove(name);
        Ok(())
    }
}
