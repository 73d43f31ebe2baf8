//! The git source: a bare mirror per URL, fetched in place, and trees read from its object
//! database.
//!
//! Why this shape: a mirror fetched in place keeps every fetch incremental and survives
//! restarts; reading trees from the object database (never a checkout) means a preview of any
//! revision cannot disturb a working tree or race with the next fetch. Credentials come from
//! files so they never sit in argv or the process environment's values, and every URL that
//! reaches a message or log goes through [`strip_userinfo`] first.

mod tree;
mod url;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use git2::{
    AutotagOption, Cred, CredentialType, Direction, ErrorClass, ErrorCode, FetchOptions,
    RemoteCallbacks, Repository,
};
use sha2::{Digest, Sha256};

use crate::model::snapshot::{RepoSnapshot, SnapshotError};

use url::UrlKind;
pub use url::strip_userinfo;

pub const ENV_SSH_KEY_FILE: &str = "CAIRN_GIT_SSH_KEY_FILE";
pub const ENV_TOKEN_FILE: &str = "CAIRN_GIT_TOKEN_FILE";
pub const ENV_USERNAME: &str = "CAIRN_GIT_USERNAME";

/// User name sent with a token when none is configured; GitHub, GitLab and Gitea accept it.
const DEFAULT_TOKEN_USER: &str = "x-access-token";
/// Credential offers per fetch; libgit2 asks again after every rejection, forever.
const MAX_AUTH_ATTEMPTS: u32 = 2;
/// Branches named when the configured one is missing.
const LISTED_BRANCHES: usize = 5;

/// Where the configuration lives in git.
#[derive(Clone)]
pub struct SourceSpec {
    pub url: String,
    pub branch: String,
    pub credentials: Credentials,
}

impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("url", &strip_userinfo(&self.url))
            .field("branch", &self.branch)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Paths to secrets, never the secrets: files are read at each fetch, so rotated tokens apply.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub ssh_key_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub username: Option<String>,
}

impl Credentials {
    /// From `CAIRN_GIT_SSH_KEY_FILE`, `CAIRN_GIT_TOKEN_FILE` and `CAIRN_GIT_USERNAME`; empty
    /// values count as unset.
    pub fn from_env() -> Credentials {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        Credentials {
            ssh_key_file: var(ENV_SSH_KEY_FILE).map(PathBuf::from),
            token_file: var(ENV_TOKEN_FILE).map(PathBuf::from),
            username: var(ENV_USERNAME).map(|v| v.to_string_lossy().into_owned()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot create the git mirror {path}: {detail}; check that the state directory is writable"
    )]
    StateDir { path: PathBuf, detail: String },
    #[error(
        "the git mirror {path} is corrupt ({detail}); deleting that directory is safe, the next fetch downloads it again"
    )]
    CorruptMirror { path: PathBuf, detail: String },
    #[error(
        "cannot reach the git remote {url}: {detail}; check the URL and that the host can be reached from here"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "cannot verify the identity of the git remote {url}: {detail}; for https install the CA certificates (ca-certificates), for ssh add the host key to ~/.ssh/known_hosts"
    )]
    UntrustedHost { url: String, detail: String },
    #[error("authentication to the git remote {url} failed: {reason}; {hint}")]
    AuthFailed {
        url: String,
        reason: String,
        /// Which credential file or variable to check.
        hint: String,
    },
    #[error(
        "branch {branch:?} does not exist in {url}; {}; check the branch in the source configuration",
        describe_branches(.existing, *.more)
    )]
    BranchNotFound {
        url: String,
        branch: String,
        /// Up to five existing branches, sorted.
        existing: Vec<String>,
        /// How many more exist.
        more: usize,
    },
    #[error(
        "fetching branch {branch:?} from {url} failed: {detail}; if this repeats, delete the mirror {mirror} (safe, it is downloaded again)"
    )]
    Fetch {
        url: String,
        branch: String,
        mirror: PathBuf,
        detail: String,
    },
    #[error("revision {revision:?} does not exist in {repo}; check the branch, tag or commit id")]
    RevisionNotFound { repo: String, revision: String },
    #[error(
        "{} is not a git repository ({detail}); give the root of a clone or of a bare repository",
        .path.display()
    )]
    NotARepository { path: PathBuf, detail: String },
    #[error("cannot read the files of {revision} in {repo}: {detail}")]
    ReadTree {
        repo: String,
        revision: String,
        detail: String,
    },
    #[error("the files of {revision} in {repo} are more than cairn reads")]
    OverBudget {
        repo: String,
        revision: String,
        #[source]
        source: Box<SnapshotError>,
    },
}

fn describe_branches(existing: &[String], more: usize) -> String {
    match (existing.is_empty(), more) {
        (true, _) => "the repository has no branches yet".to_string(),
        (false, 0) => format!("existing branches: {}", existing.join(", ")),
        (false, n) => format!("existing branches: {} and {n} more", existing.join(", ")),
    }
}

/// A bare repository under the state directory holding what was fetched from one URL.
#[derive(Clone)]
pub struct Mirror {
    path: PathBuf,
    url: String,
    branch: String,
    credentials: Credentials,
}

impl fmt::Debug for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.path)
            .field("url", &strip_userinfo(&self.url))
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// Opens or creates the bare mirror for `spec.url` at
    /// `<state_dir>/mirrors/<first 16 hex of sha256(url)>.git`.
    pub fn open(spec: &SourceSpec, state_dir: &Path) -> Result<Mirror, SourceError> {
        let path = state_dir
            .join("mirrors")
            .join(format!("{}.git", mirror_name(&spec.url)));
        let mirror = Mirror {
            path,
            url: spec.url.clone(),
            branch: spec.branch.clone(),
            credentials: spec.credentials.clone(),
        };
        if mirror.path.exists() {
            mirror.repo()?;
        } else {
            mirror.create()?;
        }
        Ok(mirror)
    }

    /// The mirror's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL without credentials, for messages.
    pub fn display_url(&self) -> String {
        strip_userinfo(&self.url)
    }

    /// Fetches the branch; returns the commit id (40 hex) it points at. Blocking.
    pub fn fetch(&self) -> Result<String, SourceError> {
        let repo = self.repo()?;
        let remote_url = self.remote_url()?;
        let auth = Rc::new(AuthState::default());
        let refname = format!("refs/heads/{}", self.branch);
        let mut remote = repo
            .remote_anonymous(&remote_url)
            .map_err(|e| self.remote_error(e, &auth, Step::Connect))?;
        let mut connection = remote
            .connect_auth(Direction::Fetch, Some(self.callbacks(&auth)), None)
            .map_err(|e| self.remote_error(e, &auth, Step::Connect))?;
        let heads = connection
            .list()
            .map_err(|e| self.remote_error(e, &auth, Step::Connect))?;
        if !heads.iter().any(|h| h.name() == refname) {
            let mut branches: Vec<String> = heads
                .iter()
                .filter_map(|h| h.name().strip_prefix("refs/heads/"))
                .map(str::to_string)
                .collect();
            branches.sort();
            let more = branches.len().saturating_sub(LISTED_BRANCHES);
            branches.truncate(LISTED_BRANCHES);
            return Err(SourceError::BranchNotFound {
                url: self.display_url(),
                branch: self.branch.clone(),
                existing: branches,
                more,
            });
        }
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(self.callbacks(&auth))
            .download_tags(AutotagOption::None);
        connection
            .remote()
            .fetch(
                &[format!("+{refname}:{refname}")],
                Some(&mut options),
                Some("cairn: fetch"),
            )
            .map_err(|e| self.remote_error(e, &auth, Step::Download))?;
        drop(connection);
        let commit = repo
            .find_reference(&refname)
            .and_then(|r| r.peel_to_commit())
            .map_err(|e| self.corrupt(e))?;
        // Lets `git log` in the mirror show the branch; nothing here depends on it.
        let _ = repo.set_head(&refname);
        let id = commit.id().to_string();
        tracing::debug!(url = %self.display_url(), branch = %self.branch, commit = %id, "fetched");
        Ok(id)
    }

    /// The last fetched commit of the branch, if any (no network).
    pub fn last_fetched(&self) -> Option<String> {
        let repo = self.repo().ok()?;
        let reference = repo
            .find_reference(&format!("refs/heads/{}", self.branch))
            .ok()?;
        Some(reference.peel_to_commit().ok()?.id().to_string())
    }

    /// The repository tree at `revision` as a RepoSnapshot (no checkout; working trees
    /// untouched).
    pub fn snapshot(&self, revision: &str) -> Result<RepoSnapshot, SourceError> {
        let repo = self.repo()?;
        let location = format!(
            "the mirror of {} (which holds only fetched commits)",
            self.display_url()
        );
        let commit = find_commit(&repo, revision, &location)?;
        let tree = commit.tree_id();
        drop(commit);
        tree::read_tree(repo, tree).map_err(|failed| match failed {
            tree::Failed::Git(e) => self.corrupt(e),
            tree::Failed::Budget(source) => SourceError::OverBudget {
                repo: self.display_url(),
                revision: revision.to_string(),
                source: Box::new(source),
            },
        })
    }

    fn repo(&self) -> Result<Repository, SourceError> {
        Repository::open_bare(&self.path).map_err(|e| self.corrupt(e))
    }

    /// Initialises next to the final path and renames, so a crash never leaves a half-made
    /// mirror that would later read as corrupt.
    fn create(&self) -> Result<(), SourceError> {
        let state_err = |detail: String| SourceError::StateDir {
            path: self.path.clone(),
            detail,
        };
        let parent = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| state_err(e.to_string()))?;
        let staging = self
            .path
            .with_extension(format!("git.init-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let repo = Repository::init_bare(&staging).map_err(|e| state_err(clean(&e)))?;
        // Tells a person looking at the state directory which URL a mirror belongs to.
        if let Ok(mut config) = repo.config() {
            let _ = config.set_str("cairn.url", &self.display_url());
        }
        drop(repo);
        if let Err(e) = std::fs::rename(&staging, &self.path) {
            let _ = std::fs::remove_dir_all(&staging);
            // Another process may have created it first; then it is there to use.
            if !self.path.exists() {
                return Err(state_err(e.to_string()));
            }
        }
        Ok(())
    }

    /// The URL handed to libgit2: local paths made absolute and checked, since libgit2 reports
    /// a missing path as an unsupported protocol.
    fn remote_url(&self) -> Result<String, SourceError> {
        if url::kind(&self.url) != UrlKind::Local {
            return Ok(self.url.clone());
        }
        let path = url::local_path(&self.url);
        match path.canonicalize() {
            Ok(abs) if abs.is_dir() => Ok(abs.to_string_lossy().into_owned()),
            _ => Err(SourceError::Unreachable {
                url: self.display_url(),
                detail: "no git repository exists at that path".to_string(),
            }),
        }
    }

    fn callbacks(&self, auth: &Rc<AuthState>) -> RemoteCallbacks<'static> {
        let auth = Rc::clone(auth);
        let mut credentials = self.credentials.clone();
        // A token is for https; never offer it to an ssh server as a password.
        if url::kind(&self.url) == UrlKind::Ssh {
            credentials.token_file = None;
        }
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |_url, user_from_url, allowed| {
            auth.offer(&credentials, user_from_url, allowed)
        });
        callbacks
    }

    fn remote_error(&self, e: git2::Error, auth: &AuthState, step: Step) -> SourceError {
        let url = self.display_url();
        let detail = self.scrub(&clean(&e), auth);
        if e.code() == ErrorCode::Auth || auth.gave_up.get() {
            let reason = auth.problem.borrow().clone().unwrap_or(detail);
            return SourceError::AuthFailed {
                url,
                reason,
                hint: self.auth_hint(),
            };
        }
        if e.code() == ErrorCode::Certificate || e.class() == ErrorClass::Ssl {
            return SourceError::UntrustedHost { url, detail };
        }
        let network = matches!(
            e.class(),
            ErrorClass::Net | ErrorClass::Http | ErrorClass::Ssh | ErrorClass::Os
        );
        match step {
            Step::Connect => SourceError::Unreachable { url, detail },
            Step::Download if network => SourceError::Unreachable { url, detail },
            Step::Download => SourceError::Fetch {
                url,
                branch: self.branch.clone(),
                mirror: self.path.clone(),
                detail,
            },
        }
    }

    /// Which setting to check, by the kind of URL; names variables and paths, never values.
    fn auth_hint(&self) -> String {
        let c = &self.credentials;
        match (url::kind(&self.url), &c.ssh_key_file, &c.token_file) {
            (UrlKind::Ssh, Some(key), _) if !key.is_file() => {
                format!("check that {ENV_SSH_KEY_FILE} names an existing private key file")
            }
            (UrlKind::Ssh, Some(key), _) => format!(
                "check that the private key in {} ({ENV_SSH_KEY_FILE}) is authorised for this repository",
                key.display()
            ),
            (UrlKind::Ssh, None, _) => format!(
                "set {ENV_SSH_KEY_FILE} to a private key file the server accepts (ssh-agent is not used)"
            ),
            (_, _, Some(token)) if !token.is_file() => {
                format!("check that {ENV_TOKEN_FILE} names an existing, readable token file")
            }
            (_, _, Some(token)) => format!(
                "check that the token in {} ({ENV_TOKEN_FILE}) is valid and may read this repository, and the user name in {ENV_USERNAME} (default {DEFAULT_TOKEN_USER})",
                token.display()
            ),
            (_, _, None) => format!(
                "set {ENV_TOKEN_FILE} to a file holding an access token (and {ENV_USERNAME} if the user name is not {DEFAULT_TOKEN_USER})"
            ),
        }
    }

    /// libgit2's messages may quote the URL as given or, in principle, what the server echoed.
    fn scrub(&self, message: &str, auth: &AuthState) -> String {
        let mut out = message.replace(&self.url, &self.display_url());
        let secrets = auth.secrets.borrow();
        let from_url = url::secret_userinfo(&self.url);
        for secret in secrets.iter().chain(from_url.iter()) {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    fn corrupt(&self, e: git2::Error) -> SourceError {
        SourceError::CorruptMirror {
            path: self.path.clone(),
            detail: clean(&e),
        }
    }
}

#[derive(Clone, Copy)]
enum Step {
    Connect,
    Download,
}

/// What the credential callback did during one fetch, so the error after it can say why.
#[derive(Default)]
struct AuthState {
    attempts: Cell<u32>,
    gave_up: Cell<bool>,
    /// Why no credential could be offered (a path and an I/O error, never a value).
    problem: RefCell<Option<String>>,
    /// Values offered, to scrub them from any message.
    secrets: RefCell<Vec<String>>,
}

impl AuthState {
    fn offer(
        &self,
        credentials: &Credentials,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        let user = user_from_url.or(credentials.username.as_deref());
        // ssh asks for the user name alone first when the URL has none; that is not a try.
        if allowed == CredentialType::USERNAME {
            return Cred::username(user.unwrap_or("git"));
        }
        let attempt = self.attempts.get() + 1;
        self.attempts.set(attempt);
        if attempt > MAX_AUTH_ATTEMPTS {
            return Err(self.give_up("the remote rejected the credentials offered"));
        }
        if allowed.contains(CredentialType::SSH_KEY)
            && let Some(key) = &credentials.ssh_key_file
        {
            if !key.is_file() {
                let problem = format!("the key file {} does not exist", key.display());
                return Err(self.give_up(&problem));
            }
            let mut public = key.clone().into_os_string();
            public.push(".pub");
            let public = PathBuf::from(public);
            let public = public.is_file().then_some(public.as_path());
            return Cred::ssh_key(user.unwrap_or("git"), public, key, None);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some(file) = &credentials.token_file
        {
            let token = match std::fs::read_to_string(file) {
                Ok(token) => token.trim().to_string(),
                Err(e) => {
                    let problem = format!("the token file {} cannot be read: {e}", file.display());
                    return Err(self.give_up(&problem));
                }
            };
            if token.is_empty() {
                let problem = format!("the token file {} is empty", file.display());
                return Err(self.give_up(&problem));
            }
            self.secrets.borrow_mut().push(token.clone());
            let user = credentials
                .username
                .as_deref()
                .or(user_from_url)
                .unwrap_or(DEFAULT_TOKEN_USER);
            return Cred::userpass_plaintext(user, &token);
        }
        Err(self
            .give_up("the remote asks for credentials and none is configured for this kind of URL"))
    }

    fn give_up(&self, problem: &str) -> git2::Error {
        self.gave_up.set(true);
        self.problem
            .borrow_mut()
            .get_or_insert_with(|| problem.to_string());
        git2::Error::new(ErrorCode::Auth, ErrorClass::Callback, problem)
    }
}

/// Bounds every fetch: libgit2 waits on a silent server forever unless told otherwise, and these
/// limits are process-wide in libgit2, not per fetch.
///
/// # Safety
/// Writes libgit2 globals without synchronisation: call it once from `main` before any thread
/// (a tokio runtime included) is started.
pub unsafe fn set_network_timeouts(connect: std::time::Duration, read: std::time::Duration) {
    let millis = |d: std::time::Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the caller guarantees no other thread runs yet. Both calls cannot fail.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(millis(read));
    }
}

/// Reads a tree of any local repository (bare or not) at a revspec (branch, tag, sha, HEAD~1),
/// no checkout. Returns the commit id and the snapshot.
pub fn snapshot_at(repo_path: &Path, revspec: &str) -> Result<(String, RepoSnapshot), SourceError> {
    let repo = Repository::open(repo_path).map_err(|e| SourceError::NotARepository {
        path: repo_path.to_path_buf(),
        detail: clean(&e),
    })?;
    let location = repo_path.display().to_string();
    let commit = find_commit(&repo, revspec, &location)?;
    let (id, tree) = (commit.id().to_string(), commit.tree_id());
    drop(commit);
    let snapshot = tree::read_tree(repo, tree).map_err(|failed| match failed {
        tree::Failed::Git(e) => SourceError::ReadTree {
            repo: location.clone(),
            revision: revspec.to_string(),
            detail: clean(&e),
        },
        tree::Failed::Budget(source) => SourceError::OverBudget {
            repo: location.clone(),
            revision: revspec.to_string(),
            source: Box::new(source),
        },
    })?;
    Ok((id, snapshot))
}

fn find_commit<'r>(
    repo: &'r Repository,
    revspec: &str,
    location: &str,
) -> Result<git2::Commit<'r>, SourceError> {
    repo.revparse_single(revspec)
        .and_then(|object| object.peel_to_commit())
        .map_err(|_| SourceError::RevisionNotFound {
            repo: location.to_string(),
            revision: revspec.to_string(),
        })
}

/// First 16 hex digits of sha256(url): stable across restarts, safe as a file name, and
/// reveals nothing of credentials in the URL.
fn mirror_name(url: &str) -> String {
    Sha256::digest(url.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// libgit2's message without its trailing period, to sit inside a sentence.
fn clean(e: &git2::Error) -> String {
    e.message().trim().trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libgit2_has_https_and_ssh() {
        let version = git2::Version::get();
        assert!(version.https(), "libgit2 was built without https");
        assert!(version.ssh(), "libgit2 was built without ssh");
    }

    #[test]
    fn mirrors_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        shareable::<Mirror>();
        shareable::<SourceSpec>();
    }

    #[test]
    fn mirror_name_is_16_hex_of_sha256() {
        // sha256("abc") = ba7816bf8f01cfea...
        assert_eq!(mirror_name("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn debug_output_hides_url_credentials() {
        let spec = SourceSpec {
            url: "https://user:s3cret@example.com/r".into(),
            branch: "main".into(),
            credentials: Credentials::default(),
        };
        let text = format!("{spec:?}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("https://example.com/r"), "{text}");
    }

    #[test]
    fn branch_list_reads_as_a_sentence() {
        let err = SourceError::BranchNotFound {
            url: "/srv/repo".into(),
            branch: "release".into(),
            existing: vec!["dev".into(), "main".into()],
            more: 3,
        };
        assert_eq!(
            err.to_string(),
            "branch \"release\" does not exist in /srv/repo; existing branches: dev, main and 3 \
             more; check the branch in the source configuration"
        );
    }
}
