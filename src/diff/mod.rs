//! PURE diff planning (DESIGN.md §4): what the server-side dry-run apply of a stage returned and
//! what is live go in, a [`Plan`] comes out. No kube, tokio or I/O here: the apply layer fetches
//! live objects and dry-run results and hands them over as plain JSON values.
//!
//! - [`normalize`] drops what the server owns (status, managedFields, resourceVersion, ...).
//! - [`redact`] masks Secret values, so nothing printed can carry one.
//! - [`plan`] decides per object: create, update, unchanged, delete (prune) or orphan.
//! - [`text`] prints unified YAML diffs, the summary table and `--output json`.

pub mod key;
pub mod normalize;
pub mod plan;
pub mod redact;
pub mod text;

pub use key::ObjectKey;
pub use normalize::normalize;
pub use plan::{Action, ObjectChange, Observed, Plan, Summary, plan_stage};
pub use redact::{Redacted, redact_pair};
pub use text::{render_json, render_plan, render_text, summary_table, unified_diff};
