//! The example fleet (`example-repo/`), compiled into the binary so a new user can render a
//! realistic fleet with nothing checked out.

use crate::model::RepoSnapshot;

include!(concat!(env!("OUT_DIR"), "/example_repo.rs"));

/// The embedded example repository as a snapshot.
pub fn example_snapshot() -> RepoSnapshot {
    RepoSnapshot::from_files(FILES.iter().map(|(path, text)| (*path, text.as_bytes())))
}
