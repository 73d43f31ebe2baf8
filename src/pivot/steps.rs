//! PURE: the steps of a move as data, and the journal that records the last one finished.
//!
//! The journal lives on the Cluster object as the annotation `cairn.dev/pivot`: on the source
//! copy until every object exists in the target, then on the target copy (the source copy is
//! about to be deleted). Whoever finds a journal resumes after its step; every step is written
//! so that doing it twice is harmless.

use serde::{Deserialize, Serialize};

/// Annotation on the Cluster holding the [`Journal`] as JSON.
pub const JOURNAL_ANNOTATION: &str = "cairn.dev/pivot";

/// What a move calls right after each step is journaled.
pub type AfterStep = std::sync::Arc<dyn Fn(Step) + Send + Sync>;

/// The steps of a move, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The source Cluster is marked as moving (the journal starts).
    Start,
    /// The source's labelled provider CRDs are established in the target.
    InstallProviders,
    /// The target serves every kind to move; the source is provisioned.
    Check,
    /// A copy of the workload kubeconfig is kept in the management cluster.
    KeepKubeconfig,
    /// `spec.paused` is set on the source Cluster.
    Pause,
    /// No object carries `clusterctl.cluster.x-k8s.io/block-move`.
    WaitBlockMove,
    /// The first group (the Cluster) exists in the target.
    CreateFirstGroup,
    /// Every object exists in the target.
    Create,
    /// The journal moved to the target Cluster.
    HandOver,
    /// The deepest group is gone from the source.
    DeleteFirstGroup,
    /// Every moved object is gone from the source.
    Delete,
    /// `spec.paused` is cleared in the target.
    Unpause,
    /// The journal is removed.
    Finish,
}

impl Step {
    pub const ALL: [Step; 13] = [
        Step::Start,
        Step::InstallProviders,
        Step::Check,
        Step::KeepKubeconfig,
        Step::Pause,
        Step::WaitBlockMove,
        Step::CreateFirstGroup,
        Step::Create,
        Step::HandOver,
        Step::DeleteFirstGroup,
        Step::Delete,
        Step::Unpause,
        Step::Finish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Start => "start",
            Step::Check => "check",
            Step::InstallProviders => "install-providers",
            Step::KeepKubeconfig => "keep-kubeconfig",
            Step::Pause => "pause",
            Step::WaitBlockMove => "wait-block-move",
            Step::CreateFirstGroup => "create-first-group",
            Step::Create => "create",
            Step::HandOver => "hand-over",
            Step::DeleteFirstGroup => "delete-first-group",
            Step::Delete => "delete",
            Step::Unpause => "unpause",
            Step::Finish => "finish",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One line per step, for `cairn pivot --list-steps`.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Start => "the source Cluster is marked as moving (the journal starts)",
            Step::Check => "the target serves every kind; the source is fully provisioned",
            Step::InstallProviders => "the provider CRDs are established in the target",
            Step::KeepKubeconfig => "a copy of the workload kubeconfig is kept in cairn-system",
            Step::Pause => "the source Cluster is paused",
            Step::WaitBlockMove => "no object carries clusterctl.cluster.x-k8s.io/block-move",
            Step::CreateFirstGroup => "the first group (the Cluster) exists in the target",
            Step::Create => "every object exists in the target, owners rewritten",
            Step::HandOver => "the journal moved to the target Cluster",
            Step::DeleteFirstGroup => "the deepest group is gone from the source",
            Step::Delete => "every moved object is gone from the source",
            Step::Unpause => "the target Cluster is unpaused",
            Step::Finish => "the journal is removed",
        }
    }
}

/// Which way the CAPI objects go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Management cluster -> workload cluster.
    Forward,
    /// Workload cluster -> management cluster.
    Reverse,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
        }
    }
}

/// What the annotation records: the direction and the last step finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub direction: Direction,
    pub step: Step,
}

impl Journal {
    pub fn to_annotation(self) -> String {
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// The journal on a Cluster, if any; an unreadable one is an error naming its text.
    pub fn of(cluster: &serde_json::Value) -> Result<Option<Journal>, String> {
        match crate::render::kinds::annotation(cluster, JOURNAL_ANNOTATION) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text).map(Some).map_err(|e| {
                format!("annotation {JOURNAL_ANNOTATION} is not a pivot journal ({e}): {text}")
            }),
        }
    }

    /// Whether `step` still has to run for a move whose journal says this.
    pub fn pending(journal: Option<Journal>, step: Step) -> bool {
        journal.is_none_or(|j| j.step < step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_have_unique_names_in_order_and_parse_back() {
        let mut names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(Step::parse(step.name()), Some(*step));
            if i > 0 {
                assert!(Step::ALL[i - 1] < *step, "ALL is in step order");
            }
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Step::ALL.len());
        assert_eq!(Step::parse("nonsense"), None);
    }

    #[test]
    fn journal_round_trips_through_the_annotation() {
        let journal = Journal {
            direction: Direction::Reverse,
            step: Step::HandOver,
        };
        let cluster =
            json!({"metadata": {"annotations": {JOURNAL_ANNOTATION: journal.to_annotation()}}});
        assert_eq!(Journal::of(&cluster), Ok(Some(journal)));
        assert_eq!(Journal::of(&json!({"metadata": {}})), Ok(None));
        let broken = json!({"metadata": {"annotations": {JOURNAL_ANNOTATION: "{oops"}}});
        assert!(Journal::of(&broken).unwrap_err().contains("{oops"));
    }

    #[test]
    fn pending_steps_are_those_after_the_journal() {
        let at_pause = Some(Journal {
            direction: Direction::Forward,
            step: Step::Pause,
        });
        assert!(!Journal::pending(at_pause, Step::Check));
        assert!(!Journal::pending(at_pause, Step::Pause));
        assert!(Journal::pending(at_pause, Step::WaitBlockMove));
        assert!(Journal::pending(None, Step::Start));
        assert_eq!(Step::parse("hand-over"), Some(Step::HandOver));
        assert_eq!(Step::parse("bogus"), None);
    }
}
