//! Push webhooks from GitHub and GitLab (PURE): is the request genuine, and what does it ask?
//!
//! GitHub signs the raw body with HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`); GitLab
//! sends the shared secret itself (`X-Gitlab-Token`). Both are compared in constant time, so
//! response timing tells a forger nothing about how much of a guess was right.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("webhooks are disabled: the controller runs without --webhook-secret-file")]
    NoSecret,
    #[error("missing {header} header")]
    MissingHeader { header: &'static str },
    #[error("the {header} header does not match the shared secret")]
    Forged { header: &'static str },
    #[error("the payload is not a {provider} push event: {detail}")]
    Payload {
        provider: &'static str,
        detail: String,
    },
}

/// What a genuine webhook asks of the controller.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// GitHub's hello when a webhook is created.
    Ping,
    /// Commits pushed to `branch`; `after` is the new head when the payload names it.
    Push {
        branch: String,
        after: Option<String>,
    },
    /// Another event, or a push to a tag: nothing to do.
    Ignored(String),
}

pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
pub const GITHUB_EVENT: &str = "x-github-event";
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
pub const GITLAB_EVENT: &str = "x-gitlab-event";

/// Checks `X-Hub-Signature-256` against the HMAC-SHA256 of the raw body.
pub fn verify_github(
    secret: Option<&[u8]>,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), WebhookError> {
    let secret = secret.ok_or(WebhookError::NoSecret)?;
    let forged = WebhookError::Forged {
        header: "X-Hub-Signature-256",
    };
    let signature = signature.ok_or(WebhookError::MissingHeader {
        header: "X-Hub-Signature-256",
    })?;
    let digest = signature
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .ok_or_else(|| forged.clone())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| forged.clone())?;
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| forged)
}

/// Checks `X-Gitlab-Token` against the shared secret.
pub fn verify_gitlab(secret: Option<&[u8]>, token: Option<&str>) -> Result<(), WebhookError> {
    let secret = secret.ok_or(WebhookError::NoSecret)?;
    let token = token.ok_or(WebhookError::MissingHeader {
        header: "X-Gitlab-Token",
    })?;
    match bool::from(token.as_bytes().ct_eq(secret)) {
        true => Ok(()),
        false => Err(WebhookError::Forged {
            header: "X-Gitlab-Token",
        }),
    }
}

/// The event of a verified GitHub request (`X-GitHub-Event` and the JSON body).
pub fn github_event(kind: Option<&str>, body: &[u8]) -> Result<Event, WebhookError> {
    match kind.unwrap_or_default() {
        "ping" => Ok(Event::Ping),
        "push" => push_event("GitHub", body),
        other => Ok(Event::Ignored(format!("GitHub event `{other}`"))),
    }
}

/// The event of a verified GitLab request (`X-Gitlab-Event` and the JSON body).
pub fn gitlab_event(kind: Option<&str>, body: &[u8]) -> Result<Event, WebhookError> {
    match kind.unwrap_or_default() {
        "Push Hook" => push_event("GitLab", body),
        other => Ok(Event::Ignored(format!("GitLab event `{other}`"))),
    }
}

/// Both providers name the pushed ref `ref` and the new head `after`.
fn push_event(provider: &'static str, body: &[u8]) -> Result<Event, WebhookError> {
    #[derive(serde::Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        reference: String,
        after: Option<String>,
    }
    let push: Push = serde_json::from_slice(body).map_err(|e| WebhookError::Payload {
        provider,
        detail: e.to_string(),
    })?;
    Ok(match push.reference.strip_prefix("refs/heads/") {
        Some(branch) => Event::Push {
            branch: branch.to_string(),
            after: push.after,
        },
        None => Event::Ignored(format!("push to {}", push.reference)),
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `sha256=<hex>` for a body, as GitHub sends it (for tests and tools that send webhooks).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";

    #[test]
    fn github_documents_this_signature_for_its_example() {
        // The example of GitHub's "Validating webhook deliveries" page.
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(github_signature(SECRET, BODY), expected);
        assert_eq!(verify_github(Some(SECRET), BODY, Some(expected)), Ok(()));
    }

    #[test]
    fn forged_missing_and_malformed_signatures_are_refused() {
        let good = github_signature(SECRET, BODY);
        let forged = Err(WebhookError::Forged {
            header: "X-Hub-Signature-256",
        });
        assert_eq!(verify_github(Some(b"other"), BODY, Some(&good)), forged);
        assert_eq!(verify_github(Some(SECRET), b"Hello", Some(&good)), forged);
        assert_eq!(verify_github(Some(SECRET), BODY, Some("sha256=zz")), forged);
        assert_eq!(verify_github(Some(SECRET), BODY, Some(&good[7..])), forged);
        assert_eq!(
            verify_github(Some(SECRET), BODY, Some(&good[..good.len() - 2])),
            forged
        );
        assert!(matches!(
            verify_github(Some(SECRET), BODY, None),
            Err(WebhookError::MissingHeader { .. })
        ));
        assert_eq!(
            verify_github(None, BODY, Some(&good)),
            Err(WebhookError::NoSecret)
        );
    }

    #[test]
    fn gitlab_token_must_equal_the_secret() {
        assert_eq!(verify_gitlab(Some(b"tok"), Some("tok")), Ok(()));
        for wrong in ["tok2", "to", "", "TOK"] {
            assert!(matches!(
                verify_gitlab(Some(b"tok"), Some(wrong)),
                Err(WebhookError::Forged { .. })
            ));
        }
        assert_eq!(
            verify_gitlab(None, Some("tok")),
            Err(WebhookError::NoSecret)
        );
    }

    #[test]
    fn events_name_the_pushed_branch() {
        let push = br#"{"ref":"refs/heads/main","after":"abc","commits":[]}"#;
        assert_eq!(
            github_event(Some("push"), push),
            Ok(Event::Push {
                branch: "main".into(),
                after: Some("abc".into())
            })
        );
        assert_eq!(
            gitlab_event(Some("Push Hook"), push),
            github_event(Some("push"), push)
        );
        assert_eq!(github_event(Some("ping"), b"{}"), Ok(Event::Ping));
        assert!(matches!(
            github_event(Some("push"), br#"{"ref":"refs/tags/v1"}"#),
            Ok(Event::Ignored(_))
        ));
        assert!(matches!(
            github_event(Some("issues"), b"{}"),
            Ok(Event::Ignored(_))
        ));
        assert!(matches!(
            github_event(Some("push"), b"not json"),
            Err(WebhookError::Payload { .. })
        ));
    }
}
