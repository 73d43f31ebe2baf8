//! The stage engine, I/O: a `ClusterApi` over kube, one stage applied group by group with drift
//! skipping (`stage`, cut into groups by the pure `groups`), the inventory, health predicates
//! (pure) and waits. The life of a cluster built on it is `crate::lifecycle`.

pub mod api;
pub mod groups;
pub mod health;
pub mod inventory;
#[cfg(test)]
pub mod memory;
pub mod progress;
pub mod stage;
pub mod wait;
