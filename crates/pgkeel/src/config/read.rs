//! Typed value readers for the merged YAML tree: each reads one key of a mapping as a string,
//! boolean, integer, list, command or sub-mapping, and reports a wrong value with its key path.
//!
//! A null value counts as absent (Patroni drops null keys when merging).

use serde_json::{Map, Value};

use super::ShellCommand;
use super::error::ConfigError;
use super::origin::{Ctx, index, join};

type R<T> = Result<T, ConfigError>;

/// What a user may write for a boolean, as Patroni's `parse_bool` reads strings.
const BOOL_EXPECTED: &str = "a boolean: true/false, on/off, yes/no";

/// The value at `key`, with null read as absent.
fn get<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// Whether `key` holds a non-null value.
pub(crate) fn present(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// A sub-mapping, or `None` when absent.
pub(crate) fn section<'v>(
    ctx: &Ctx<'_>,
    parent: &'v Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<&'v Map<String, Value>>> {
    match get(parent, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(ctx.invalid(&join(pp, key), "wrong type", Some(other), "a mapping")),
    }
}

/// Strings, and numbers as their text (a numeric password is common); `None` for collections/bools.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An optional string (numbers read as their text); an error for any other type.
pub(crate) fn opt_str(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<String>> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => scalar_string(v)
            .map(Some)
            .ok_or_else(|| ctx.invalid(&join(pp, key), "wrong type", Some(v), "a string")),
    }
}

/// An optional string that must not be blank when given.
pub(crate) fn opt_nonempty_str(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<String>> {
    match opt_str(ctx, m, pp, key)? {
        Some(s) if s.trim().is_empty() => Err(ctx.invalid_text(
            &join(pp, key),
            "must not be empty",
            &s,
            "a non-empty string",
        )),
        other => Ok(other),
    }
}

/// A command string, split into words at load time like Patroni's `shlex.split` (see
/// [`ShellCommand`]), so a bad quote is reported here with its file, line and key.
pub(crate) fn opt_command(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<ShellCommand>> {
    let Some(raw) = opt_nonempty_str(ctx, m, pp, key)? else {
        return Ok(None);
    };
    ShellCommand::parse(&raw).map(Some).map_err(|e| {
        ctx.invalid_text(
            &join(pp, key),
            format!("cannot split the command into words like a POSIX shell: {e}"),
            &raw,
            r#"a command line with balanced quotes, such as psql -c "SELECT 1""#,
        )
    })
}

/// A required, non-blank string; `expected` says what belongs there when it is missing.
pub(crate) fn req_str(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
    expected: &str,
) -> R<String> {
    let path = join(pp, key);
    match m.get(key) {
        None => Err(ctx.missing(&path, expected)),
        Some(Value::Null) => Err(ctx.invalid(&path, "empty value", Some(&Value::Null), expected)),
        Some(v) => {
            let s = scalar_string(v)
                .ok_or_else(|| ctx.invalid(&path, "wrong type", Some(v), expected))?;
            if s.trim().is_empty() {
                return Err(ctx.invalid_text(&path, "must not be empty", &s, expected));
            }
            Ok(s)
        }
    }
}

/// Reads a boolean as Patroni does: YAML booleans, or `on/off/yes/no/true/false/1/0` strings.
pub(crate) fn value_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// An optional boolean read with [`value_bool`]; an error when the value is not one.
pub(crate) fn opt_bool(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<bool>> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => value_bool(v)
            .map(Some)
            .ok_or_else(|| ctx.invalid(&join(pp, key), "not a boolean", Some(v), BOOL_EXPECTED)),
    }
}

/// Reads an integer: a YAML integer, or a string holding one.
pub(crate) fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An optional integer read with [`value_i64`]; an error when the value is not one.
pub(crate) fn opt_i64(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<i64>> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => value_i64(v)
            .map(Some)
            .ok_or_else(|| ctx.invalid(&join(pp, key), "not an integer", Some(v), "an integer")),
    }
}

/// The non-blank, trimmed items of a comma-separated string (etcd `hosts: "a:2379,b:2379"`).
pub(crate) fn split_commas(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list of strings (`pg_hba`, role options).
pub(crate) fn str_list(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Vec<String>> {
    let path = join(pp, key);
    match get(m, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_string(item).ok_or_else(|| {
                    ctx.invalid(&index(&path, i), "wrong type", Some(item), "a string")
                })
            })
            .collect(),
        Some(other) => Err(ctx.invalid(&path, "wrong type", Some(other), "a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_like_patroni() {
        for (v, b) in [
            (Value::from("on"), Some(true)),
            (Value::from("No"), Some(false)),
            (Value::from(1), Some(true)),
            (Value::from("maybe"), None),
        ] {
            assert_eq!(value_bool(&v), b);
        }
    }
}
