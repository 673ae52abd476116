//! YAML text as PyYAML's `safe_dump(..., allow_unicode=True, width=200)` prints it (keys sorted,
//! indentless sequences in mappings, single-quoted strings that would read back as another
//! type), for patronictl-compatible `-f yaml` output and tag cells.

use serde_json::{Map, Value};

/// Block style (`default_flow_style=False`), with a trailing newline.
pub fn dump_block(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Array(a) if !a.is_empty() => emit_seq(a, 0, &mut out, false),
        Value::Object(o) if !o.is_empty() => emit_map(o, 0, &mut out, false),
        other => {
            out.push_str(&flow(other));
            out.push('\n');
        }
    }
    out
}

/// Flow style (`default_flow_style=True`), without a trailing newline: `{a: 1, b: true}`.
pub fn dump_flow(v: &Value) -> String {
    flow(v)
}

fn sorted(o: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = o.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

fn emit_map(o: &Map<String, Value>, indent: usize, out: &mut String, first_inline: bool) {
    for (i, (k, v)) in sorted(o).into_iter().enumerate() {
        if !(i == 0 && first_inline) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&scalar_str(k));
        out.push(':');
        match v {
            Value::Object(c) if !c.is_empty() => {
                out.push('\n');
                emit_map(c, indent + 2, out, false);
            }
            Value::Array(c) if !c.is_empty() => {
                out.push('\n');
                emit_seq(c, indent, out, false);
            }
            other => {
                out.push(' ');
                out.push_str(&block_value(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn emit_seq(a: &[Value], indent: usize, out: &mut String, first_inline: bool) {
    for (i, v) in a.iter().enumerate() {
        if !(i == 0 && first_inline) {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str("- ");
        match v {
            Value::Object(c) if !c.is_empty() => emit_map(c, indent + 2, out, true),
            Value::Array(c) if !c.is_empty() => emit_seq(c, indent + 2, out, true),
            other => {
                out.push_str(&block_value(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

/// A scalar in block context, `indent` being where its continuation lines start: a string
/// with line breaks is single-quoted with each break doubled, as PyYAML's
/// `write_single_quoted` folds it; anything else as in flow context.
fn block_value(v: &Value, indent: usize) -> String {
    match v {
        Value::String(s) if s.contains('\n') && single_quotable_multiline(s) => {
            let mut out = String::from("'");
            let mut rest = s.as_str();
            while let Some(i) = rest.find('\n') {
                out.push_str(&rest[..i].replace('\'', "''"));
                let after = &rest[i..];
                let breaks = after.len() - after.trim_start_matches('\n').len();
                // PyYAML writes one more break than the text has, then the indentation.
                out.push_str(&"\n".repeat(breaks + 1));
                out.push_str(&" ".repeat(indent));
                rest = &after[breaks..];
            }
            out.push_str(&rest.replace('\'', "''"));
            out.push('\'');
            out
        }
        other => flow(other),
    }
}

/// PyYAML's `analyze_scalar` allows single quotes for a multi-line string: no other control
/// character, no space right before or after a line break.
fn single_quotable_multiline(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\n') && !s.contains(" \n") && !s.contains("\n ")
}

fn flow(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_str(s),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(flow).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(o) => {
            let items: Vec<String> = sorted(o)
                .into_iter()
                .map(|(k, v)| format!("{}: {}", scalar_str(k), flow(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A string scalar: plain when PyYAML would print it plain, else quoted.
fn scalar_str(s: &str) -> String {
    if s.chars().any(|c| c.is_control()) {
        return serde_json::Value::String(s.to_string()).to_string();
    }
    if needs_quotes(s) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

fn needs_quotes(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return true;
    };
    if "-?:,[]{}#&*!|>'\"%@` ".contains(first)
        && !(matches!(first, '-' | '?' | ':') && s.len() > 1 && !s[1..].starts_with(' '))
    {
        return true;
    }
    s.ends_with(' ')
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || resolves_implicitly(s)
}

/// True if PyYAML's implicit resolvers would read `s` as null, bool, int, float or timestamp.
fn resolves_implicitly(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE",
        "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF",
        "-.inf", "+.inf", ".nan", ".NaN", ".NAN", "=",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let digitish = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '_');
    if digitish(body) {
        return true;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_');
    }
    if let Some(bin) = body.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| matches!(c, '0' | '1' | '_'));
    }
    // Floats: digits '.' digits, optional exponent.
    let (mantissa, exp_ok) = match body.find(['e', 'E']) {
        Some(i) => {
            let e = &body[i + 1..];
            let e = e.strip_prefix(['-', '+']);
            (
                &body[..i],
                e.is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())),
            )
        }
        None => (body, true),
    };
    if let Some((a, b)) = mantissa.split_once('.')
        && exp_ok
        && (digitish(a) || a.is_empty())
        && b.chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == '.')
        && !(a.is_empty() && b.is_empty())
    {
        return true;
    }
    // Sexagesimal (base 60) ints and floats: 1:20, 190:20:30.15.
    if let Some((head, rest)) = body.split_once(':')
        && digitish(head)
        && rest
            .split('.')
            .next()
            .unwrap_or("")
            .split(':')
            .all(|g| !g.is_empty() && g.len() <= 2 && g.chars().all(|c| c.is_ascii_digit()))
    {
        return true;
    }
    is_yaml_timestamp(s)
}

/// PyYAML's timestamp resolver, anchored at both ends: `YYYY-M-D`, optionally followed by
/// `T` (or blanks), `H:MM:SS`, a fraction and a zone (`Z`, `+H`, `+HH:MM`).
fn is_yaml_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize, min: usize, max: usize| -> bool {
        let start = *i;
        while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start >= min
    };
    let byte = |i: &mut usize, c: u8| -> bool {
        if b.get(*i) == Some(&c) {
            *i += 1;
            true
        } else {
            false
        }
    };
    if !(digits(&mut i, 4, 4)
        && byte(&mut i, b'-')
        && digits(&mut i, 1, 2)
        && byte(&mut i, b'-')
        && digits(&mut i, 1, 2))
    {
        return false;
    }
    if i == b.len() {
        // A date alone needs two-digit month and day.
        return i == 10;
    }
    if matches!(b[i], b'T' | b't') {
        i += 1;
    } else {
        let start = i;
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if !(digits(&mut i, 1, 2)
        && byte(&mut i, b':')
        && digits(&mut i, 2, 2)
        && byte(&mut i, b':')
        && digits(&mut i, 2, 2))
    {
        return false;
    }
    if byte(&mut i, b'.') {
        digits(&mut i, 0, usize::MAX);
    }
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    if i == b.len() {
        return true;
    }
    if byte(&mut i, b'Z') {
        return i == b.len();
    }
    if !(byte(&mut i, b'+') || byte(&mut i, b'-')) || !digits(&mut i, 1, 2) {
        return false;
    }
    if byte(&mut i, b':') && !digits(&mut i, 2, 2) {
        return false;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_read_back_as_other_types_are_quoted() {
        for s in [
            "*",
            "",
            "true",
            "on",
            "1",
            "0.5",
            "1.0e+3",
            "2024-01-01",
            "1:20",
            "a: b",
        ] {
            assert!(scalar_str(s).starts_with('\''), "{s}");
        }
        for s in [
            "127.0.0.1:5432",
            "0/40004E8",
            "streaming",
            "unknown",
            "postgresql0",
        ] {
            assert_eq!(scalar_str(s), s);
        }
    }

    #[test]
    fn timestamps_are_recognised_as_pyyaml_anchors_them() {
        for t in [
            "2030-01-02",
            "2030-1-2T3:04:05",
            "2030-01-02T03:04:05+00:00",
            "2030-01-02 03:04:05.123 Z",
            "2030-01-02t03:04:05-5",
        ] {
            assert!(is_yaml_timestamp(t), "{t}");
        }
        for t in [
            "2030-1-2",
            "2030-01-02T03:04:05+00:00 if version < 18.1",
            "2030-01-02T03:04",
            "2030-01-02x",
        ] {
            assert!(!is_yaml_timestamp(t), "{t}");
        }
    }

    #[test]
    fn multi_line_strings_are_single_quoted_with_doubled_breaks() {
        let v = json!({"a": "x: 1->2\nit's: ->3", "b": "one\n\ntwo", "c": "tab\t\nx"});
        assert_eq!(
            dump_block(&v),
            "a: 'x: 1->2\n\n  it''s: ->3'\nb: 'one\n\n\n  two'\nc: \"tab\\t\\nx\"\n"
        );
    }

    #[test]
    fn block_and_flow_follow_pyyaml() {
        let v = json!([{"b": 1, "a": {"y": true, "x": [1, 2]}}]);
        assert_eq!(
            dump_block(&v),
            "- a:\n    x:\n    - 1\n    - 2\n    y: true\n  b: 1\n"
        );
        assert_eq!(dump_flow(&json!({"b": true, "a": "x"})), "{a: x, b: true}");
    }
}
