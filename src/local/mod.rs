//! The local environment (DESIGN.md §7): real API servers from test assets, the CAPI CRDs, and
//! the provider simulator.

pub mod apiserver;
pub mod assets;
pub mod certs;
pub mod crds;
pub mod env;
pub mod pidfile;
pub mod providers;
pub mod simulator;
pub mod token;
pub mod tools;

pub use apiserver::{ApiServer, ApiServerError, ApiServerOptions};
pub use assets::{AssetError, Assets};
