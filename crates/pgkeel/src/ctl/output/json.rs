//! JSON text as Python's `json.dumps` prints it (`", "`/`": "` separators, ASCII only), so
//! `pgkeelctl -f json` output is byte-compatible with patronictl's.

use serde_json::Value;
use std::fmt::Write;

/// `json.dumps(value)` with default arguments.
pub fn dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out, (", ", ": "));
    out
}

/// `json.dumps(value, separators=(',', ':'))`: what patronictl writes to the `config` key.
pub fn dumps_compact(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out, (",", ":"));
    out
}

/// Writes `v` with the item and key separators `sep`.
fn write_value(v: &Value, out: &mut String, sep: (&str, &str)) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.0);
                }
                write_value(x, out, sep);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(k, out);
                out.push_str(sep.1);
                write_value(x, out, sep);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
