//! The identity of an object across revisions and API versions: group, kind, namespace, name.
//!
//! The one key type lives in the pure core, [`crate::render::kinds::ObjectKey`], so render can
//! use it without importing diff; this module re-exports it for the `cairn::diff::key::ObjectKey`
//! and `cairn::diff::ObjectKey` paths.

pub use crate::render::kinds::ObjectKey;
