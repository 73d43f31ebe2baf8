//! The render budget: the most a render may build from its input wherever a few bytes of input
//! can multiply, in one place, with why each number fits.
//!
//! A fleet repository is written by many teams, and the controller and every agent render
//! whatever lands on the branch, in a container limited to [`CONTROLLER_MEMORY_LIMIT`]
//! (256 MiB, `deploy/controller.yaml`). A 10 KB commit must not be able to take that: aliases,
//! `${VAR}` substitution and JSON-patch `copy` can each turn kilobytes into gigabytes, and a
//! file of a million broken documents into a million diagnostics. Each budget below caps one of
//! them; going over is an error that names the file, the line, the budget and its size, never
//! an abort or an out-of-memory kill.
//!
//! Sizes are counted as the YAML parser builds values (or, for patches, by [`measure`]): nodes,
//! and bytes of memory estimated from what this crate's data structures take —
//! `serde_json::Value` with `BTreeMap` objects, and a `SpanIndex` position for every value and
//! key read from the text: [`NODE_BYTES`] a node, [`MAPPING_BYTES`] a mapping, [`ENTRY_BYTES`]
//! a key, [`SPAN_BYTES`] a position, [`DOCUMENT_BYTES`] a document, plus the text of strings and
//! keys. The estimate was checked against the peak resident memory of parses at the budget
//! (release build): a million `---\na: 1` documents, a list of one-entry mappings, a list of
//! scalars, aliases of lists and of mappings, a 1 MiB anchor used 2,000 times all stop at 51 to
//! 70 MiB peak, the process's own 4 to 10 MiB and the text included. (Before these budgets,
//! 40 documents of 1.06 M alias nodes took 4.67 GB, and small mappings cost 1 KB a node.)
//!
//! | budget | size | per | what it bounds |
//! |---|---|---|---|
//! | [`MAX_YAML_NODES`] | 500,000 nodes | YAML file or substituted manifest | work, and memory of alias-expanded lists (~40 B a node) |
//! | [`MAX_YAML_BYTES`] | 64 MiB (estimated memory) | same | memory of one parse |
//! | [`MAX_CONFIG_ALIAS_NODES`] | 250,000 nodes | the config load (fleet, clusters, profiles) | what aliases add to the model kept all render long |
//! | [`MAX_CONFIG_ALIAS_BYTES`] | 16 MiB (estimated memory) | same | same |
//! | [`MAX_SUBSTITUTED_BYTES`] | 16 MiB of text | one manifest after substitution | the text, then parsed within the YAML budgets |
//! | [`MAX_PATCH_NODES`] | 200,000 nodes | what one cluster's patches add | doubling `copy` |
//! | [`MAX_PATCH_BYTES`] | 16 MiB (estimated memory) | same | same |
//! | [`MAX_DIAGNOSTICS`] | 1,000 | render, cluster, document's schema check | ~0.5 MiB of messages, and the work of finding more |
//!
//! Why they fit 256 MiB: the files a render reads are at most 48 MiB
//! (`snapshot::MAX_READ_BYTES`, each at most `snapshot::MAX_FILE_BYTES`, 10 MiB). Loading parses
//! one config file at a time (64 MiB at most, dropped once deserialized) and keeps at most
//! 16 MiB of alias expansion. Rendering substitutes and parses one manifest at a time per rayon
//! worker (16 + 64 MiB) and patches one cluster per worker (16 MiB). With the two workers of a
//! two-CPU controller, the worst a hostile commit reaches is about 48 + 16 + 2 × 96 MiB, and one
//! hostile file (what each probe of issue 13 is) stays near 100 MiB: `tests/hostile_render.rs`
//! asserts each probe peaks under [`RENDER_MEMORY_CEILING`].
//!
//! Why they do not bind on a real fleet: the CAPI, CAPD, CAPV and CAPA CRDs together (4.4 MB of
//! YAML, as large as manifests get) parse to 55,000 nodes in about 36 MiB, so a single manifest
//! file of up to about 7 MB of CRDs fits (larger ones are refused with a hint to split them);
//! the 10,000-cluster benchmark fleet uses no aliases and small manifests; a cluster's patches
//! add a few hundred bytes; and valid renders never reach the diagnostics cap.

use std::fmt;

use serde_json::Value;

use super::diag::Diagnostic;
use super::load::read_text;
use super::snapshot::RepoSnapshot;
use super::yaml::{Pos, YamlDoc, parse_documents_within};

const MIB: u64 = 1024 * 1024;

/// Estimated memory of one `serde_json::Value`: its 32-byte slot in a parent (the text of a
/// string is added on top).
pub const NODE_BYTES: u64 = 32;
/// Estimated memory of a mapping beyond its slot: the first `BTreeMap` leaf (11 keys and values,
/// 632 bytes) that even a one-entry mapping allocates.
pub const MAPPING_BYTES: u64 = 640;
/// Estimated memory of one mapping entry's key beyond its text: the `String` and its share of
/// the B-tree leaves (keys and values, at the fill B-trees keep).
pub const ENTRY_BYTES: u64 = 80;
/// Estimated memory of the position kept for each value and key read from the text (a JSON
/// pointer string and a hash-table slot in the `SpanIndex`).
pub const SPAN_BYTES: u64 = 128;
/// Estimated memory of one document beyond its nodes (`YamlDoc`, its `SpanIndex` tables).
pub const DOCUMENT_BYTES: u64 = 300;

/// The memory limit of the controller's container (`deploy/controller.yaml`), which every
/// budget here is sized against.
pub const CONTROLLER_MEMORY_LIMIT: u64 = 256 * MIB;
/// The peak resident memory a render of one hostile repository may reach: what the tests of the
/// budgets assert. A quarter below [`CONTROLLER_MEMORY_LIMIT`], the room left for the
/// controller's own state and its HTTP server.
pub const RENDER_MEMORY_CEILING: u64 = 192 * MIB;

/// Nodes (mappings, sequences, scalars) one YAML parse may produce, aliases expanded: one file
/// of the repository, or one manifest after substitution. Counted across all the documents of
/// the file, so forty documents of a million alias nodes are not forty budgets.
pub const MAX_YAML_NODES: u64 = 500_000;
/// Memory one YAML parse may build (estimated, see [`Size`]), aliases expanded and anchors
/// counted twice (the parser keeps a copy for the aliases): a 1 MiB anchor may be used 61 times,
/// not 2,000.
pub const MAX_YAML_BYTES: u64 = 64 * MIB;
/// Nodes that aliases may add across every config file of a render (fleet.yaml, clusters/,
/// profiles/): the loaded model keeps them until the render ends, so per-file budgets alone
/// would let a hundred small files hold a hundred budgets.
pub const MAX_CONFIG_ALIAS_NODES: u64 = 250_000;
/// Memory that aliases may add across every config file of a render (estimated).
pub const MAX_CONFIG_ALIAS_BYTES: u64 = 16 * MIB;
/// Bytes of one manifest text after `${VAR}` substitution: a 1 MiB variable used ten thousand
/// times stops at 16 MiB instead of asking for 10 GB.
pub const MAX_SUBSTITUTED_BYTES: u64 = 16 * MIB;
/// Nodes a cluster's patches may add to its objects, over all patches and objects (`add` and
/// `replace` count their value, `copy` what it copies): 24 doubling `copy` operations stop here.
pub const MAX_PATCH_NODES: u64 = 200_000;
/// Memory a cluster's patches may add to its objects (estimated, as [`measure`] counts).
pub const MAX_PATCH_BYTES: u64 = 16 * MIB;
/// Diagnostics a render keeps (then one saying how many more there were), a cluster's render
/// keeps, and one document's schema check reports. Loading stops checking documents once it is
/// reached: nobody reads the millionth error, and each costs work and memory.
pub const MAX_DIAGNOSTICS: usize = 1_000;

/// One of the budgets, as errors name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    YamlNodes,
    YamlBytes,
    ConfigAliasNodes,
    ConfigAliasBytes,
    SubstitutedBytes,
    PatchNodes,
    PatchBytes,
    Diagnostics,
}

impl Budget {
    /// The constant's name, which is what the documentation is found under.
    pub const fn name(self) -> &'static str {
        match self {
            Budget::YamlNodes => "MAX_YAML_NODES",
            Budget::YamlBytes => "MAX_YAML_BYTES",
            Budget::ConfigAliasNodes => "MAX_CONFIG_ALIAS_NODES",
            Budget::ConfigAliasBytes => "MAX_CONFIG_ALIAS_BYTES",
            Budget::SubstitutedBytes => "MAX_SUBSTITUTED_BYTES",
            Budget::PatchNodes => "MAX_PATCH_NODES",
            Budget::PatchBytes => "MAX_PATCH_BYTES",
            Budget::Diagnostics => "MAX_DIAGNOSTICS",
        }
    }

    pub const fn limit(self) -> u64 {
        match self {
            Budget::YamlNodes => MAX_YAML_NODES,
            Budget::YamlBytes => MAX_YAML_BYTES,
            Budget::ConfigAliasNodes => MAX_CONFIG_ALIAS_NODES,
            Budget::ConfigAliasBytes => MAX_CONFIG_ALIAS_BYTES,
            Budget::SubstitutedBytes => MAX_SUBSTITUTED_BYTES,
            Budget::PatchNodes => MAX_PATCH_NODES,
            Budget::PatchBytes => MAX_PATCH_BYTES,
            Budget::Diagnostics => MAX_DIAGNOSTICS as u64,
        }
    }

    /// What the budget counts and over what: `nodes per YAML file`.
    const fn what(self) -> &'static str {
        match self {
            Budget::YamlNodes => "nodes per YAML file",
            Budget::YamlBytes => "of memory per parsed YAML file",
            Budget::ConfigAliasNodes => "nodes added by aliases across the configuration",
            Budget::ConfigAliasBytes => "of memory added by aliases across the configuration",
            Budget::SubstitutedBytes => "of text per manifest after substitution",
            Budget::PatchNodes => "nodes added by a cluster's patches",
            Budget::PatchBytes => "of memory added by a cluster's patches",
            Budget::Diagnostics => "diagnostics",
        }
    }

    const fn in_bytes(self) -> bool {
        matches!(
            self,
            Budget::YamlBytes
                | Budget::ConfigAliasBytes
                | Budget::SubstitutedBytes
                | Budget::PatchBytes
        )
    }
}

/// `budget MAX_YAML_BYTES (64 MiB of memory per parsed YAML file, sized for ...)`.
impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = self.limit();
        write!(f, "budget {} (", self.name())?;
        if self.in_bytes() && limit % MIB == 0 {
            write!(f, "{} MiB", limit / MIB)?;
        } else {
            write!(f, "{}", thousands(limit))?;
            if self.in_bytes() {
                write!(f, " bytes")?;
            }
        }
        write!(
            f,
            " {}, sized for the controller's {} MiB)",
            self.what(),
            CONTROLLER_MEMORY_LIMIT / MIB
        )
    }
}

/// `500000` as `500,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What a value costs against a budget: its nodes, and the bytes of memory they take
/// (estimated with [`NODE_BYTES`], [`MAPPING_BYTES`], [`ENTRY_BYTES`], [`SPAN_BYTES`] and
/// [`DOCUMENT_BYTES`], plus the text of strings and keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    pub nodes: u64,
    pub bytes: u64,
}

impl Size {
    pub const ZERO: Size = Size { nodes: 0, bytes: 0 };

    pub const fn new(nodes: u64, bytes: u64) -> Size {
        Size { nodes, bytes }
    }

    /// A scalar of `len` bytes of text.
    pub const fn scalar(len: usize) -> Size {
        Size::new(1, NODE_BYTES + len as u64)
    }

    /// An empty sequence (its items are charged as they come).
    pub const fn sequence() -> Size {
        Size::new(1, NODE_BYTES)
    }

    /// An empty mapping (its entries are charged as they come).
    pub const fn mapping() -> Size {
        Size::new(1, NODE_BYTES + MAPPING_BYTES)
    }

    /// A mapping entry's key of `len` bytes (its value is charged on its own).
    pub const fn entry(len: usize) -> Size {
        Size::new(0, ENTRY_BYTES + len as u64)
    }

    /// A position kept for a node read from the text.
    pub const SPAN: Size = Size::new(0, SPAN_BYTES);
    /// A document of a file.
    pub const DOCUMENT: Size = Size::new(0, DOCUMENT_BYTES);

    pub const fn plus(self, other: Size) -> Size {
        Size {
            nodes: self.nodes.saturating_add(other.nodes),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    const fn exceeds(self, limit: Size) -> bool {
        self.nodes > limit.nodes || self.bytes > limit.bytes
    }
}

/// A running total against a pair of budgets, one for nodes and one for bytes.
#[derive(Clone, Debug)]
pub struct Meter {
    used: Size,
    nodes: Budget,
    bytes: Budget,
}

impl Meter {
    const fn new(nodes: Budget, bytes: Budget) -> Meter {
        Meter {
            used: Size::ZERO,
            nodes,
            bytes,
        }
    }

    /// One YAML parse: [`MAX_YAML_NODES`] and [`MAX_YAML_BYTES`].
    pub const fn yaml() -> Meter {
        Meter::new(Budget::YamlNodes, Budget::YamlBytes)
    }

    /// Alias expansion across the config load: [`MAX_CONFIG_ALIAS_NODES`] and
    /// [`MAX_CONFIG_ALIAS_BYTES`].
    pub const fn config_aliases() -> Meter {
        Meter::new(Budget::ConfigAliasNodes, Budget::ConfigAliasBytes)
    }

    /// One cluster's patches: [`MAX_PATCH_NODES`] and [`MAX_PATCH_BYTES`].
    pub const fn patches() -> Meter {
        Meter::new(Budget::PatchNodes, Budget::PatchBytes)
    }

    pub const fn limit(&self) -> Size {
        Size::new(self.nodes.limit(), self.bytes.limit())
    }

    pub const fn used(&self) -> Size {
        self.used
    }

    /// What is left before a budget is exceeded.
    pub const fn remaining(&self) -> Size {
        let limit = self.limit();
        Size::new(
            limit.nodes.saturating_sub(self.used.nodes),
            limit.bytes.saturating_sub(self.used.bytes),
        )
    }

    /// Whether `size` more would still fit.
    pub const fn fits(&self, size: Size) -> bool {
        !self.used.plus(size).exceeds(self.limit())
    }

    /// Adds `size`, or names the budget it would exceed (and adds nothing).
    pub fn charge(&mut self, size: Size) -> Result<(), Budget> {
        let total = self.used.plus(size);
        if total.nodes > self.nodes.limit() {
            return Err(self.nodes);
        }
        if total.bytes > self.bytes.limit() {
            return Err(self.bytes);
        }
        self.used = total;
        Ok(())
    }
}

/// The [`Size`] of `value` (as [`Size::scalar`], [`Size::mapping`] and [`Size::entry`] count a
/// parsed one, without positions), walking no further than needed to know it is over `limit`: the
/// result is exact when it fits `limit`, and some size over `limit` when it does not. So
/// measuring costs at most the budget, whatever the value.
pub fn measure(value: &Value, limit: Size) -> Size {
    let mut size = Size::scalar(0);
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => size.bytes += s.len() as u64,
            Value::Array(items) => {
                let n = items.len() as u64;
                size = size.plus(Size::new(n, n * NODE_BYTES));
                if size.exceeds(limit) {
                    break;
                }
                stack.extend(items.iter());
            }
            Value::Object(map) => {
                let n = map.len() as u64;
                let keys: u64 = map.keys().map(|k| k.len() as u64).sum();
                let bytes = MAPPING_BYTES + n * (NODE_BYTES + ENTRY_BYTES) + keys;
                size = size.plus(Size::new(n, bytes));
                if size.exceeds(limit) {
                    break;
                }
                stack.extend(map.values());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        if size.exceeds(limit) {
            break;
        }
    }
    size
}

/// What the loading of a repository's config spends across its files: the alias expansion the
/// loaded model keeps, and the diagnostics it has collected. One per render (`model::load`).
#[derive(Debug)]
pub struct LoadBudget {
    aliases: Meter,
    stopped: bool,
}

impl Default for LoadBudget {
    fn default() -> Self {
        LoadBudget {
            aliases: Meter::config_aliases(),
            stopped: false,
        }
    }
}

impl LoadBudget {
    /// Parses a file's YAML documents within the per-file budgets and this load's alias budget,
    /// or a diagnostic at the syntax error or at the alias that goes over.
    pub fn read_documents(
        &mut self,
        snapshot: &RepoSnapshot,
        file: &str,
    ) -> Result<Vec<YamlDoc>, Diagnostic> {
        let text = read_text(snapshot, file)?;
        parse_documents_within(text, &mut self.aliases)
            .map_err(|e| Diagnostic::error(file, e.pos, e.message))
    }

    /// Whether loading should stop checking documents: `diags` holds [`MAX_DIAGNOSTICS`]. The
    /// first time, says so with a diagnostic at `file` (where checking stopped).
    pub fn diagnostics_full(&mut self, file: &str, diags: &mut Vec<Diagnostic>) -> bool {
        if diags.len() < MAX_DIAGNOSTICS {
            return false;
        }
        if !self.stopped {
            self.stopped = true;
            diags.push(
                Diagnostic::error(
                    file,
                    Pos { line: 1, col: 1 },
                    format!(
                        "checking stopped here: the configuration already has {} problems, the \
                         {}; the rest of the repository is not checked",
                        diags.len(),
                        Budget::Diagnostics
                    ),
                )
                .help("fix the problems reported, then validate again to see the rest"),
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn budgets_name_themselves_with_their_size() {
        assert_eq!(
            Budget::YamlBytes.to_string(),
            "budget MAX_YAML_BYTES (64 MiB of memory per parsed YAML file, sized for the \
             controller's 256 MiB)"
        );
        assert_eq!(
            Budget::YamlNodes.to_string(),
            "budget MAX_YAML_NODES (500,000 nodes per YAML file, sized for the controller's 256 \
             MiB)"
        );
    }

    #[test]
    fn meters_refuse_what_does_not_fit_and_keep_their_total() {
        let mut m = Meter::patches();
        assert_eq!(m.charge(Size::new(MAX_PATCH_NODES, 1)), Ok(()));
        assert_eq!(m.charge(Size::new(1, 0)), Err(Budget::PatchNodes));
        assert_eq!(m.used(), Size::new(MAX_PATCH_NODES, 1));
        assert_eq!(
            m.charge(Size::new(0, MAX_PATCH_BYTES)),
            Err(Budget::PatchBytes)
        );
        assert_eq!(m.remaining(), Size::new(0, MAX_PATCH_BYTES - 1));
    }

    #[test]
    fn measure_counts_nodes_strings_and_keys_and_stops_early() {
        let v = json!({"ab": ["xyz", 1, null], "c": {"d": true}});
        // object, array, 3 scalars, object, bool = 7 nodes of 32 bytes; two mappings; three
        // entries; "ab" "xyz" "c" "d" = 7 bytes of text.
        let bytes = 7 * NODE_BYTES + 2 * MAPPING_BYTES + 3 * ENTRY_BYTES + 7;
        assert_eq!(measure(&v, Size::new(100, 10_000)), Size::new(7, bytes));
        let big = Value::Array(vec![Value::Null; 1_000_000]);
        let over = measure(&big, Size::new(10, 10));
        assert!(over.nodes > 10, "over the limit: {over:?}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(16_777_216), "16,777,216");
    }
}
