//! Variable substitution in manifests, following clusterctl's envsubst rules for braced forms.
//!
//! `${NAME}` is the value; `${NAME:=default}` and `${NAME:-default}` fall back when the variable
//! is unset or empty; `${NAME=default}` and `${NAME-default}` only when it is unset; `$${NAME}`
//! is the literal `${NAME}`. Of drone/envsubst's string functions, the replacements that
//! provider components use: `${NAME/from/to}` (the first), `${NAME//from/to}` (every one),
//! `${NAME/#from/to}` (a prefix) and `${NAME/%from/to}` (a suffix); an unset variable is empty
//! there, as clusterctl counts these forms as having a default. A bare `$NAME` is left alone on purpose: shell snippets in
//! ConfigMaps are full of them, and substituting them silently breaks those scripts.
//!
//! The output is bounded by [`MAX_SUBSTITUTED_BYTES`]: one large variable used many times is
//! refused at the reference that would go over, before anything that size is allocated.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::model::budget::{Budget, MAX_SUBSTITUTED_BYTES};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubstError {
    /// Byte offset of the `${` in the input.
    pub offset: usize,
    pub message: String,
    pub help: Option<String>,
}

/// One `${...}` occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reference<'a> {
    start: usize,
    end: usize,
    name: &'a str,
    op: Op<'a>,
}

/// What a reference does with its variable's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op<'a> {
    Value,
    /// The default, and whether it also replaces an empty value (`:=`, `:-`).
    Default(&'a str, bool),
    Replace(Replace, &'a str, &'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replace {
    First,
    All,
    Prefix,
    Suffix,
}

impl<'a> Op<'a> {
    /// How long [`apply`](Self::apply)'s text is, counted without building it (a replacement
    /// of every match may grow a value many times over).
    fn output_len(&self, value: Option<&str>) -> usize {
        match (*self, value) {
            (Op::Replace(Replace::All, from, to), Some(v)) if !from.is_empty() => {
                let matches = v.matches(from).count();
                v.len() - matches * from.len() + matches * to.len()
            }
            (Op::Replace(_, from, to), Some(v)) => v.len() + to.len().saturating_sub(from.len()),
            _ => self.apply(value).map_or(0, |t| t.len()), // borrowed: nothing is built
        }
    }

    /// The text that replaces the reference; `None` when the variable is required and unset.
    fn apply<'v>(&self, value: Option<&'v str>) -> Option<Cow<'v, str>>
    where
        'a: 'v,
    {
        match (*self, value) {
            (Op::Default(d, true), Some("")) => Some(Cow::Borrowed(d)),
            (Op::Value | Op::Default(..), Some(v)) => Some(Cow::Borrowed(v)),
            (Op::Default(d, _), None) => Some(Cow::Borrowed(d)),
            (Op::Value, None) => None,
            (Op::Replace(how, from, to), value) => {
                let v = value.unwrap_or_default();
                Some(Cow::Owned(match how {
                    Replace::First => v.replacen(from, to, 1),
                    Replace::All if from.is_empty() => v.to_string(),
                    Replace::All => v.replace(from, to),
                    Replace::Prefix => match v.strip_prefix(from) {
                        Some(rest) => format!("{to}{rest}"),
                        None => v.to_string(),
                    },
                    Replace::Suffix => match v.strip_suffix(from) {
                        Some(rest) => format!("{rest}{to}"),
                        None => v.to_string(),
                    },
                }))
            }
        }
    }
}

/// Names of the variables `text` refers to, sorted and deduplicated.
pub fn referenced(text: &str) -> Vec<String> {
    let mut names: Vec<String> = scan(text)
        .filter_map(|r| r.ok())
        .filter_map(|piece| match piece {
            Piece::Ref(r) => Some(r.name.to_string()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Substitutes every reference; collects every unset variable and malformed reference. Stops
/// at the first reference that would take the output past [`MAX_SUBSTITUTED_BYTES`].
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Vec<SubstError>> {
    substitute_within(text, vars, MAX_SUBSTITUTED_BYTES as usize)
}

/// [`substitute`] with the output limited to `limit` bytes.
fn substitute_within(
    text: &str,
    vars: &BTreeMap<String, String>,
    limit: usize,
) -> Result<String, Vec<SubstError>> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len().min(limit));
    let mut errors = Vec::new();
    let mut last = 0;
    for piece in scan(text) {
        match piece {
            Err(e) => errors.push(e),
            Ok(Piece::Escape(at)) => {
                out.push_str(&text[last..at]);
                out.push('$');
                last = at + 2;
            }
            Ok(Piece::Ref(r)) => {
                let value = vars.get(r.name).map(String::as_str);
                let grown = out.len() + (r.start - last) + r.op.output_len(value);
                if grown > limit {
                    errors.push(SubstError {
                        offset: r.start,
                        message: format!(
                            "substituting `${{{}}}` here takes the manifest past its {}",
                            r.name,
                            Budget::SubstitutedBytes
                        ),
                        help: Some(
                            "a large value used many times multiplies: keep big content in its \
                             own file, or reference it fewer times"
                                .into(),
                        ),
                    });
                    return Err(errors);
                }
                out.push_str(&text[last..r.start]);
                match r.op.apply(value) {
                    Some(v) => out.push_str(&v),
                    None => errors.push(SubstError {
                        offset: r.start,
                        message: format!("variable `{}` is not set", r.name),
                        help: Some(format!(
                            "set spec.variables.{} on the cluster, give it a default in the profile, \
                             or write ${{{}:=default}}",
                            r.name, r.name
                        )),
                    }),
                }
                last = r.end;
            }
        }
    }
    if out.len() + (text.len() - last) > limit {
        // Only reachable when the text itself is near the limit: the file budget bounds it.
        errors.push(SubstError {
            offset: last,
            message: format!(
                "the manifest is past its {} after substitution",
                Budget::SubstitutedBytes
            ),
            help: None,
        });
        return Err(errors);
    }
    out.push_str(&text[last..]);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

enum Piece<'a> {
    /// `$${`: emit a literal `$` and skip one.
    Escape(usize),
    Ref(Reference<'a>),
}

fn scan(text: &str) -> impl Iterator<Item = Result<Piece<'_>, SubstError>> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i + 1 < bytes.len() {
            if bytes[i] != b'$' {
                i += 1;
                continue;
            }
            if bytes[i + 1] == b'$' && bytes.get(i + 2) == Some(&b'{') {
                let at = i;
                // Skip past the escaped `${` so it is not read as a reference.
                i += 3;
                return Some(Ok(Piece::Escape(at)));
            }
            if bytes[i + 1] != b'{' {
                i += 1;
                continue;
            }
            let start = i;
            let Some(close) = text[start..].find('}').map(|c| start + c) else {
                i = bytes.len();
                return Some(Err(SubstError {
                    offset: start,
                    message: "`${` without a closing `}`".into(),
                    help: Some("write $${ for a literal ${".into()),
                }));
            };
            i = close + 1;
            return Some(parse_reference(&text[start + 2..close], start, close + 1));
        }
        None
    })
}

fn parse_reference(inner: &str, start: usize, end: usize) -> Result<Piece<'_>, SubstError> {
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let name = &inner[..name_end];
    let rest = &inner[name_end..];
    let op = if rest.is_empty() {
        Op::Value
    } else if let Some(d) = rest.strip_prefix(":=").or_else(|| rest.strip_prefix(":-")) {
        Op::Default(d, true)
    } else if let Some(d) = rest.strip_prefix('=').or_else(|| rest.strip_prefix('-')) {
        Op::Default(d, false)
    } else if let Some(replace) = rest.strip_prefix('/').and_then(parse_replace) {
        replace
    } else {
        return Err(SubstError {
            offset: start,
            message: format!("malformed variable reference `${{{inner}}}`"),
            help: Some(
                "use ${NAME}, ${NAME:=default}, ${NAME/from/to}, or $${...} for a literal".into(),
            ),
        });
    };
    if !crate::model::validate::is_variable_name(name) {
        return Err(SubstError {
            offset: start,
            message: format!("`${{{inner}}}` does not start with a variable name"),
            help: Some("variable names are letters, digits and underscores".into()),
        });
    }
    Ok(Piece::Ref(Reference {
        start,
        end,
        name,
        op,
    }))
}

/// The part after `${NAME/`: `from/to`, `/from/to`, `#from/to` or `%from/to`.
fn parse_replace(rest: &str) -> Option<Op<'_>> {
    let (how, rest) = match rest.as_bytes().first()? {
        b'/' => (Replace::All, &rest[1..]),
        b'#' => (Replace::Prefix, &rest[1..]),
        b'%' => (Replace::Suffix, &rest[1..]),
        _ => (Replace::First, rest),
    };
    let (from, to) = rest.split_once('/')?;
    Some(Op::Replace(how, from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_follow_clusterctl() {
        let v = vars(&[
            ("A", "x"),
            ("EMPTY", ""),
            ("ROLE", "arn:aws:iam::1:role/x"),
            ("DOTS", "a.b.c"),
        ]);
        let cases = [
            ("${A}", "x"),
            ("a-${A}-b", "a-x-b"),
            ("${B:=d}", "d"),
            ("${B:-d}", "d"),
            ("${EMPTY:=d}", "d"),
            ("${EMPTY=d}", ""),
            ("${A:=d}", "x"),
            ("$${A}", "${A}"),
            ("$HOME and $$", "$HOME and $$"),
            ("${B:=}", ""),
            // CAPA's components: a role ARN becomes a ServiceAccount annotation.
            (
                "${ROLE/#arn/role-arn: arn}",
                "role-arn: arn:aws:iam::1:role/x",
            ),
            ("${B/#arn/role-arn: arn}", ""),
            ("${A/x/y}", "y"),
            ("${DOTS//./-}", "a-b-c"),
            ("${DOTS/./-}", "a-b.c"),
            ("${DOTS/%c/d}", "a.b.d"),
            ("${DOTS/%x/d}", "a.b.c"),
        ];
        for (input, want) in cases {
            assert_eq!(substitute(input, &v).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn every_unset_variable_is_reported_with_its_offset() {
        let errs = substitute("a: ${X}\nb: ${Y}\n", &vars(&[])).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].offset, 11);
        assert!(errs[0].message.contains("`X`"));
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(substitute("${A", &vars(&[])).is_err());
        assert!(substitute("${1A}", &vars(&[])).is_err());
        assert!(substitute("${A?x}", &vars(&[("A", "1")])).is_err());
    }

    #[test]
    fn output_past_the_budget_is_refused_at_the_reference() {
        let v = vars(&[("BIG", "0123456789")]);
        assert_eq!(substitute_within("${BIG}${BIG}", &v, 20).unwrap().len(), 20);
        let errs = substitute_within("a: ${BIG}\nb: ${BIG}\nc: ${BIG}\n", &v, 30).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].offset, 23, "the third reference");
        assert!(
            errs[0].message.contains("MAX_SUBSTITUTED_BYTES"),
            "{}",
            errs[0].message
        );
        assert!(errs[0].message.contains("`${BIG}`"), "{}", errs[0].message);
    }

    #[test]
    fn a_replacement_that_multiplies_a_value_is_refused_before_it_is_built() {
        let v = vars(&[("A", &"a".repeat(1 << 20))]);
        let errs = substitute(&format!("${{A//a/{}}}", "b".repeat(100)), &v).unwrap_err();
        assert!(errs[0].message.contains("16 MiB"), "{}", errs[0].message);
    }

    #[test]
    fn a_mebibyte_used_ten_thousand_times_stops_at_sixteen() {
        let v = vars(&[("BIG", &"x".repeat(1 << 20))]);
        let text = "- ${BIG}\n".repeat(10_000);
        let errs = substitute(&text, &v).unwrap_err();
        assert!(errs[0].message.contains("16 MiB"), "{}", errs[0].message);
        // Fifteen fit (with their `- ` and newlines), the sixteenth does not.
        assert_eq!(errs[0].offset, 15 * 9 + 2);
    }

    #[test]
    fn referenced_names() {
        assert_eq!(referenced("${B} ${A:=1} $${C} ${B}"), vec!["A", "B"]);
    }
}
