//! The pivot: moving a cluster's CAPI objects between API servers with `clusterctl move`
//! semantics. The graph and the move sequence are pure; the mover (I/O, journal) comes next.

pub mod graph;
pub mod sequence;
