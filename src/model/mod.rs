//! The config repository: types, loading with source positions, and validation.

pub mod budget;
pub mod diag;
pub mod load;
pub mod providers;
pub mod schema;
pub mod snapshot;
pub mod types;
pub mod validate;
pub mod yaml;

pub use diag::{Diagnostic, Severity};
pub use load::{LoadedRepo, Located, load};
pub use snapshot::RepoSnapshot;
pub use validate::{ResolvedCluster, resolve};
