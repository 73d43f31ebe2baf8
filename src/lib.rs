//! cairn: a GitOps reconciler for Cluster API fleets.
//!
//! The pure cores (`model`, `render`) take data and return data; I/O lives at the edges.

pub mod agent;
pub mod apply;
pub mod controller;
pub mod diff;
pub mod errors;
pub mod example;
pub mod kube_client;
pub mod kubeconfig;
pub mod lifecycle;
pub mod local;
pub mod model;
pub mod pivot;
pub mod preview;
pub mod render;
pub mod source;
pub mod synth;
