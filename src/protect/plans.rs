//! Per-backend caches of a protected table's statements (the view's writer, the subject-rights
//! reader), keyed by a relation.
//!
//! Invariant: an entry is used only while no relcache invalidation has named one of the
//! relations it was built from (the table, its view) since it was built; an invalidation only
//! marks entries stale (no plan is freed inside an invalidation callback), and a stale entry is
//! replaced at its next use. A caller holds its `Rc` while it runs the entry's plans, so a plan
//! is never freed while it runs.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::error::ShredError;

struct Entry<T> {
    value: Rc<T>,
    relations: [pg_sys::Oid; 2],
    stale: Cell<bool>,
}

pub struct PlanCache<T> {
    entries: RefCell<HashMap<pg_sys::Oid, Entry<T>>>,
    /// Set by an invalidation that could not mark single entries (relid 0, or map in use).
    all_stale: Cell<bool>,
}

impl<T> PlanCache<T> {
    pub fn new() -> Self {
        PlanCache { entries: RefCell::new(HashMap::new()), all_stale: Cell::new(false) }
    }

    /// The entry of `key`, built by `build` (which also names the relations it depends on) on
    /// first use or when stale.
    pub fn get(&self, key: pg_sys::Oid, build: impl FnOnce() -> Result<(T, [pg_sys::Oid; 2]), ShredError>) -> Result<Rc<T>, ShredError> {
        if self.all_stale.replace(false) {
            self.entries.borrow_mut().clear();
        }
        if let Some(e) = self.entries.borrow().get(&key) {
            if !e.stale.get() {
                return Ok(e.value.clone());
            }
        }
        let (value, relations) = build()?;
        let value = Rc::new(value);
        self.entries.borrow_mut().insert(key, Entry { value: value.clone(), relations, stale: Cell::new(false) });
        Ok(value)
    }

    /// Mark stale every entry built from `relid` (every entry for relid 0).
    pub fn invalidate(&self, relid: pg_sys::Oid) {
        match self.entries.try_borrow() {
            Ok(map) if relid != pg_sys::InvalidOid => {
                for e in map.values().filter(|e| e.relations.contains(&relid)) {
                    e.stale.set(true);
                }
            }
            _ => self.all_stale.set(true),
        }
    }
}
