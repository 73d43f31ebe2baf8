//! One way to print an error for a user: its message, then each cause once, joined by `: `.
//!
//! The crate's rule: a wrapping error names its step (and the object or location) and leaves
//! its cause to the error chain, as std and serde do; it never prints `{source}` itself. This
//! walks the chain. A refusal from the API server is printed as its own message with code and
//! reason (kube's Display of it adds a debug dump of the whole `Status`), and a cause whose
//! text the line already holds is not printed again (some libraries repeat their source).

use std::error::Error;

use crate::kube_client::describe;
use crate::model::diag::printable;

/// `error: cause: cause…` for `err` and its sources.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        if let Some(kube) = e.downcast_ref::<kube::Error>() {
            push(&mut text, &describe(kube));
            break;
        }
        push(&mut text, &e.to_string());
        cause = e.source();
    }
    printable(&text, true).into_owned()
}

/// [`chain`] for an `anyhow::Error` (the CLI's).
pub fn chain_anyhow(err: &anyhow::Error) -> String {
    chain(err.as_ref())
}

fn push(text: &mut String, cause: &str) {
    let cause = cause.trim();
    if cause.is_empty() || text.contains(cause) {
        return;
    }
    text.push_str(": ");
    text.push_str(cause);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("read the source Cluster")]
    struct Step {
        #[source]
        source: Object,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Cluster/c1/c1: get failed")]
    struct Object {
        #[source]
        source: kube::Error,
    }

    #[test]
    fn every_cause_prints_once_and_a_refusal_as_its_message() {
        let status = kube::core::Status::failure(
            "clusters is forbidden: User \"nobody\" cannot get",
            "Forbidden",
        )
        .with_code(403);
        let err = Step {
            source: Object {
                source: kube::Error::Api(status.boxed()),
            },
        };
        let text = chain(&err);
        assert_eq!(
            text,
            "read the source Cluster: Cluster/c1/c1: get failed: clusters is forbidden: \
             User \"nobody\" cannot get (403 Forbidden)"
        );
        assert_eq!(text.matches("forbidden").count(), 1);
        assert!(!text.contains("Status {") && !text.contains("ErrorResponse"));
    }

    #[test]
    fn a_cause_the_message_already_holds_is_not_repeated() {
        let err = anyhow::anyhow!("disk full").context("cannot write out/x: disk full");
        assert_eq!(chain_anyhow(&err), "cannot write out/x: disk full");
    }
}
