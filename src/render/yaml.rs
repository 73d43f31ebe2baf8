//! A YAML writer for `serde_json::Value`s: byte-for-byte what serde_yaml 0.9 writes for the
//! object with its keys sorted, 3-5 times faster, so every rendered stream is deterministic.

use serde_json::Value;

/// The objects as a multi-document YAML stream, every mapping's keys sorted.
///
/// The text is byte-for-byte what `serde_yaml::to_string` writes for each object with its keys
/// sorted (the tests hold the two together), 3-5 times faster: serde_yaml copies the object to
/// sort it, decides how to quote every string by running its deserializer on it, and goes
/// through libyaml's event machinery. At 10,000 clusters that was a third of `cairn render`'s
/// CPU time (BENCHMARKS.md).
pub fn objects_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for obj in objects {
        out.push_str("---\n");
        write_yaml(&mut out, obj);
    }
    out
}

/// Appends one value as a YAML document, exactly as `serde_yaml::to_string(&sorted(value))`.
pub fn write_yaml(out: &mut String, value: &Value) {
    let mut e = Emitter {
        out,
        indent: -1,
        column: 0,
        whitespace: true,
        indention: true,
    };
    e.node(value, Context::Root);
    // The implicit document end. serde_yaml::to_string never ends the stream, so a trailing
    // `|+` scalar is not followed by `...`.
    e.write_indent();
}

// ---------------------------------------------------------------------------------------------
// A YAML writer that reproduces serde_yaml 0.9 (libyaml's emitter with unicode output, unlimited
// width and two-space indentation) for the events a `serde_json::Value` produces. Each function
// below mirrors the libyaml function of the same purpose; the names in comments are libyaml's.

/// Where a node sits, as libyaml's emitter tracks it (`root/sequence/mapping/simple_key_context`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    SequenceItem,
    MappingValue,
    SimpleKey,
    /// A key too long or multi-line for the `key: value` form, written after `? `.
    ComplexKey,
}

impl Context {
    fn in_mapping(self) -> bool {
        matches!(
            self,
            Context::MappingValue | Context::SimpleKey | Context::ComplexKey
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Style {
    /// serde_yaml leaves the choice to libyaml (`ScalarStyle::Any`).
    Any,
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

struct Emitter<'a> {
    out: &'a mut String,
    indent: i32,
    /// In characters, as libyaml counts.
    column: i32,
    whitespace: bool,
    indention: bool,
}

const BEST_INDENT: i32 = 2;

impl Emitter<'_> {
    fn node(&mut self, value: &Value, ctx: Context) {
        match value {
            Value::Null => self.scalar("null", Style::Plain, ctx),
            Value::Bool(b) => self.scalar(if *b { "true" } else { "false" }, Style::Plain, ctx),
            Value::Number(n) if n.is_f64() => {
                // serde_yaml formats floats with ryu (`1e20`), serde_json differently (`1e+20`).
                // Floats are rare in manifests, so borrow serde_yaml's formatting for them.
                let text = serde_yaml::to_string(n).unwrap_or_default();
                self.scalar(text.trim_end(), Style::Plain, ctx)
            }
            Value::Number(n) => self.scalar(&n.to_string(), Style::Plain, ctx),
            Value::String(s) => self.scalar(s, serde_style(s), ctx),
            Value::Array(items) if items.is_empty() => self.empty_collection("[", "]"),
            Value::Object(map) if map.is_empty() => self.empty_collection("{", "}"),
            Value::Array(items) => {
                // yaml_emitter_emit_block_sequence_item
                let saved = self.indent;
                self.increase_indent(false, ctx.in_mapping() && !self.indention);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(item, Context::SequenceItem);
                }
                self.indent = saved;
            }
            Value::Object(map) => {
                // yaml_emitter_emit_block_mapping_key / _value
                let saved = self.indent;
                self.increase_indent(false, false);
                // serde_json's map is sorted unless its `preserve_order` feature is on.
                let mut entries: Vec<(&String, &Value)>;
                let entries: &mut dyn Iterator<Item = (&String, &Value)> = if map.keys().is_sorted()
                {
                    &mut map.iter()
                } else {
                    entries = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    &mut entries.into_iter()
                };
                for (key, value) in entries {
                    self.write_indent();
                    let info = analyze(key);
                    if !info.multiline && key.len() <= 128 {
                        self.scalar_with(key, serde_style(key), Context::SimpleKey, &info);
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.scalar_with(key, serde_style(key), Context::ComplexKey, &info);
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(value, Context::MappingValue);
                }
                self.indent = saved;
            }
        }
    }

    /// `[]` or `{}` (libyaml writes empty collections in flow style).
    fn empty_collection(&mut self, open: &str, close: &str) {
        self.write_indicator(open, true, true, false);
        self.write_indicator(close, false, false, false);
    }

    fn scalar(&mut self, value: &str, requested: Style, ctx: Context) {
        let info = analyze(value);
        self.scalar_with(value, requested, ctx, &info);
    }

    /// yaml_emitter_emit_scalar: select_scalar_style, increase_indent, process_scalar.
    fn scalar_with(&mut self, value: &str, requested: Style, ctx: Context, info: &Analysis) {
        let simple_key = ctx == Context::SimpleKey;
        let mut style = match requested {
            Style::Any => Style::Plain,
            s => s,
        };
        if simple_key && info.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain && (!info.block_plain_allowed || (value.is_empty() && simple_key))
        {
            style = Style::SingleQuoted;
        }
        if style == Style::SingleQuoted && !info.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!info.block_allowed || simple_key) {
            style = Style::DoubleQuoted;
        }
        let saved = self.indent;
        self.increase_indent(true, false);
        match style {
            Style::Plain | Style::Any if !info.multiline => {
                // No line breaks: written as is.
                if !self.whitespace && !value.is_empty() {
                    self.put(' ');
                }
                self.write_str(value);
                self.whitespace = false;
                self.indention = false;
            }
            Style::Plain | Style::Any => self.write_plain(value),
            Style::SingleQuoted => self.write_single_quoted(value),
            Style::DoubleQuoted => self.write_double_quoted(value),
            Style::Literal => self.write_literal(value),
        }
        self.indent = saved;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// WRITE_BREAK: a line break character, `\n` as is and the others copied.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_str(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += if s.is_ascii() {
            s.len() as i32
        } else {
            s.chars().count() as i32
        };
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0);
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(&mut self, indicator: &str, need_ws: bool, is_ws: bool, is_indention: bool) {
        if need_ws && !self.whitespace {
            self.put(' ');
        }
        self.write_str(indicator);
        self.whitespace = is_ws;
        self.indention = self.indention && is_indention;
    }

    fn write_plain(&mut self, value: &str) {
        if !self.whitespace && !value.is_empty() {
            self.put(' ');
        }
        self.write_lines(value, false);
        self.whitespace = false;
        self.indention = false;
    }

    /// Writes `value` with its line breaks as YAML folds them (an extra break before the first
    /// of a run, re-indenting after it), doubling `'` when `single_quoted`. Returns whether it
    /// ended inside a run of breaks.
    fn write_lines(&mut self, value: &str, single_quoted: bool) -> bool {
        let mut breaks = false;
        for c in value.chars() {
            if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if single_quoted && c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
        breaks
    }

    fn write_single_quoted(&mut self, value: &str) {
        self.write_indicator("'", true, false, false);
        if !value.contains(['\'', '\r', '\n', '\u{85}', '\u{2028}', '\u{2029}']) {
            self.write_str(value);
        } else {
            if self.write_lines(value, true) {
                self.write_indent();
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, value: &str) {
        self.write_indicator("\"", true, false, false);
        for c in value.chars() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let code = c as u32;
                let short = match code {
                    0x00 => Some('0'),
                    0x07 => Some('a'),
                    0x08 => Some('b'),
                    0x09 => Some('t'),
                    0x0A => Some('n'),
                    0x0B => Some('v'),
                    0x0C => Some('f'),
                    0x0D => Some('r'),
                    0x1B => Some('e'),
                    0x22 => Some('"'),
                    0x5C => Some('\\'),
                    0x85 => Some('N'),
                    0xA0 => Some('_'),
                    0x2028 => Some('L'),
                    0x2029 => Some('P'),
                    _ => None,
                };
                match short {
                    Some(s) => self.put(s),
                    None => {
                        let (prefix, digits) = match code {
                            0..=0xFF => ('x', 2),
                            0x100..=0xFFFF => ('u', 4),
                            _ => ('U', 8),
                        };
                        self.put(prefix);
                        for k in (0..digits).rev() {
                            let digit = (code >> (4 * k)) & 0xF;
                            self.put(
                                char::from_digit(digit, 16)
                                    .unwrap_or('0')
                                    .to_ascii_uppercase(),
                            );
                        }
                    }
                }
            } else {
                self.put(c);
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        // yaml_emitter_write_block_scalar_hints
        let mut chars = value.chars();
        if chars.next().is_some_and(|c| c == ' ' || is_break(c)) {
            self.write_indicator("2", false, false, false);
        }
        let mut tail = value.chars().rev();
        match (tail.next(), tail.next()) {
            (None, _) => self.write_indicator("-", false, false, false),
            (Some(last), _) if !is_break(last) => self.write_indicator("-", false, false, false),
            (Some(_), None) => self.write_indicator("+", false, false, false),
            (Some(_), Some(before)) if is_break(before) => {
                self.write_indicator("+", false, false, false)
            }
            _ => {}
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for line in value.split_inclusive(is_break) {
            let (text, brk) = match line.chars().next_back() {
                Some(c) if is_break(c) => (&line[..line.len() - c.len_utf8()], Some(c)),
                _ => (line, None),
            };
            if !text.is_empty() {
                if breaks {
                    self.write_indent();
                }
                self.write_str(text);
                self.indention = false;
                breaks = false;
            }
            if let Some(c) = brk {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            }
        }
    }
}

/// The style serde_yaml asks libyaml for: literal for multi-line strings, single quotes for
/// strings that would read back as something else (null, a bool, a number), otherwise libyaml's
/// choice.
fn serde_style(s: &str) -> Style {
    if s.contains('\n') {
        Style::Literal
    } else if reads_as_non_string(s) {
        Style::SingleQuoted
    } else {
        Style::Any
    }
}

/// Whether serde_yaml reads the plain scalar `s` as anything but a string (YAML 1.2 core
/// schema, as `serde_yaml::de::visit_untagged_scalar`), or as a string only because of leading
/// zeros.
fn reads_as_non_string(s: &str) -> bool {
    // Every such scalar starts with one of these; most strings are decided here.
    let Some(first) = s.bytes().next() else {
        return true; // empty: null
    };
    if !(first.is_ascii_digit() || b"+-.nNtTfF~yYoO".contains(&first)) {
        return false;
    }
    matches!(
        s,
        "null" | "Null" | "NULL" | "~" | "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
    ) || is_yaml11_bool(s)
        || digits_but_not_number(s)
        || parse_unsigned_int(s, |t, r| u128::from_str_radix(t, r).is_ok())
        || parse_negative_int(s, |t, r| i128::from_str_radix(t, r).is_ok())
        || parse_f64(s)
}

/// YAML 1.1 booleans. YAML 1.2 (and serde_yaml) read them as strings, but kubectl's parser is
/// YAML 1.1 and reads `enabled: yes` as `true`, so such strings are quoted (unlike serde_yaml).
fn is_yaml11_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

fn parse_unsigned_int(s: &str, parses: fn(&str, u32) -> bool) -> bool {
    let unpositive = s.strip_prefix('+').unwrap_or(s);
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(rest) = unpositive.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return false;
            }
            if parses(rest, radix) {
                return true;
            }
        }
    }
    if unpositive.starts_with(['+', '-']) || digits_but_not_number(s) {
        return false;
    }
    parses(unpositive, 10)
}

fn parse_negative_int(s: &str, parses: fn(&str, u32) -> bool) -> bool {
    for (prefix, radix) in [("-0x", 16), ("-0o", 8), ("-0b", 2)] {
        if let Some(rest) = s.strip_prefix(prefix)
            && parses(&format!("-{rest}"), radix)
        {
            return true;
        }
    }
    !digits_but_not_number(s) && parses(s, 10)
}

fn parse_f64(s: &str) -> bool {
    if digits_but_not_number(s) {
        return false;
    }
    let unpositive = match s.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return false,
        Some(rest) => rest,
        None => s,
    };
    matches!(unpositive, ".inf" | ".Inf" | ".INF")
        || matches!(s, "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN" | ".NAN")
        || unpositive.parse::<f64>().is_ok_and(f64::is_finite)
}

/// What libyaml's `yaml_emitter_analyze_scalar` finds out about a scalar.
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's IS_BLANKZ (end of string counts too).
fn is_blankz(c: Option<char>) -> bool {
    match c {
        None => true,
        Some(c) => matches!(c, ' ' | '\t' | '\0') || is_break(c),
    }
}

/// libyaml's IS_PRINTABLE.
fn is_printable(c: char) -> bool {
    let c = c as u32;
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (0xA0..=0xD7FF).contains(&c)
        || ((0xE000..=0xFFFD).contains(&c) && c != 0xFEFF)
        || c >= 0x10000
}

fn analyze(s: &str) -> Analysis {
    if s.is_ascii() {
        // Same rules, without decoding UTF-8.
        analyze_chars(s, s.bytes().map(char::from))
    } else {
        analyze_chars(s, s.chars())
    }
}

fn analyze_chars(s: &str, chars: impl Iterator<Item = char>) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut line_breaks = false;
    let mut special_characters = false;
    let mut leading_space = false;
    let mut leading_break = false;
    let mut trailing_space = false;
    let mut trailing_break = false;
    let mut break_space = false;
    let mut space_break = false;
    let mut previous_space = false;
    let mut previous_break = false;
    let mut preceded_by_whitespace = true;
    let mut chars = chars.peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let followed_by_whitespace = is_blankz(next);
        let last = next.is_none();
        if first {
            if matches!(
                c,
                '#' | ','
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '&'
                    | '*'
                    | '!'
                    | '|'
                    | '>'
                    | '\''
                    | '"'
                    | '%'
                    | '@'
                    | '`'
            ) || ((c == '?' || c == ':' || c == '-') && followed_by_whitespace)
            {
                block_indicators = true;
            }
        } else if (c == ':' && followed_by_whitespace) || (c == '#' && preceded_by_whitespace) {
            block_indicators = true;
        }
        if !is_printable(c) {
            special_characters = true;
        }
        if c == ' ' {
            leading_space |= first;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= first;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(Some(c));
        first = false;
    }
    let mut block_plain_allowed = true;
    let mut single_quoted_allowed = true;
    let mut block_allowed = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        block_plain_allowed = false;
    }
    if trailing_space {
        block_allowed = false;
    }
    if break_space {
        block_plain_allowed = false;
        single_quoted_allowed = false;
    }
    if space_break || special_characters {
        block_plain_allowed = false;
        single_quoted_allowed = false;
        block_allowed = false;
    }
    if line_breaks || block_indicators {
        block_plain_allowed = false;
    }
    Analysis {
        multiline: line_breaks,
        block_plain_allowed,
        single_quoted_allowed,
        block_allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::finalize::sorted;
    use proptest::prelude::*;
    use serde_json::json;

    fn serde_yaml_text(objects: &[Value]) -> String {
        let mut out = String::new();
        for obj in objects {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&sorted(obj)).unwrap());
        }
        out
    }

    /// Whether a string (key or value) anywhere in `value` is a YAML 1.1 boolean, which the
    /// writer quotes and serde_yaml does not.
    fn has_yaml11_bool(value: &Value) -> bool {
        match value {
            Value::String(s) => is_yaml11_bool(s),
            Value::Array(items) => items.iter().any(has_yaml11_bool),
            Value::Object(map) => map
                .iter()
                .any(|(k, v)| is_yaml11_bool(k) || has_yaml11_bool(v)),
            _ => false,
        }
    }

    /// The writer must agree with serde_yaml byte for byte (but for the YAML 1.1 booleans it
    /// quotes), and the text must read back as the same value.
    fn check(value: &Value) {
        let ours = objects_yaml(std::slice::from_ref(value));
        if !has_yaml11_bool(value) {
            assert_eq!(
                ours,
                serde_yaml_text(std::slice::from_ref(value)),
                "for {value:?}"
            );
        }
        let back: Value = serde_yaml::from_str(ours.strip_prefix("---\n").unwrap()).unwrap();
        assert_eq!(&back, value, "round trip of {ours}");
    }

    #[test]
    fn yaml11_booleans_are_quoted_for_kubectl() {
        for word in ["yes", "No", "ON", "off", "y", "N"] {
            let text = objects_yaml(&[json!({"enabled": word, word: [word]})]);
            assert!(text.contains(&format!("enabled: '{word}'")), "{text}");
            assert!(text.contains(&format!("'{word}':")), "{text}");
            check(&json!({"enabled": word, word: [word]}));
        }
    }

    #[test]
    fn rendered_fleets_match_serde_yaml() {
        let synthetic = crate::synth::synthetic_fleet(40);
        let synthetic =
            crate::model::RepoSnapshot::from_files(synthetic.iter().map(|(p, t)| (p.clone(), t)));
        for snapshot in [crate::example::example_snapshot(), synthetic] {
            let rendered = crate::render::render_repo(&snapshot, &[]);
            assert!(!rendered.has_errors());
            let objects = rendered
                .bundles
                .iter()
                .flat_map(|b| &b.stages)
                .flat_map(|s| &s.objects);
            for obj in objects {
                check(obj);
            }
        }
    }

    const TRICKY: &[&str] = &[
        "",
        " ",
        "  ",
        "a",
        "true",
        "True",
        "TRUE",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "null",
        "Null",
        "NULL",
        "~",
        "0",
        "-0",
        "+0",
        "007",
        "-007",
        "+12",
        "1_000",
        "0x1F",
        "0o17",
        "0b101",
        "-0x1F",
        "0x",
        "1e3",
        "1E3",
        "1.5",
        ".5",
        "1.",
        "-.5",
        ".inf",
        "-.inf",
        "+.inf",
        ".nan",
        ".NaN",
        "inf",
        "nan",
        "NaN",
        "infinity",
        "1e400",
        "123456789012345678901234567890123456789012",
        "1:20",
        "2024-01-01",
        "a: b",
        "a:b",
        "a :b",
        "key:",
        ":",
        "::",
        "- a",
        "-a",
        "-",
        "--",
        "---",
        "--- a",
        "...",
        "? a",
        "?a",
        "#",
        "# c",
        "a #b",
        "a#b",
        "a # b",
        "[a]",
        "{a}",
        "a,b",
        "a[0]",
        "&a",
        "*a",
        "!a",
        "|",
        ">",
        "'",
        "\"",
        "'a'",
        "\"a\"",
        "%a",
        "@a",
        "`a",
        " leading",
        "trailing ",
        " both ",
        "a  b",
        "tab\there",
        "\t",
        "cr\rhere",
        "nul\0",
        "bell\u{7}",
        "del\u{7f}",
        "nbsp\u{a0}",
        "\u{85}nel",
        "ls\u{2028}ps\u{2029}",
        "bom\u{feff}",
        "\u{fffe}",
        "\u{ffff}",
        "héllo",
        "日本語",
        "emoji 🚀",
        "\u{9f}",
        "a\nb",
        "a\n",
        "a\n\n",
        "\n",
        "\n\n",
        "\na",
        " a\nb",
        "a \nb",
        "a\n b",
        "a\n\nb\n",
        "line\r\nwin",
        "a\tb\nc",
        "x\n  indented\n",
        "${VAR}",
        "$${VAR}",
        "a'b",
        "it's",
        "a\\b",
        "C:\\path",
        "unix:///csi/csi.sock",
        "http://x:80/a?b=c#d",
        "=",
        "<<",
        "*",
        "&",
        "!!str",
        "%YAML",
        "0.0.0.0/0",
        "10.0.0.1",
        "v1.34.2",
        "1.10",
        "1.0",
        "+1",
        "++1",
        "+-1",
        "-+1",
        "0x+1",
        "00",
        "0.",
        "08",
        "09.5",
        "1e",
        "e1",
        "0e0",
    ];

    #[test]
    fn tricky_strings_as_values_keys_and_items() {
        for s in TRICKY {
            check(&json!({"k": s}));
            check(&json!({ *s: "v" }));
            check(&json!({"list": [s, [s], {"k": s}], "nested": {"deeper": {"k": s}}}));
            check(&json!([s]));
            check(&json!([[s, s]]));
            check(&json!(s));
        }
    }

    #[test]
    fn other_scalars_and_shapes() {
        check(
            &json!({"a": null, "b": true, "c": false, "d": 0, "e": -12, "f": 1.5,
            "g": 1e20, "h": 0.1, "i": u64::MAX, "j": i64::MIN, "k": [], "l": {}, "m": [[], {}],
            "n": [{"a": 1, "b": [1, 2]}, [{"x": {}}]], "o": -0.0, "p": 3.0}),
        );
        check(&json!([]));
        check(&json!({}));
        let long_key = "k".repeat(129);
        check(&json!({ long_key.clone(): "v", "x": {long_key.clone(): [1]} }));
        check(&json!({ "k".repeat(128): {"a": "b"} }));
        check(&json!({ "multi\nline": "v", "x": {"a\nb\n": {"c": 1}} }));
        check(&json!({ "z": 1, "a": 2, "m": {"y": 1, "b": 2} }));
    }

    #[test]
    fn keep_chomping_block_scalars() {
        check(&json!({"a": "x\n\n"}));
        check(&json!({"a": "x\n\n", "b": "y"}));
        check(&json!({"a": "x\n\n", "b": "y\n"}));
        check(&json!({"a": "x\n", "b": "y\n\n"}));
        check(&json!(["\n"]));
    }

    fn scalar_string() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(TRICKY).prop_map(str::to_string),
            "[ -~]{0,12}",
            "[a-z0-9 :#'\"\\-.\n]{0,16}",
            "[0-9eE.+\\-_xob]{1,6}",
            any::<String>(),
            proptest::collection::vec(
                proptest::sample::select(
                    &[
                        "a", " ", "\n", ":", "#", "'", "\"", "-", "\t", "\r", "0", "é", "\u{2028}",
                        "\u{85}", "?", "\u{feff}", "\\", "---", "~",
                    ][..]
                ),
                0..10
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            scalar_string().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(scalar_string(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_string_round_trips_like_serde_yaml(s in scalar_string(), key in scalar_string()) {
            check(&json!({"v": s.clone(), "list": [s.clone()], key: {"k": s}}));
        }

        #[test]
        fn any_document_round_trips_like_serde_yaml(value in json_value()) {
            check(&json!({"doc": value.clone()}));
            check(&json!([value.clone()]));
            check(&value);
        }
    }
}
