//! I/O: Plan -> Report via a ClusterApi trait over kube; health waits; inventory.

pub mod api;
pub mod health;
