//! The pivot: moving a cluster's CAPI objects between API servers with `clusterctl move`
//! semantics. The graph, the sequence, the checks, the copies and the steps are pure; the
//! discovery and the mover do the I/O.

pub mod checks;
pub mod copy;
pub mod discover;
pub mod graph;
pub mod mover;
#[cfg(test)]
mod mover_table;
pub mod providers;
pub mod sequence;
pub mod steps;
