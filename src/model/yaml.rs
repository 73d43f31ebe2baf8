//! YAML loading that keeps source positions.
//!
//! serde_yaml forgets where a value came from, and every diagnostic cairn prints must name a line
//! and column. So documents are parsed from yaml-rust2's event stream into `serde_json::Value`
//! (the form the rest of cairn works on) plus a [`SpanIndex`] from JSON pointer to position.
//! Work on hostile input is bounded: nesting depth is capped, and every node and every byte of
//! scalar and key text a file produces, aliases expanded (the "billion laughs" attack), is
//! charged to the file's budget ([`super::budget::MAX_YAML_NODES`] and
//! [`super::budget::MAX_YAML_BYTES`], across all its documents), and optionally what aliases
//! add to a budget shared by several files ([`parse_documents_within`]).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::budget::{Budget, Meter, Size};

/// Deepest nesting of mappings and sequences accepted in one document.
pub const MAX_DEPTH: usize = 128;

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn from_marker(m: &Marker) -> Pos {
        Pos {
            line: m.line() as u32,
            col: m.col() as u32 + 1,
        }
    }
}

/// Positions of the values (and mapping keys) of one document, by JSON pointer (`/spec/workers/0`).
#[derive(Clone, Debug, Default)]
pub struct SpanIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl SpanIndex {
    /// Where the value at `pointer` starts; falls back to the nearest enclosing value that has a
    /// position (values produced by an alias only have the alias's position).
    pub fn value(&self, pointer: &str) -> Pos {
        lookup(&self.values, pointer)
    }

    /// Where the key of the mapping entry at `pointer` starts, or the value's position when the
    /// pointer does not end in a mapping key.
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

fn lookup(map: &HashMap<String, Pos>, pointer: &str) -> Pos {
    let mut p = pointer;
    loop {
        if let Some(pos) = map.get(p) {
            return *pos;
        }
        match p.rfind('/') {
            Some(i) => p = &p[..i],
            None => return Pos::default(),
        }
    }
}

/// One parsed document of a multi-document stream.
#[derive(Clone, Debug)]
pub struct YamlDoc {
    pub value: Value,
    pub spans: SpanIndex,
    /// Where the document's content starts.
    pub start: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Escapes one JSON pointer token (RFC 6901).
pub fn escape_token(token: &str) -> String {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1")
    } else {
        token.to_string()
    }
}

/// Parses every document of `text` within one file's budgets. Empty documents are dropped.
pub fn parse_documents(text: &str) -> Result<Vec<YamlDoc>, YamlError> {
    parse(text, None)
}

/// [`parse_documents`], also charging what aliases add to `aliases`, a budget shared by several
/// files (the config of a whole render).
pub fn parse_documents_within(text: &str, aliases: &mut Meter) -> Result<Vec<YamlDoc>, YamlError> {
    parse(text, Some(aliases))
}

fn parse(text: &str, aliases: Option<&mut Meter>) -> Result<Vec<YamlDoc>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        docs: Vec::new(),
        stack: Vec::new(),
        spans: SpanIndex::default(),
        anchors: HashMap::new(),
        doc_start: None,
        meter: Meter::yaml(),
        aliases,
    };
    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError {
            pos: Pos::from_marker(e.marker()),
            message: format!("invalid YAML: {}", e.info()),
        })?;
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, Pos::from_marker(&mark))?;
    }
    Ok(builder.docs)
}

/// A container being filled while its events arrive.
enum Frame {
    Seq {
        items: Vec<Value>,
        pointer: String,
        anchor: usize,
        size: Size,
    },
    Map {
        map: Map<String, Value>,
        pointer: String,
        anchor: usize,
        size: Size,
        /// The key read, waiting for its value.
        pending_key: Option<String>,
    },
}

struct Builder<'m> {
    docs: Vec<YamlDoc>,
    stack: Vec<Frame>,
    spans: SpanIndex,
    /// Anchored values with what each expands to.
    anchors: HashMap<usize, (Value, Size)>,
    doc_start: Option<Pos>,
    /// Everything this file has produced, across its documents.
    meter: Meter,
    /// What aliases add, when several files share a budget for that.
    aliases: Option<&'m mut Meter>,
}

/// Why a file is refused for going over `budget`.
fn over_budget(pos: Pos, budget: Budget) -> YamlError {
    YamlError {
        pos,
        message: format!(
            "the file holds more than its {budget} allows by here; split it into smaller files"
        ),
    }
}

impl Builder<'_> {
    /// Charges `size` to the file's budget.
    fn charge(&mut self, size: Size, pos: Pos) -> Result<(), YamlError> {
        self.meter.charge(size).map_err(|b| over_budget(pos, b))
    }

    fn on_event(&mut self, event: Event, pos: Pos) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart => {
                self.charge(Size::DOCUMENT, pos)?;
                self.spans = SpanIndex::default();
                self.anchors.clear();
                self.doc_start = None;
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.awaiting_key() {
                    self.charge(Size::entry(text.len()).plus(Size::SPAN), pos)?;
                    return self.take_key(text, pos);
                }
                let size = Size::scalar(text.len());
                self.charge(size.plus(Size::SPAN), pos)?;
                let value = resolve_scalar(&text, style, tag.as_ref(), pos)?;
                self.finish_node(value, size, anchor, pos)?;
            }
            Event::Alias(id) => {
                if self.awaiting_key() {
                    return Err(YamlError {
                        pos,
                        message: "aliases are not supported as mapping keys".into(),
                    });
                }
                let Some((_, size)) = self.anchors.get(&id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                    });
                };
                let size = *size;
                // Charged before the value is copied: the copy is what a bomb multiplies.
                let bomb = |what: &str, budget: Budget| YamlError {
                    pos,
                    message: format!(
                        "this alias expands {what} past its {budget}; refusing it as a likely \
                         alias bomb"
                    ),
                };
                self.meter
                    .charge(size.plus(Size::SPAN))
                    .map_err(|b| bomb("the file", b))?;
                if let Some(shared) = self.aliases.as_deref_mut() {
                    shared.charge(size).map_err(|b| {
                        bomb("the configuration (fleet.yaml, clusters/, profiles/)", b)
                    })?;
                }
                let value = self
                    .anchors
                    .get(&id)
                    .map(|(v, _)| v.clone())
                    .unwrap_or_default();
                self.finish_node(value, size, 0, pos)?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.awaiting_key() {
                    return Err(YamlError {
                        pos,
                        message: "complex mapping keys are not supported; use a plain string key"
                            .into(),
                    });
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                let size = if matches!(event, Event::SequenceStart(..)) {
                    Size::sequence()
                } else {
                    Size::mapping()
                };
                self.charge(size.plus(Size::SPAN), pos)?;
                let pointer = self.child_pointer();
                self.record(&pointer, pos);
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq {
                            items: Vec::new(),
                            pointer,
                            anchor,
                            size,
                        }
                    } else {
                        Frame::Map {
                            map: Map::new(),
                            pointer,
                            anchor,
                            size,
                            pending_key: None,
                        }
                    });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, size, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        anchor,
                        size,
                        ..
                    }) => (Value::Array(items), size, anchor),
                    Some(Frame::Map {
                        map, anchor, size, ..
                    }) => (Value::Object(map), size, anchor),
                    None => return Ok(()),
                };
                self.attach(value, size, anchor, pos)?;
            }
            Event::DocumentEnd | Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn awaiting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn take_key(&mut self, key: String, pos: Pos) -> Result<(), YamlError> {
        let Some(Frame::Map {
            map,
            pointer,
            pending_key,
            size,
            ..
        }) = self.stack.last_mut()
        else {
            return Ok(());
        };
        *size = size.plus(Size::entry(key.len()));
        let child = format!("{pointer}/{}", escape_token(&key));
        if map.contains_key(&key) {
            let first = self.spans.keys.get(&child).copied().unwrap_or_default();
            return Err(YamlError {
                pos,
                message: format!(
                    "duplicate key `{key}` in this mapping (first set at line {}); \
                     remove one of them",
                    first.line
                ),
            });
        }
        // yaml-rust2 places a block mapping at the `:` of its first key; people expect the
        // mapping to start where its first key does.
        if map.is_empty() {
            let pointer = pointer.clone();
            if let Some(start) = self.spans.values.get_mut(&pointer) {
                if pos < *start {
                    *start = pos;
                    if pointer.is_empty() {
                        self.doc_start = Some(pos);
                    }
                }
            }
        }
        self.spans.keys.insert(child, pos);
        *pending_key = Some(key);
        Ok(())
    }

    /// The pointer of the node that is about to start.
    fn child_pointer(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Seq { items, pointer, .. }) => format!("{pointer}/{}", items.len()),
            Some(Frame::Map {
                pointer,
                pending_key,
                ..
            }) => format!(
                "{pointer}/{}",
                escape_token(pending_key.as_deref().unwrap_or(""))
            ),
        }
    }

    fn record(&mut self, pointer: &str, pos: Pos) {
        if self.stack.is_empty() && self.doc_start.is_none() {
            self.doc_start = Some(pos);
        }
        self.spans.values.insert(pointer.to_string(), pos);
    }

    fn finish_node(
        &mut self,
        value: Value,
        size: Size,
        anchor: usize,
        pos: Pos,
    ) -> Result<(), YamlError> {
        let pointer = self.child_pointer();
        self.record(&pointer, pos);
        self.attach(value, size, anchor, pos)
    }

    /// Puts a finished node into its parent, or ends the document when it is the root. An
    /// anchored node is kept a second time, for its aliases, and charged again for that.
    fn attach(
        &mut self,
        value: Value,
        size: Size,
        anchor: usize,
        pos: Pos,
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            self.charge(size, pos)?;
            self.anchors.insert(anchor, (value.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if !value.is_null() {
                    self.docs.push(YamlDoc {
                        value,
                        spans: std::mem::take(&mut self.spans),
                        start: self.doc_start.unwrap_or_default(),
                    });
                }
            }
            Some(Frame::Seq { items, size: s, .. }) => {
                items.push(value);
                *s = s.plus(size);
            }
            Some(Frame::Map {
                map,
                pending_key,
                size: s,
                ..
            }) => {
                if let Some(key) = pending_key.take() {
                    map.insert(key, value);
                }
                *s = s.plus(size);
            }
        }
        Ok(())
    }
}

/// Resolves a scalar with the YAML 1.2 core schema (as serde_yaml does): quoted scalars are
/// strings; plain ones may be null, booleans, integers or floats.
fn resolve_scalar(
    text: &str,
    style: TScalarStyle,
    tag: Option<&Tag>,
    pos: Pos,
) -> Result<Value, YamlError> {
    if let Some(tag) = tag {
        if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" {
            if tag.suffix == "str" {
                return Ok(Value::String(text.to_string()));
            }
        } else if tag.handle == "!" && tag.suffix.is_empty() {
            return Ok(Value::String(text.to_string()));
        } else {
            return Err(YamlError {
                pos,
                message: format!("unsupported YAML tag `{}{}`", tag.handle, tag.suffix),
            });
        }
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => plain_number(text).unwrap_or_else(|| Value::String(text.to_string())),
    })
}

fn plain_number(text: &str) -> Option<Value> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let first = digits.chars().next()?;
    if !(first.is_ascii_digit() || first == '.') {
        return None;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Value::from);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Value::from);
    }
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::from(i));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(Value::from(u));
        }
    }
    let float_chars = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if float_chars && digits.bytes().any(|b| b.is_ascii_digit()) {
        let f: f64 = text.parse().ok()?;
        return Number::from_f64(f).map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn positions_point_at_values_and_keys() {
        let docs = parse_documents("a: 1\nb:\n  c: [x, y]\n").unwrap();
        assert_eq!(docs[0].value, json!({"a": 1, "b": {"c": ["x", "y"]}}));
        let s = &docs[0].spans;
        assert_eq!(s.value("/a"), Pos { line: 1, col: 4 });
        assert_eq!(s.key("/b/c"), Pos { line: 3, col: 3 });
        assert_eq!(s.value("/b/c/1"), Pos { line: 3, col: 10 });
        assert_eq!(s.value("/b/c/1/deeper"), Pos { line: 3, col: 10 });
    }

    #[test]
    fn block_mappings_start_at_their_first_key() {
        let docs = parse_documents(
            "# c\napiVersion: v1\nspec:\n  workers:\n    - name: a\n      x: {b: 1}\n",
        )
        .unwrap();
        let s = &docs[0].spans;
        assert_eq!(docs[0].start, Pos { line: 2, col: 1 });
        assert_eq!(s.value(""), Pos { line: 2, col: 1 });
        assert_eq!(s.value("/spec"), Pos { line: 4, col: 3 });
        assert_eq!(s.value("/spec/workers/0"), Pos { line: 5, col: 7 });
        assert_eq!(s.value("/spec/workers/0/x"), Pos { line: 6, col: 10 });
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs =
            parse_documents("[~, yes, True, 010, 0x1F, 1.5, \"3\", v1.34.2, .inf, 1e3, -7, '']")
                .unwrap();
        assert_eq!(
            docs[0].value,
            json!([
                null, "yes", true, 10, 31, 1.5, "3", "v1.34.2", ".inf", 1000.0, -7, ""
            ])
        );
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("---\na: 1\n---\n# nothing\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].start.line, 6);
    }

    #[test]
    fn duplicate_keys_are_rejected_with_position() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn aliases_expand_but_bombs_are_refused() {
        let docs = parse_documents("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(docs[0].value, json!({"a": [1, 2], "b": [1, 2]}));
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        let err = parse_documents(&bomb).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{}", err.message);
    }

    #[test]
    fn a_big_scalar_aliased_many_times_stops_at_the_byte_budget() {
        let big = "x".repeat(1 << 20);
        let mut text = format!("a: &big {big}\nb:\n");
        for _ in 0..2_000 {
            text.push_str("  - *big\n");
        }
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("MAX_YAML_BYTES"), "{}", err.message);
        // The anchor (kept twice: in the tree and for its aliases) and 61 aliases fit in 64 MiB;
        // the 62nd alias does not.
        assert_eq!(err.pos.line, 2 + 62);
    }

    #[test]
    fn the_node_budget_counts_every_document_of_the_file() {
        let mut one = String::from("---\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..5 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            one.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        // About 123,000 nodes a document, and as many again for the anchors kept for their
        // aliases: each document fits alone, three do not.
        assert!(parse_documents(&one).is_ok());
        let err = parse_documents(&one.repeat(3)).unwrap_err();
        assert!(err.message.contains("MAX_YAML_NODES"), "{}", err.message);
        assert!(
            err.pos.line > 2 * 6,
            "refused in the third document: {:?}",
            err.pos
        );
    }

    #[test]
    fn plain_text_is_charged_too() {
        // 500,001 scalars read from the text, each with its position: past 64 MiB first.
        let text = "- 1\n".repeat(crate::model::budget::MAX_YAML_NODES as usize + 1);
        let err = parse_documents(&text).unwrap_err();
        assert!(err.message.contains("MAX_YAML_BYTES"), "{}", err.message);
        assert!(err.message.contains("split it"), "{}", err.message);
    }

    #[test]
    fn a_shared_meter_bounds_aliases_across_files() {
        let file =
            "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
        let mut shared = Meter::config_aliases();
        let per_file = 10 * 10;
        let fits = crate::model::budget::MAX_CONFIG_ALIAS_NODES / per_file;
        for _ in 0..fits {
            parse_documents_within(file, &mut shared).unwrap();
        }
        let err = parse_documents_within(file, &mut shared).unwrap_err();
        assert!(
            err.message.contains("MAX_CONFIG_ALIAS_NODES"),
            "{}",
            err.message
        );
        assert!(err.message.contains("alias bomb"), "{}", err.message);
        assert!(parse_documents(file).is_ok(), "each file alone is fine");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "a:\n".to_string()
            + &(1..200)
                .map(|i| format!("{}a:\n", "  ".repeat(i)))
                .collect::<String>()
            + &"  ".repeat(200)
            + "x\n";
        assert!(
            parse_documents(&deep)
                .unwrap_err()
                .message
                .contains("nesting")
        );
        let flow = "[".repeat(300) + &"]".repeat(300);
        assert!(parse_documents(&flow).is_err());
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(err.message.starts_with("invalid YAML"));
    }
}
