//! The preview as Markdown for a pull-request comment: summary, warnings, what changes for
//! machines and add-ons per cluster, then per-object diffs, long ones folded. It always fits in
//! `limit` bytes (GitHub's comment limit is 65,536 characters; bytes are never fewer): first by
//! grouping clusters that change the same way, then by leaving diffs out, with a note that says
//! what was left out.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::live::{LiveClass, LiveObject, LiveReport};
use super::{
    ClusterChange, ClusterPreview, FieldChange, LayerChange, MachineImpact, ObjectDiff, Preview,
    Reason, Revision, WarningKind,
};
use crate::model::types::StageName;
use crate::render::finalize::HASH_LEN;

/// Largest GitHub issue or pull-request comment, in characters.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// Cluster names listed in one warning or group before "and N more".
const LISTED_NAMES: usize = 10;
/// Diagnostics printed before "and N more".
const LISTED_DIAGNOSTICS: usize = 20;
/// Lines of one object's diff printed before it is cut.
const MAX_DIFF_LINES: usize = 300;
/// Room kept for the closing note.
const NOTE_RESERVE: usize = 2_000;
/// Share of the limit (percent) the per-cluster overview may take before it is grouped.
const OVERVIEW_SHARE: usize = 40;

/// Diffs longer than this many lines are folded in `<details>` by [`markdown`].
pub const DEFAULT_FOLD_LINES: usize = 25;

/// The preview as Markdown of at most `limit` bytes (hence characters). Deterministic: the same
/// preview always prints the same text.
pub fn markdown(preview: &Preview, limit: usize) -> String {
    markdown_with(preview, limit, DEFAULT_FOLD_LINES)
}

/// [`markdown`], folding diffs longer than `fold_lines` lines.
pub fn markdown_with(preview: &Preview, limit: usize, fold_lines: usize) -> String {
    let head = header(preview);
    let overview = overview(preview, limit.saturating_sub(head.len()));
    let live = preview
        .live
        .as_ref()
        .map(|l| live_section(l, limit / 4))
        .unwrap_or_default();
    let mut out = String::with_capacity(limit.min(1 << 20));
    out.push_str(&head);
    out.push_str(&overview.text);
    out.push_str(&live);

    let mut left_out: Vec<&str> = Vec::new();
    let groups = diff_groups(&preview.clusters);
    if !groups.is_empty() {
        out.push_str("\n### Diffs\n");
        for (first, others) in &groups {
            let mut block = diff_block(first, fold_lines);
            if !others.is_empty() {
                let _ = writeln!(
                    block,
                    "The same change, each cluster with its own name, in {} more cluster{}: {}\n",
                    fmt_count(others.len()),
                    plural(others.len()),
                    names(others, LISTED_NAMES)
                );
            }
            if out.len() + block.len() + NOTE_RESERVE <= limit {
                out.push_str(&block);
            } else {
                left_out.push(&first.name);
                left_out.extend(others.iter().copied());
            }
        }
    }
    left_out.sort_unstable();

    let mut note = String::new();
    if overview.grouped || overview.omitted > 0 || !left_out.is_empty() {
        note.push_str("\n---\n**Left out to fit one GitHub comment");
        let _ = write!(note, " ({} characters):**", fmt_count(limit));
        if overview.grouped {
            note.push_str(
                " clusters that change the same way are grouped, with template names left out;",
            );
        }
        if overview.omitted > 0 {
            let _ = write!(
                note,
                " the overview lines of {} cluster{} in the smallest groups;",
                fmt_count(overview.omitted),
                plural(overview.omitted)
            );
        }
        if !left_out.is_empty() {
            let _ = write!(
                note,
                " the diffs of {} cluster{} ({});",
                fmt_count(left_out.len()),
                plural(left_out.len()),
                names(&left_out, LISTED_NAMES)
            );
        }
        note.push_str(" `cairn preview --format json` prints everything.\n");
    }
    out.push_str(&note);
    fit(out, limit)
}

/// Cuts `text` to `limit` bytes at a line boundary, with a note, as a last resort.
fn fit(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let note = "\n\n**(cut here to fit one GitHub comment; `cairn preview --format json` prints \
                everything)**\n";
    let mut cut = limit.saturating_sub(note.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(nl) = text[..cut].rfind('\n') {
        cut = nl;
    }
    text.truncate(cut);
    // An open code fence would swallow the note.
    if text.matches("\n```").count() % 2 == 1 {
        text.push_str("\n```");
    }
    text.push_str(note);
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// 12345 → `12,345`.
pub(crate) fn fmt_count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `` `a`, `b` `` and `… and N more` after `max` names.
fn names<S: AsRef<str>>(items: &[S], max: usize) -> String {
    let mut out: Vec<String> = items.iter().take(max).map(|n| code(n.as_ref())).collect();
    if items.len() > max {
        out.push(format!("and {} more", fmt_count(items.len() - max)));
    }
    out.join(", ")
}

fn revision(r: &Revision) -> String {
    match &r.commit {
        Some(c) if !c.starts_with(&r.rev) => {
            format!("{} ({})", code(&r.rev), code(&c[..c.len().min(12)]))
        }
        Some(c) => code(&c[..c.len().min(12)]),
        None => code(&r.rev),
    }
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    "`".repeat((longest_backtick_run(text) + 1).max(3))
}

fn header(p: &Preview) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## cairn preview: {} → {}\n",
        revision(&p.base),
        revision(&p.head)
    );
    let errors: Vec<_> = p.head_diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **This change does not validate**: the head revision has {} error{}, \
             and cairn would not apply it.\n",
            errors.len(),
            plural(errors.len())
        );
        let text: String = errors
            .iter()
            .take(LISTED_DIAGNOSTICS)
            .map(|d| format!("{d}\n"))
            .collect();
        let f = fence(&text);
        let _ = write!(out, "{f}text\n{text}");
        if errors.len() > LISTED_DIAGNOSTICS {
            let _ = writeln!(out, "… and {} more", errors.len() - LISTED_DIAGNOSTICS);
        }
        let _ = writeln!(out, "{f}\n");
    }
    if !p.base_errors.is_empty() {
        let _ = writeln!(
            out,
            "The base revision has {} error{} of its own; clusters that did not render there show \
             every object as created.\n",
            p.base_errors.len(),
            plural(p.base_errors.len())
        );
    }
    let s = &p.summary;
    if p.clusters.is_empty() && errors.is_empty() {
        let _ = writeln!(
            out,
            "**No changes**: all {} clusters render the same at both revisions.\n",
            fmt_count(s.clusters_head)
        );
    }
    out.push_str("| | added | removed | changed | unchanged |");
    if s.clusters_invalid > 0 {
        out.push_str(" invalid |");
    }
    out.push_str("\n|---|---:|---:|---:|---:|");
    if s.clusters_invalid > 0 {
        out.push_str("---:|");
    }
    let _ = write!(
        out,
        "\n| **clusters** | {} | {} | {} | {} |",
        fmt_count(s.clusters_added),
        fmt_count(s.clusters_removed),
        fmt_count(s.clusters_changed),
        fmt_count(s.clusters_unchanged)
    );
    if s.clusters_invalid > 0 {
        let _ = write!(out, " {} |", fmt_count(s.clusters_invalid));
    }
    let _ = write!(
        out,
        "\n| **objects** | {} created | {} deleted | {} changed | |",
        fmt_count(s.objects_created),
        fmt_count(s.objects_deleted),
        fmt_count(s.objects_changed)
    );
    if s.clusters_invalid > 0 {
        out.push_str(" |");
    }
    out.push_str("\n\n");

    let warnings: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| w.kind != WarningKind::Invalid)
        .collect();
    if !warnings.is_empty() {
        out.push_str("> [!WARNING]\n");
        for w in warnings {
            let _ = write!(out, "> - **{}**: {}", warning_title(w.kind), w.message);
            if !w.clusters.is_empty() {
                let _ = write!(
                    out,
                    " — {} cluster{}: {}",
                    fmt_count(w.clusters.len()),
                    plural(w.clusters.len()),
                    names(&w.clusters, LISTED_NAMES)
                );
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn warning_title(kind: WarningKind) -> &'static str {
    match kind {
        WarningKind::Invalid => "does not validate",
        WarningKind::SkippedMinor => "skipped minor version",
        WarningKind::Downgrade => "downgrade",
        WarningKind::EvenControlPlane => "even control plane",
        WarningKind::ProtectedRemoval => "protected cluster removed",
        WarningKind::FleetShare => "large share of the fleet",
    }
}

struct Overview {
    text: String,
    grouped: bool,
    /// Clusters (or groups) whose lines did not fit at all.
    omitted: usize,
}

/// Per cluster: what changes for machines and add-ons. Grouped by identical lines when one
/// line per cluster would take more than [`OVERVIEW_SHARE`] percent of the room.
fn overview(p: &Preview, room: usize) -> Overview {
    if p.clusters.is_empty() {
        return Overview {
            text: String::new(),
            grouped: false,
            omitted: 0,
        };
    }
    let budget = room * OVERVIEW_SHARE / 100;
    let title = "### What changes, per cluster\n\n";
    let mut text = String::from(title);
    for c in &p.clusters {
        text.push_str(&cluster_entry(&c.name, c, true));
    }
    if text.len() <= budget {
        return Overview {
            text,
            grouped: false,
            omitted: 0,
        };
    }
    // Group clusters whose lines read the same without their own names.
    let mut groups: BTreeMap<Vec<String>, Vec<&str>> = BTreeMap::new();
    for c in &p.clusters {
        groups.entry(lines(c, false)).or_default().push(&c.name);
    }
    let mut ordered: Vec<(Vec<String>, Vec<&str>)> = groups.into_iter().collect();
    // Largest groups first; ties by their first cluster.
    ordered.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1[0].cmp(b.1[0])));
    let mut text = format!(
        "### What changes, per cluster\n\n{} clusters in {} group{} that change the same way:\n\n",
        fmt_count(p.clusters.len()),
        fmt_count(ordered.len()),
        plural(ordered.len())
    );
    let mut omitted = 0;
    for (lines, members) in &ordered {
        let mut entry = format!(
            "- **{} cluster{}**: {}\n",
            fmt_count(members.len()),
            plural(members.len()),
            names(members, LISTED_NAMES)
        );
        for l in lines {
            let _ = writeln!(entry, "  - {l}");
        }
        if text.len() + entry.len() <= budget {
            text.push_str(&entry);
        } else {
            omitted += members.len();
        }
    }
    text.push('\n');
    Overview {
        text,
        grouped: true,
        omitted,
    }
}

fn cluster_entry(name: &str, c: &ClusterPreview, detailed: bool) -> String {
    let mut out = format!("- **{}** ({})\n", code(name), c.change.as_str());
    for l in lines(c, detailed) {
        let _ = writeln!(out, "  - {l}");
    }
    out
}

/// The plain-words lines of a cluster: machines, then add-ons by layer. Without `detailed`,
/// names that differ from cluster to cluster (templates, objects) are left out.
pub(crate) fn lines(c: &ClusterPreview, detailed: bool) -> Vec<String> {
    let mut out = Vec::new();
    match c.change {
        ClusterChange::Invalid => {
            out.push("does not render at head: see the errors above".to_string());
            return out;
        }
        _ if c.base_invalid => out.push(
            "did not render at base, so every object shows as created; compare it by hand"
                .to_string(),
        ),
        _ => {}
    }
    out.extend(c.machines.iter().map(|m| describe(m, detailed)));
    if c.change == ClusterChange::Changed && !c.base_invalid && c.machines.is_empty() {
        out.push("no machine is replaced or scaled".to_string());
    }
    if c.change == ClusterChange::Changed {
        out.extend(c.addons.iter().map(|l| describe_layer(l, detailed)));
        let other = c
            .objects
            .iter()
            .filter(|o| o.stage != StageName::Addons)
            .count();
        if other > 0 && detailed {
            // The rest is in the diffs; name the stages so nothing is a surprise.
            let mut stages: Vec<&str> = c
                .objects
                .iter()
                .filter(|o| o.stage != StageName::Addons)
                .map(|o| o.stage.as_str())
                .collect();
            stages.dedup();
            out.push(format!(
                "{other} CAPI/pivot object{} change{} ({})",
                plural(other),
                if other == 1 { "s" } else { "" },
                stages.join(", ")
            ));
        }
    }
    out
}

fn machines(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn describe(m: &MachineImpact, detailed: bool) -> String {
    match m {
        MachineImpact::ClusterCreated {
            pivot: true,
            control_plane,
            workers,
            pools,
        } => {
            let mut s = "new cluster: created, then pivoted: one control-plane machine first; \
                         after the pivot (its CAPI objects move into the cluster, which then \
                         manages itself)"
                .to_string();
            if *control_plane > 1 {
                let _ = write!(s, " the control plane grows to {control_plane} and");
            }
            let _ = write!(
                s,
                " {} in {} are created",
                machines(*workers, "worker"),
                machines(*pools as u64, "pool")
            );
            s
        }
        MachineImpact::ClusterCreated {
            pivot: false,
            control_plane,
            workers,
            pools,
        } => format!(
            "new cluster: created, not pivoted (its CAPI objects stay in the management \
             cluster): {}, {} in {}",
            machines(*control_plane, "control-plane machine"),
            machines(*workers, "worker"),
            machines(*pools as u64, "pool")
        ),
        MachineImpact::ClusterDeleted {
            pivot,
            protected,
            control_plane,
            workers,
        } => {
            let mut s = format!(
                "removed cluster: will be deleted with its {} and {}, only when applied with \
                 `--prune`",
                machines(*control_plane, "control-plane machine"),
                machines(*workers, "worker")
            );
            if *pivot {
                s.push_str("; it is pivoted, so its CAPI objects first move back to the management cluster");
            }
            if *protected {
                s.push_str(
                    "; **protected** (`cairn.dev/protect: \"true\"`): cairn refuses to delete it",
                );
            }
            s
        }
        MachineImpact::PivotChanged { from, to } => format!("pivot changes {from} → {to}"),
        MachineImpact::ControlPlaneReplaced {
            machines: n,
            reasons,
        } => format!(
            "{} will be replaced, one at a time: {}",
            machines(*n, "control-plane machine"),
            describe_reasons(reasons, detailed)
        ),
        MachineImpact::ControlPlaneScaled { from, to } => {
            format!("control plane scales {from} → {to}")
        }
        MachineImpact::PoolReplaced {
            pool,
            machines: 0,
            reasons,
        } => format!(
            "pool {} has no machines to replace; new ones will come with: {}",
            code(pool),
            describe_reasons(reasons, detailed)
        ),
        MachineImpact::PoolReplaced {
            pool,
            machines: n,
            reasons,
        } => format!(
            "pool {} replaced: its {} will be replaced (rolling): {}",
            code(pool),
            machines(*n, "machine"),
            describe_reasons(reasons, detailed)
        ),
        MachineImpact::PoolScaled { pool, from, to } => {
            format!("pool {} scales {from} → {to}", code(pool))
        }
        MachineImpact::PoolAdded { pool, replicas } => {
            format!(
                "new pool {} with {}",
                code(pool),
                machines(*replicas, "machine")
            )
        }
        MachineImpact::PoolRemoved { pool, replicas } => format!(
            "pool {} removed: its {} will be deleted",
            code(pool),
            machines(*replicas, "machine")
        ),
    }
}

fn describe_reasons(reasons: &[Reason], detailed: bool) -> String {
    reasons
        .iter()
        .map(|r| match r {
            Reason::KubernetesVersion { from, to } => format!("kubernetesVersion {from} → {to}"),
            Reason::MachineTemplate { from, to, changes } => {
                template_words("machine template", from, to, changes, detailed)
            }
            Reason::BootstrapTemplate { from, to, changes } => {
                template_words("bootstrap template", from, to, changes, detailed)
            }
            Reason::KubeadmConfig { changes } => {
                format!("kubeadmConfigSpec changed ({})", fields(changes))
            }
            Reason::MachineSpec { changes } => {
                format!("machine spec changed ({})", fields(changes))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn template_words(
    what: &str,
    from: &str,
    to: &str,
    changes: &[FieldChange],
    detailed: bool,
) -> String {
    let mut s = if detailed {
        format!("{what} {} → {}", code(from), code(to))
    } else {
        format!("new {what}")
    };
    if !changes.is_empty() {
        let _ = write!(s, " ({})", fields(changes));
    }
    s
}

fn fields(changes: &[FieldChange]) -> String {
    let mut parts: Vec<String> = changes
        .iter()
        .map(|c| {
            format!(
                "{} {} → {}",
                c.field,
                c.from.as_deref().unwrap_or("(none)"),
                c.to.as_deref().unwrap_or("(none)")
            )
        })
        .collect();
    if changes.len() >= 6 {
        parts.push("…".into());
    }
    parts.join(", ").replace('|', "\\|")
}

fn describe_layer(l: &LayerChange, detailed: bool) -> String {
    let mut parts = Vec::new();
    for (verb, items) in [
        ("created", &l.created),
        ("changed", &l.changed),
        ("deleted", &l.deleted),
    ] {
        if items.is_empty() {
            continue;
        }
        if detailed {
            parts.push(format!(
                "{} {verb} ({})",
                items.len(),
                items
                    .iter()
                    .take(5)
                    .map(|item| text(item))
                    .chain((items.len() > 5).then(|| format!("and {} more", items.len() - 5)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else {
            parts.push(format!("{} {verb}", items.len()));
        }
    }
    format!("add-ons, layer {}: {}", code(&l.layer), parts.join(", "))
}

/// Clusters with diffs, grouped where their diffs are the same but for the cluster's name, in
/// name order of each group's first cluster.
fn diff_groups(clusters: &[ClusterPreview]) -> Vec<(&ClusterPreview, Vec<&str>)> {
    let mut groups: Vec<(&ClusterPreview, Vec<&str>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for c in clusters.iter().filter(|c| !c.objects.is_empty()) {
        let mut signature = format!("{}\n", c.change.as_str());
        for o in &c.objects {
            let _ = writeln!(signature, "{}", object_title(o));
            signature.push_str(&o.diff);
        }
        let signature = without_name(&signature, &c.name);
        match index.get(&signature) {
            Some(&i) => groups[i].1.push(&c.name),
            None => {
                index.insert(signature, groups.len());
                groups.push((c, Vec::new()));
            }
        }
    }
    groups
}

/// `text` with every whole-word occurrence of `name` (a DNS label) replaced by a marker, and
/// the hash of template names that start with it (`<name>-<pool>-<hash>`) masked too.
fn without_name(text: &str, name: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(name) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at + name.len()..];
        let after = tail.chars().next();
        out.push_str(&rest[..at]);
        rest = tail;
        if before.is_some_and(word) || after.is_some_and(|c| word(c) && c != '-') {
            out.push_str(name);
            continue;
        }
        out.push('\u{0}');
        // The rest of the token: `-<pool>-<hash>` for a template.
        let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let token = &tail[..end];
        if let Some((pool, hash)) = token.rsplit_once('-')
            && hash.len() == HASH_LEN
            && hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            out.push_str(pool);
            out.push_str("-\u{1}");
            rest = &tail[end..];
        }
    }
    out.push_str(rest);
    out
}

fn diff_block(c: &ClusterPreview, fold_lines: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n#### {} ({}, {} object{})\n",
        code(&c.name),
        c.change.as_str(),
        c.objects.len(),
        plural(c.objects.len())
    );
    if c.change == ClusterChange::Removed {
        // Everything goes; what each object held is in the base revision (and in the JSON).
        for o in &c.objects {
            let _ = writeln!(out, "- {}", object_title(o));
        }
        out.push('\n');
        return out;
    }
    for o in &c.objects {
        out.push_str(&object_block(o, fold_lines));
    }
    out
}

fn object_title(o: &ObjectDiff) -> String {
    let mut t = format!(
        "{} {} {}",
        o.action.as_str(),
        o.stage.as_str(),
        code(&o.key.to_string())
    );
    if let Some(from) = &o.from {
        let _ = write!(t, " (replaces {})", code(from));
    }
    t
}

fn object_block(o: &ObjectDiff, fold_lines: usize) -> String {
    code_block(&object_title(o), &o.diff, fold_lines)
}

/// A diff under a title, folded in `<details>` when longer than `fold_lines`, cut at
/// [`MAX_DIFF_LINES`].
fn code_block(title: &str, diff: &str, fold_lines: usize) -> String {
    let total = diff.lines().count();
    let mut body: String = diff
        .lines()
        .take(MAX_DIFF_LINES)
        .flat_map(|l| [visible(l), "\n".to_string()])
        .collect();
    if total > MAX_DIFF_LINES {
        let _ = writeln!(body, "… {} more lines", total - MAX_DIFF_LINES);
    }
    let f = fence(&body);
    if total > fold_lines {
        format!(
            "<details><summary>{} ({total} lines)</summary>\n\n{f}diff\n{body}{f}\n\n</details>\n\n",
            html_escape(&visible(&title.replace('`', ""))).replace('@', "@\u{2060}")
        )
    } else if total == 0 {
        format!("- {title}\n\n")
    } else {
        format!("{title}\n{f}diff\n{body}{f}\n\n")
    }
}

/// `s` as an inline code span that nothing in it can end: a backtick run longer than any in
/// `s`, padded when `s` starts or ends with one, control characters and newlines shown as
/// `\u{..}`. Inside a code span GitHub renders no HTML, links or mentions.
fn code(s: &str) -> String {
    let s = visible(s);
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || s.is_empty() {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{s}{pad}{ticks}")
}

/// `s` as plain text in markdown: HTML escaped, markdown punctuation backslash-escaped, and
/// `@` kept from making a mention.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in visible(&html_escape(s)).chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{2060}"),
            c => out.push(c),
        }
    }
    out
}

/// Control characters but tab (terminal escapes, NUL, newlines) written out as `\u{..}`.
fn visible(s: &str) -> String {
    let hidden = |c: char| c.is_control() && c != '\t';
    if !s.chars().any(hidden) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match hidden(c) {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn live_section(l: &LiveReport, budget: usize) -> String {
    let s = &l.summary;
    let mut out = String::from("\n### Live clusters (`--live`)\n\n");
    let _ = writeln!(
        out,
        "{} clusters compared: {} objects in sync; **{} changed by this change** ({} already \
         live); **{} drifted already** in {} cluster{} (not caused by this change){}.\n",
        fmt_count(s.clusters),
        fmt_count(s.objects_in_sync),
        fmt_count(s.objects_changed_by_this_change),
        fmt_count(s.objects_already_applied),
        fmt_count(s.objects_drifted),
        fmt_count(s.clusters_drifted),
        plural(s.clusters_drifted),
        if s.clusters_unavailable > 0 {
            format!(
                "; {} cluster{} could not be read",
                s.clusters_unavailable,
                plural(s.clusters_unavailable)
            )
        } else {
            String::new()
        }
    );
    let start = out.len();
    let mut omitted = 0;
    for c in &l.clusters {
        let mut block = format!("- **{}**", code(&c.cluster));
        if let Some(why) = &c.unavailable {
            let _ = write!(block, ": live state unknown ({})", text(why));
        }
        block.push('\n');
        let list = |title: &str, items: &[LiveObject], block: &mut String| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(block, "  - {title}:");
            for o in items {
                let _ = writeln!(
                    block,
                    "    - {} {} {}",
                    live_words(o.class),
                    o.stage.as_str(),
                    code(&o.key.to_string())
                );
            }
        };
        list("this change", &c.change, &mut block);
        list("drift already there", &c.drift, &mut block);
        for o in c.drift.iter().filter(|o| o.class == LiveClass::Drift) {
            if let Some(d) = &o.drift {
                let title = format!("drift of {} (base → live)", code(&o.key.to_string()));
                block.push_str(&code_block(&title, d, 0));
            }
        }
        if out.len() - start + block.len() <= budget {
            out.push_str(&block);
        } else {
            omitted += 1;
        }
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n… and {} more cluster{} with live differences (in `--format json`).",
            omitted,
            plural(omitted)
        );
    }
    out
}

fn live_words(class: LiveClass) -> &'static str {
    match class {
        LiveClass::InSync => "in sync:",
        LiveClass::Drift => "drifted:",
        LiveClass::Missing => "missing live:",
        LiveClass::Change => "changes:",
        LiveClass::AlreadyApplied => "already live as head:",
        LiveClass::ChangeOverDrift => "changes, over drift:",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_names_and_fences() {
        assert_eq!(fmt_count(65536), "65,536");
        assert_eq!(fmt_count(12), "12");
        assert_eq!(names(&["a", "b", "c"], 2), "`a`, `b`, and 1 more");
        assert_eq!(fence("a ``` b"), "````");
        assert_eq!(fence("plain"), "```");
    }

    #[test]
    fn names_are_masked_as_whole_words_and_template_prefixes() {
        assert_eq!(
            without_name(
                "Deployment/a/x a-md-0-12 data: a\nab a-md-0-0123456789\n",
                "a"
            ),
            "Deployment/\u{0}/x \u{0}-md-0-12 data: \u{0}\nab \u{0}-md-0-\u{1}\n"
        );
    }

    #[test]
    fn long_diffs_are_folded_and_cut() {
        let diff: String = (0..400).map(|i| format!("+line {i}\n")).collect();
        let block = code_block("update addons `X`", &diff, 25);
        assert!(block.starts_with("<details><summary>update addons X (400 lines)</summary>"));
        assert!(block.contains("… 100 more lines"));
        let short = code_block("update `X`", "+a\n", 25);
        assert!(short.starts_with("update `X`\n```diff\n+a\n```"));
    }

    #[test]
    fn fit_cuts_at_a_line_and_closes_fences() {
        let text = format!("start\n```diff\n{}", "+x\n".repeat(1000));
        let out = fit(text, 500);
        assert!(out.len() <= 500);
        assert!(out.contains("cut here"));
        assert_eq!(out.matches("```").count() % 2, 0);
    }
}
