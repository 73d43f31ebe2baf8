//! The management cluster's kubeconfig, found and read as kubectl does it: `--kubeconfig FILE`,
//! else the files `$KUBECONFIG` lists (merged: the first file to set a map entry or
//! `current-context` wins; listed files that do not exist are skipped), else `~/.kube/config`,
//! else the in-cluster service account. `--context NAME` picks a context.
//!
//! The pure parts ([`KubeconfigFiles::resolve`], [`select_context`]) take their inputs as
//! arguments; [`management_client`] reads the environment at the edge.
//!
//! Every error names the kubeconfig file(s) and says what to do; the cause (kube's or the
//! system's) stays in the error chain (`#[source]`) and is not repeated in the message.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::kube_client::{CONNECT_TIMEOUT, config_from_kubeconfig, server_url};

/// What `help:` lines suggest for choosing another cluster.
const CHOOSE: &str = "pass --kubeconfig FILE, set KUBECONFIG, or pick another --context";

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("kubeconfig {} does not exist\n  help: pass an existing file to --kubeconfig", .file.display())]
    Missing {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read kubeconfig {}\n  help: check that the file is readable", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "kubeconfig {} does not parse{position} (the parser's message is not shown: it would \
         quote credentials)\n  help: `kubectl config view --kubeconfig {}` shows what kubectl makes of it",
        .file.display(), .file.display()
    )]
    Syntax { file: PathBuf, position: String },
    #[error(
        "kubeconfig {} is not a valid kubeconfig\n  help: fix its YAML (`kubectl config view --kubeconfig {}` \
         shows what kubectl makes of it)", .file.display(), .file.display()
    )]
    Parse {
        file: PathBuf,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error(
        "kubeconfig {} cannot be merged with {}\n  help: list only kubeconfigs (kind Config, apiVersion v1) \
         in KUBECONFIG", .file.display(), show(.before)
    )]
    Merge {
        file: PathBuf,
        before: Vec<PathBuf>,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error(
        "no kubeconfig: {} and cairn is not running inside a cluster\n  help: pass --kubeconfig FILE or set \
         KUBECONFIG", looked_at(.looked)
    )]
    NoKubeconfig {
        /// The files looked for (none of which exists).
        looked: Vec<PathBuf>,
        #[source]
        source: Box<kube::config::InClusterError>,
    },
    #[error(
        "kubeconfig {} sets no current-context\n  help: pass --context NAME ({})",
        show(.files), one_of_contexts(.contexts)
    )]
    NoCurrentContext {
        files: Vec<PathBuf>,
        contexts: Vec<String>,
    },
    #[error(
        "kubeconfig {} has no context \"{context}\"{}\n  help: {}",
        show(.files), current_note(.current), choose_context(.contexts)
    )]
    UnknownContext {
        context: String,
        /// Whether `context` came from `current-context` rather than `--context`.
        current: bool,
        files: Vec<PathBuf>,
        contexts: Vec<String>,
    },
    #[error(
        "context \"{context}\" of kubeconfig {} uses cluster \"{cluster}\", which the kubeconfig does not \
         define\n  help: add the cluster to the kubeconfig, or {}", show(.files), CHOOSE
    )]
    UnknownCluster {
        context: String,
        cluster: String,
        files: Vec<PathBuf>,
    },
    #[error(
        "context \"{context}\" of kubeconfig {} cannot be used\n  help: check its cluster's server URL and \
         certificates and its user's credentials (`kubectl config view --minify --context {context}`)",
        show(.files)
    )]
    Invalid {
        context: String,
        files: Vec<PathBuf>,
        #[source]
        source: Box<kube::config::KubeconfigError>,
    },
    #[error(
        "kubeconfig user \"{user}\" runs the exec plugin \"{command}\", which is not on PATH\n  help: install \
         {command}, or pick another --context than \"{context}\" of kubeconfig {}", show(.files)
    )]
    ExecPluginMissing {
        user: String,
        command: String,
        context: String,
        files: Vec<PathBuf>,
        /// The failure to start it (`NotFound`).
        #[source]
        source: std::io::Error,
    },
    #[error(
        "kubeconfig user \"{user}\" runs the exec plugin \"{command}\", which failed\n  help: run {command} \
         by hand to see why, or pick another --context than \"{context}\" of kubeconfig {}", show(.files)
    )]
    ExecPluginFailed {
        user: String,
        command: String,
        context: String,
        files: Vec<PathBuf>,
        /// kube's account of it (for a non-zero exit: the status and what it printed).
        #[source]
        source: Box<kube::client::AuthError>,
    },
    #[error(
        "cannot make a client for context \"{context}\" of kubeconfig {}\n  help: check the context's cluster \
         and user, or {}", show(.files), CHOOSE
    )]
    Client {
        context: String,
        files: Vec<PathBuf>,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "--context {context} needs a kubeconfig, and there is none ({})\n  help: pass --kubeconfig FILE or set \
         KUBECONFIG", looked_at(.looked)
    )]
    ContextWithoutKubeconfig {
        context: String,
        looked: Vec<PathBuf>,
    },
    #[error(
        "cannot make a client from the in-cluster service account\n  help: check the pod's service account \
         token, or pass --kubeconfig FILE"
    )]
    InClusterClient {
        #[source]
        source: Box<kube::Error>,
    },
}

/// Files as an error names them: `a` or `a, b`.
fn show(files: &[PathBuf]) -> String {
    if files.is_empty() {
        return "(no file)".to_string();
    }
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `~/.kube/config does not exist` / `none of a, b exists`.
fn looked_at(files: &[PathBuf]) -> String {
    match files {
        [] => "no kubeconfig file was named".to_string(),
        [one] => format!("{} does not exist", one.display()),
        many => format!("none of {} exists", show(many)),
    }
}

fn current_note(current: &bool) -> &'static str {
    if *current {
        " (its current-context)"
    } else {
        ""
    }
}

/// `one of: a, b` / `it has no contexts`.
fn one_of_contexts(names: &[String]) -> String {
    if names.is_empty() {
        "the kubeconfig has no contexts".to_string()
    } else {
        format!("one of: {}", names.join(", "))
    }
}

fn choose_context(names: &[String]) -> String {
    if names.is_empty() {
        "it has no contexts at all; pass --kubeconfig FILE or set KUBECONFIG".to_string()
    } else {
        format!("pass --context with one of: {}", names.join(", "))
    }
}

/// Where the kubeconfig comes from, in kubectl's order of precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeconfigFiles {
    /// `--kubeconfig FILE`: that file alone, which must exist.
    Flag(PathBuf),
    /// `$KUBECONFIG`: the files it lists (empty entries dropped), merged; missing ones skipped.
    Env(Vec<PathBuf>),
    /// `~/.kube/config` if it exists, else the in-cluster config.
    Home(PathBuf),
    /// No `--kubeconfig`, no `$KUBECONFIG` and no home directory: the in-cluster config only.
    InCluster,
}

impl KubeconfigFiles {
    /// Pure: the kubeconfig source from the `--kubeconfig` flag, the value of `KUBECONFIG`
    /// (a list separated by `:`, `;` on Windows) and the home directory. A `KUBECONFIG` that
    /// is empty or lists only empty entries counts as unset (as kubectl and kube do it).
    pub fn resolve(
        flag: Option<&Path>,
        kubeconfig_env: Option<&OsStr>,
        home: Option<&Path>,
    ) -> KubeconfigFiles {
        if let Some(file) = flag {
            return KubeconfigFiles::Flag(file.to_path_buf());
        }
        if let Some(value) = kubeconfig_env {
            let files: Vec<PathBuf> = std::env::split_paths(value)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            if !files.is_empty() {
                return KubeconfigFiles::Env(files);
            }
        }
        match home {
            Some(home) => KubeconfigFiles::Home(home.join(".kube").join("config")),
            None => KubeconfigFiles::InCluster,
        }
    }

    /// [`resolve`](Self::resolve) with `KUBECONFIG` and `HOME` from this process's environment.
    pub fn from_env(flag: Option<&Path>) -> KubeconfigFiles {
        let kubeconfig = std::env::var_os("KUBECONFIG");
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
        KubeconfigFiles::resolve(flag, kubeconfig.as_deref(), home.as_deref().map(Path::new))
    }

    /// The files it names, in order.
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            KubeconfigFiles::Flag(file) | KubeconfigFiles::Home(file) => std::slice::from_ref(file),
            KubeconfigFiles::Env(files) => files,
            KubeconfigFiles::InCluster => &[],
        }
    }
}

/// The kubeconfig files that were read, merged.
#[derive(Clone, Debug)]
pub struct MergedKubeconfig {
    pub kubeconfig: Kubeconfig,
    /// The files read (existing ones), in order.
    pub files: Vec<PathBuf>,
}

/// Reads and merges the files of `source` as kubectl does; `None` when no file exists and
/// none had to (then the in-cluster config applies).
pub fn read(source: &KubeconfigFiles) -> Result<Option<MergedKubeconfig>, KubeconfigError> {
    let must_exist = matches!(source, KubeconfigFiles::Flag(_));
    let mut merged: Option<MergedKubeconfig> = None;
    for file in source.paths() {
        let next = match Kubeconfig::read_from(file) {
            Ok(next) => next,
            Err(e) => match classify_read_error(file, e) {
                ReadFailure::NotFound(_) if !must_exist => continue,
                ReadFailure::NotFound(source) => {
                    return Err(KubeconfigError::Missing {
                        file: file.clone(),
                        source,
                    });
                }
                ReadFailure::Other(err) => return Err(err),
            },
        };
        merged = Some(match merged {
            None => MergedKubeconfig {
                kubeconfig: next,
                files: vec![file.clone()],
            },
            Some(mut so_far) => {
                so_far.kubeconfig =
                    so_far
                        .kubeconfig
                        .merge(next)
                        .map_err(|source| KubeconfigError::Merge {
                            file: file.clone(),
                            before: so_far.files.clone(),
                            source: Box::new(source),
                        })?;
                so_far.files.push(file.clone());
                so_far
            }
        });
    }
    Ok(merged)
}

enum ReadFailure {
    NotFound(std::io::Error),
    Other(KubeconfigError),
}

fn classify_read_error(file: &Path, e: kube::config::KubeconfigError) -> ReadFailure {
    use kube::config::KubeconfigError as K;
    match e {
        K::ReadConfig(io, _) if io.kind() == std::io::ErrorKind::NotFound => {
            ReadFailure::NotFound(io)
        }
        K::ReadConfig(io, _) => ReadFailure::Other(KubeconfigError::Read {
            file: file.to_path_buf(),
            source: io,
        }),
        K::Parse(_) => ReadFailure::Other(KubeconfigError::Syntax {
            file: file.to_path_buf(),
            position: crate::kube_client::yaml_error_position(&e),
        }),
        // Kind/apiVersion mismatches between documents of one file.
        source => ReadFailure::Other(KubeconfigError::Parse {
            file: file.to_path_buf(),
            source: Box::new(source),
        }),
    }
}

/// A context of a kubeconfig, with what it refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedContext {
    pub context: String,
    pub cluster: String,
    /// The user (`None` when the context names none: anonymous, as client-go allows).
    pub user: Option<String>,
    /// The user's exec plugin command, if it has one.
    pub exec_command: Option<String>,
}

/// Pure: the context `--context` names, else the `current-context`, checked to exist along
/// with its cluster. `files` are only for the errors.
pub fn select_context(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
    files: &[PathBuf],
) -> Result<SelectedContext, KubeconfigError> {
    let names: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let (name, current) = match (context, kubeconfig.current_context.as_deref()) {
        (Some(name), _) => (name, false),
        (None, Some(name)) if !name.is_empty() => (name, true),
        (None, _) => {
            return Err(KubeconfigError::NoCurrentContext {
                files: files.to_vec(),
                contexts: names,
            });
        }
    };
    let Some(found) = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
    else {
        return Err(KubeconfigError::UnknownContext {
            context: name.to_string(),
            current,
            files: files.to_vec(),
            contexts: names,
        });
    };
    if !kubeconfig
        .clusters
        .iter()
        .any(|c| c.name == found.cluster && c.cluster.is_some())
    {
        return Err(KubeconfigError::UnknownCluster {
            context: name.to_string(),
            cluster: found.cluster.clone(),
            files: files.to_vec(),
        });
    }
    let user = found.user.clone().filter(|u| !u.is_empty());
    let exec_command = user.as_ref().and_then(|user| {
        kubeconfig
            .auth_infos
            .iter()
            .find(|a| &a.name == user)
            .and_then(|a| a.auth_info.as_ref())
            .and_then(|a| a.exec.as_ref())
            .and_then(|exec| exec.command.clone())
    });
    Ok(SelectedContext {
        context: name.to_string(),
        cluster: found.cluster.clone(),
        user,
        exec_command,
    })
}

/// A client of the management cluster and what it was made from.
#[derive(Clone)]
pub struct ManagementClient {
    pub client: kube::Client,
    /// The API server's URL (`https://127.0.0.1:6443`), for
    /// [`KubeClusterApi::with_server`](crate::apply::api::KubeClusterApi::with_server).
    pub server: String,
    /// The context used; `None` for the in-cluster config.
    pub context: Option<String>,
    /// The kubeconfig files read (empty for the in-cluster config).
    pub files: Vec<PathBuf>,
}

impl fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementClient")
            .field("server", &self.server)
            .field("context", &self.context)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// A client of the management cluster as kubectl would pick it: `kubeconfig` (`--kubeconfig`),
/// else `$KUBECONFIG` (merged), else `~/.kube/config`, else the in-cluster service account;
/// `context` (`--context`) overrides the current-context. Connects within
/// [`CONNECT_TIMEOUT`]. Reads the environment; [`client_for`] is the same without it.
pub async fn management_client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<ManagementClient, KubeconfigError> {
    client_for(&KubeconfigFiles::from_env(kubeconfig), context).await
}

/// [`management_client`] from an explicit source (for tests, and callers with their own list).
pub async fn client_for(
    source: &KubeconfigFiles,
    context: Option<&str>,
) -> Result<ManagementClient, KubeconfigError> {
    let Some(merged) = read(source)? else {
        return in_cluster(source, context);
    };
    let selected = select_context(&merged.kubeconfig, context, &merged.files)?;
    let files = merged.files;
    let options = KubeConfigOptions {
        context: Some(selected.context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = config_from_kubeconfig(merged.kubeconfig, &options)
        .await
        .map_err(|source| KubeconfigError::Invalid {
            context: selected.context.clone(),
            files: files.clone(),
            source: Box::new(source),
        })?;
    let server = server_url(&config.cluster_url);
    let client =
        kube::Client::try_from(config).map_err(|source| client_error(&selected, &files, source))?;
    Ok(ManagementClient {
        client,
        server,
        context: Some(selected.context),
        files,
    })
}

/// No kubeconfig file exists: the in-cluster service account, as kube infers it.
fn in_cluster(
    source: &KubeconfigFiles,
    context: Option<&str>,
) -> Result<ManagementClient, KubeconfigError> {
    let looked = source.paths().to_vec();
    if let Some(context) = context {
        return Err(KubeconfigError::ContextWithoutKubeconfig {
            context: context.to_string(),
            looked,
        });
    }
    let mut config = kube::Config::incluster().map_err(|source| KubeconfigError::NoKubeconfig {
        looked,
        source: Box::new(source),
    })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let server = server_url(&config.cluster_url);
    let client =
        kube::Client::try_from(config).map_err(|source| KubeconfigError::InClusterClient {
            source: Box::new(source),
        })?;
    Ok(ManagementClient {
        client,
        server,
        context: None,
        files: Vec::new(),
    })
}

/// kube's failure to make a client, named: an exec plugin that is not installed or failed,
/// else a generic client error. kube runs the exec plugin while it makes the client and reports
/// a failure as `Error::Auth`: `AuthExecStart` when the command could not be started
/// (`NotFound`: not installed), `AuthExecRun` when it exited non-zero, others when its output
/// was unusable.
fn client_error(
    selected: &SelectedContext,
    files: &[PathBuf],
    source: kube::Error,
) -> KubeconfigError {
    use kube::client::AuthError;
    let context = selected.context.clone();
    let files = files.to_vec();
    let (Some(user), Some(command)) = (selected.user.clone(), selected.exec_command.clone()) else {
        return KubeconfigError::Client {
            context,
            files,
            source: Box::new(source),
        };
    };
    match source {
        kube::Error::Auth(AuthError::AuthExecStart(io))
            if io.kind() == std::io::ErrorKind::NotFound =>
        {
            KubeconfigError::ExecPluginMissing {
                user,
                command,
                context,
                files,
                source: io,
            }
        }
        kube::Error::Auth(auth) if is_exec_failure(&auth) => KubeconfigError::ExecPluginFailed {
            user,
            command,
            context,
            files,
            source: Box::new(auth),
        },
        source => KubeconfigError::Client {
            context,
            files,
            source: Box::new(source),
        },
    }
}

/// An exec plugin that ran (or could not be started) but gave no credential.
fn is_exec_failure(e: &kube::client::AuthError) -> bool {
    use kube::client::AuthError;
    matches!(
        e,
        AuthError::AuthExecStart(_)
            | AuthError::AuthExecRun { .. }
            | AuthError::AuthExecParse(_)
            | AuthError::AuthExec(_)
            | AuthError::ExecPluginFailed
            | AuthError::MissingCommand
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).unwrap()
    }

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: one
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: alice
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws-iam-authenticator}
contexts:
- name: first
  context: {cluster: one, user: alice}
- name: broken
  context: {cluster: nowhere}
current-context: first
"#;

    #[test]
    fn the_flag_wins_over_the_environment_and_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            KubeconfigFiles::resolve(Some(Path::new("x")), Some(OsStr::new("a:b")), Some(home)),
            KubeconfigFiles::Flag(PathBuf::from("x"))
        );
        assert_eq!(
            KubeconfigFiles::resolve(None, Some(OsStr::new("a::b:")), Some(home)),
            KubeconfigFiles::Env(vec![PathBuf::from("a"), PathBuf::from("b")])
        );
        // Empty, or only separators: as if unset.
        for empty in ["", ":", "::"] {
            assert_eq!(
                KubeconfigFiles::resolve(None, Some(OsStr::new(empty)), Some(home)),
                KubeconfigFiles::Home(PathBuf::from("/home/u/.kube/config")),
                "{empty:?}"
            );
        }
        assert_eq!(
            KubeconfigFiles::resolve(None, None, None),
            KubeconfigFiles::InCluster
        );
        assert!(KubeconfigFiles::InCluster.paths().is_empty());
    }

    #[test]
    fn the_current_context_or_the_named_one_is_selected() {
        let config = kubeconfig(TWO_CONTEXTS);
        let selected = select_context(&config, None, &[]).unwrap();
        assert_eq!(selected.context, "first");
        assert_eq!(selected.cluster, "one");
        assert_eq!(selected.user.as_deref(), Some("alice"));
        assert_eq!(
            selected.exec_command.as_deref(),
            Some("aws-iam-authenticator")
        );
    }

    #[test]
    fn an_unknown_context_names_itself_the_files_and_the_contexts_there_are() {
        let config = kubeconfig(TWO_CONTEXTS);
        let files = [PathBuf::from("/k/a"), PathBuf::from("/k/b")];
        let e = select_context(&config, Some("prod"), &files).unwrap_err();
        let text = e.to_string();
        assert!(matches!(
            e,
            KubeconfigError::UnknownContext { current: false, .. }
        ));
        assert!(text.contains("\"prod\""), "{text}");
        assert!(text.contains("/k/a, /k/b"), "{text}");
        assert!(text.contains("first, broken"), "{text}");
        assert!(!text.contains("current-context"), "{text}");
    }

    #[test]
    fn a_current_context_that_does_not_exist_says_so() {
        let config =
            kubeconfig(&TWO_CONTEXTS.replace("current-context: first", "current-context: gone"));
        let text = select_context(&config, None, &[PathBuf::from("/k")])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("no context \"gone\" (its current-context)"),
            "{text}"
        );
    }

    #[test]
    fn no_current_context_asks_for_one() {
        let config = kubeconfig(&TWO_CONTEXTS.replace("current-context: first", ""));
        let e = select_context(&config, None, &[PathBuf::from("/k")]).unwrap_err();
        assert!(matches!(e, KubeconfigError::NoCurrentContext { .. }));
        let text = e.to_string();
        assert!(text.contains("/k sets no current-context"), "{text}");
        assert!(
            text.contains("--context NAME (one of: first, broken)"),
            "{text}"
        );
    }

    #[test]
    fn a_context_whose_cluster_is_missing_names_both() {
        let config = kubeconfig(TWO_CONTEXTS);
        let text = select_context(&config, Some("broken"), &[PathBuf::from("/k")])
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("context \"broken\" of kubeconfig /k uses cluster \"nowhere\""),
            "{text}"
        );
    }

    #[test]
    fn messages_leave_the_cause_to_the_chain() {
        let source = Kubeconfig::from_yaml("clusters: [").unwrap_err();
        let cause = source.to_string();
        let e = KubeconfigError::Parse {
            file: PathBuf::from("/k"),
            source: Box::new(source),
        };
        assert!(!e.to_string().contains(&cause), "{e}");
        assert_eq!(
            std::error::Error::source(&e).map(|s| s.to_string()),
            Some(cause)
        );
    }

    #[test]
    fn nothing_to_look_at_is_said_plainly() {
        assert_eq!(
            looked_at(&[PathBuf::from("/h/.kube/config")]),
            "/h/.kube/config does not exist"
        );
        assert_eq!(
            looked_at(&[PathBuf::from("a"), PathBuf::from("b")]),
            "none of a, b exists"
        );
    }

    #[test]
    fn missing_files_in_a_list_are_skipped_but_a_flag_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, TWO_CONTEXTS).unwrap();
        let gone = dir.path().join("gone");
        let merged = read(&KubeconfigFiles::Env(vec![gone.clone(), a.clone()]))
            .unwrap()
            .unwrap();
        assert_eq!(merged.files, vec![a.clone()]);
        assert!(
            read(&KubeconfigFiles::Env(vec![gone.clone()]))
                .unwrap()
                .is_none()
        );
        assert!(
            read(&KubeconfigFiles::Home(gone.clone()))
                .unwrap()
                .is_none()
        );
        let e = read(&KubeconfigFiles::Flag(gone.clone())).unwrap_err();
        assert!(matches!(e, KubeconfigError::Missing { .. }), "{e}");
        assert!(e.to_string().contains(&gone.display().to_string()), "{e}");
    }

    #[test]
    fn an_unparsable_file_in_a_list_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, TWO_CONTEXTS).unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "clusters: [").unwrap();
        let e = read(&KubeconfigFiles::Env(vec![a, bad.clone()])).unwrap_err();
        assert!(matches!(e, KubeconfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
    }

    #[test]
    fn exec_start_failures_are_told_apart() {
        use kube::client::AuthError;
        use std::io::{Error, ErrorKind};
        let config = kubeconfig(TWO_CONTEXTS);
        let selected = select_context(&config, None, &[]).unwrap();
        let files = [PathBuf::from("/k")];
        let start = |kind| kube::Error::Auth(AuthError::AuthExecStart(Error::from(kind)));
        let missing = client_error(&selected, &files, start(ErrorKind::NotFound));
        assert!(
            matches!(missing, KubeconfigError::ExecPluginMissing { .. }),
            "{missing}"
        );
        assert!(
            missing.to_string().starts_with(
                "kubeconfig user \"alice\" runs the exec plugin \"aws-iam-authenticator\", which is not on PATH"
            ),
            "{missing}"
        );
        let denied = client_error(&selected, &files, start(ErrorKind::PermissionDenied));
        assert!(
            matches!(denied, KubeconfigError::ExecPluginFailed { .. }),
            "{denied}"
        );
        let other = client_error(&selected, &files, kube::Error::TlsRequired);
        assert!(matches!(other, KubeconfigError::Client { .. }), "{other}");
        // A user without an exec plugin: a plain client error, whatever kube said.
        let no_exec = SelectedContext {
            exec_command: None,
            ..selected
        };
        let plain = client_error(&no_exec, &files, start(ErrorKind::NotFound));
        assert!(matches!(plain, KubeconfigError::Client { .. }), "{plain}");
    }
}
