//! I/O: Plan -> Report via a ClusterApi trait over kube; health waits; inventory.

pub mod api;
pub mod cluster;
pub mod fleet;
pub mod health;
pub mod inventory;
pub mod pivoted;
pub mod progress;
pub mod removal;
pub mod stage;
pub mod status;
pub mod wait;
