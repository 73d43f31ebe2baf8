//! Diagnostics: what validation reports, located at a file, line and column.

use std::fmt;

use serde::Serialize;

use super::yaml::Pos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding, printed rustc-style as `path:line:col: error: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// Repository-relative path of the file.
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub severity: Severity,
    /// The clusters the finding concerns (empty when it concerns the file itself).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: impl Into<String>, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line: pos.line,
            column: pos.col,
            severity: Severity::Error,
            clusters: Vec::new(),
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(file: impl Into<String>, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, pos, message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn cluster(mut self, cluster: impl Into<String>) -> Diagnostic {
        self.clusters = vec![cluster.into()];
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // Findings about the command line itself have no file to point at.
        if self.file.is_empty() {
            write!(f, "{severity}: ")?;
        } else {
            write!(
                f,
                "{}:{}:{}: {severity}: ",
                self.file, self.line, self.column
            )?;
        }
        match self.clusters.as_slice() {
            [] => {}
            [one] => write!(f, "cluster {one}: ")?,
            many => write!(f, "clusters {}: ", many.join(", "))?,
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// The errors among `diagnostics`, one per `separator`-joined part; `None` when there is none.
pub fn errors_text(diagnostics: &[Diagnostic], separator: &str) -> Option<String> {
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    (!errors.is_empty()).then(|| errors.join(separator))
}

/// Sorts diagnostics by location and merges the ones that differ only in the cluster they
/// concern, so a broken profile used by fifty clusters is reported once, naming all fifty.
pub fn consolidate(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.severity, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.severity, &b.message))
            .then_with(|| a.clusters.cmp(&b.clusters))
    });
    let mut out: Vec<Diagnostic> = Vec::with_capacity(diags.len());
    for d in diags {
        match out.last_mut() {
            Some(last)
                if last.file == d.file
                    && last.line == d.line
                    && last.column == d.column
                    && last.severity == d.severity
                    && last.message == d.message
                    && last.help == d.help =>
            {
                for c in d.clusters {
                    if !last.clusters.contains(&c) {
                        last.clusters.push(c);
                    }
                }
            }
            _ => out.push(d),
        }
    }
    out
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rustc_style_with_cluster_and_help() {
        let d = Diagnostic::error("clusters/a.yaml", Pos { line: 3, col: 7 }, "bad")
            .cluster("a")
            .help("fix it");
        assert_eq!(
            d.to_string(),
            "clusters/a.yaml:3:7: error: cluster a: bad\n  help: fix it"
        );
    }

    #[test]
    fn duplicates_across_clusters_merge() {
        let p = Pos { line: 1, col: 1 };
        let merged = consolidate(vec![
            Diagnostic::error("p.yaml", p, "x").cluster("b"),
            Diagnostic::error("p.yaml", p, "x").cluster("a"),
            Diagnostic::error("p.yaml", p, "y").cluster("a"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].clusters, vec!["a", "b"]);
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(
            did_you_mean("replica", ["replicas", "machine"]),
            Some("replicas")
        );
        assert_eq!(did_you_mean("zzz", ["replicas", "machine"]), None);
    }
}
