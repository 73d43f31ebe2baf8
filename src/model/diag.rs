//! Diagnostics: what validation reports, located at a file, line and column.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use super::budget::{Budget, MAX_DIAGNOSTICS};
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
            let file = printable(&self.file, false);
            write!(f, "{file}:{}:{}: {severity}: ", self.line, self.column)?;
        }
        match self.clusters.as_slice() {
            [] => {}
            [one] => write!(f, "cluster {}: ", printable(one, false))?,
            many => write!(f, "clusters {}: ", printable(&many.join(", "), false))?,
        }
        write!(f, "{}", printable(&self.message, true))?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {}", printable(help, true))?;
        }
        Ok(())
    }
}

/// `text` safe to print on a terminal: control characters (an escape sequence in a file or
/// object name could rewrite the screen or forge a line) are written as Rust escapes (`\u{1b}`);
/// with `lines`, line feeds and tabs stay as they are (multi-line messages and help).
pub fn printable(text: &str, lines: bool) -> Cow<'_, str> {
    let escaped = |c: char| c.is_control() && !(lines && matches!(c, '\n' | '\t'));
    if !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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

/// At most [`MAX_DIAGNOSTICS`] of `diags` (sorted), then one diagnostic at the first left out
/// saying how many more there were: `dropped` counts those left out earlier (a cluster's own cap).
/// It is an error when any error is among those not shown, so capping never turns a failing
/// render into a passing one.
pub fn cap(mut diags: Vec<Diagnostic>, dropped: usize) -> Vec<Diagnostic> {
    if diags.len() <= MAX_DIAGNOSTICS && dropped == 0 {
        return diags;
    }
    let rest = diags.split_off(diags.len().min(MAX_DIAGNOSTICS));
    let errors = rest.iter().filter(|d| d.is_error()).count();
    let hidden = rest.len() + dropped;
    let (file, pos) = rest.first().map_or((String::new(), Pos::default()), |d| {
        (
            d.file.clone(),
            Pos {
                line: d.line,
                col: d.column,
            },
        )
    });
    let message = format!(
        "{hidden} more diagnostic(s) not shown, from here on: over the {}",
        Budget::Diagnostics
    );
    let mut summary = if errors > 0 || dropped > 0 || diags.iter().any(Diagnostic::is_error) {
        Diagnostic::error(file, pos, message)
    } else {
        Diagnostic::warning(file, pos, message)
    };
    summary.help = Some("fix the problems shown, then validate again to see the rest".into());
    diags.push(summary);
    diags
}

/// Keeps the first [`MAX_DIAGNOSTICS`] of `diags`; returns how many it left out.
pub fn truncate(diags: &mut Vec<Diagnostic>) -> usize {
    let over = diags.len().saturating_sub(MAX_DIAGNOSTICS);
    diags.truncate(MAX_DIAGNOSTICS);
    over
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
    fn control_characters_print_escaped() {
        let d = Diagnostic::error("a\u{1b}[2J.yaml", Pos { line: 1, col: 1 }, "x\u{7}\ny\tz")
            .cluster("c\n1")
            .help("h\u{9b}");
        assert_eq!(
            d.to_string(),
            "a\\u{1b}[2J.yaml:1:1: error: cluster c\\n1: x\\u{7}\ny\tz\n  help: h\\u{9b}"
        );
        assert!(matches!(printable("plain", false), Cow::Borrowed(_)));
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
    fn a_capped_list_ends_with_how_many_more() {
        let many: Vec<Diagnostic> = (1..=MAX_DIAGNOSTICS as u32 + 5)
            .map(|line| Diagnostic::error("a.yaml", Pos { line, col: 1 }, "bad"))
            .collect();
        let kept = cap(many, 0);
        assert_eq!(kept.len(), MAX_DIAGNOSTICS + 1);
        let last = kept.last().unwrap();
        assert!(last.is_error());
        assert_eq!(last.line, MAX_DIAGNOSTICS as u32 + 1);
        assert!(
            last.message.starts_with("5 more diagnostic(s) not shown"),
            "{last}"
        );
        assert!(last.message.contains("MAX_DIAGNOSTICS (1,000"), "{last}");
        let few = vec![Diagnostic::warning("a.yaml", Pos::default(), "w")];
        assert_eq!(cap(few.clone(), 0), few);
        assert_eq!(
            cap(few, 3).last().unwrap().message.split(' ').next(),
            Some("3")
        );
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
