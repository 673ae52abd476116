//! Configuration errors and warnings.
//!
//! Every [`ConfigError`] displays as exactly one line:
//! `<file>:<line>: <key.path>: <problem> (got <value>, expected <what>)`. The line is left out only
//! when the key is absent (a missing required key) and values coming from the environment are
//! located as `<env PATRONI_X>`. Password values are never printed: they show as `<redacted>`.

use std::fmt;

use serde_json::Value;

/// The longest rendering of an offending value before it is cut with `...`.
const MAX_VALUE_CHARS: usize = 80;

/// Why a configuration could not be loaded. `Display` is a single line naming the file, the line
/// (when known), the key path, the problem, the offending value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file or directory could not be read.
    #[error("{file}: cannot read configuration: {message}")]
    Io {
        /// The path that could not be read.
        file: String,
        /// The operating system's reason.
        message: String,
    },
    /// The text is not valid YAML.
    #[error("{file}:{line}:{column}: invalid YAML: {message}")]
    Syntax {
        /// Where the YAML came from (a path or `<env PATRONI_CONFIGURATION>`).
        file: String,
        /// 1-based line reported by the parser.
        line: usize,
        /// 1-based column reported by the parser.
        column: usize,
        /// The parser's message, without its own position suffix.
        message: String,
    },
    /// The YAML is well formed but a value is missing, of the wrong type or invalid.
    #[error("{0}")]
    Invalid(Box<InvalidValue>),
}

/// The details of [`ConfigError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    /// Where the value came from: a path, or `<env PATRONI_X>` for environment overrides.
    pub file: String,
    /// 1-based line of the key, when the key is present in a file.
    pub line: Option<usize>,
    /// The full key path, such as `postgresql.authentication.replication`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// The offending value, already rendered and redacted.
    pub got: Option<String>,
    /// What would have been accepted.
    pub expected: Option<String>,
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_invalid(
            &self.file,
            self.line,
            &self.key,
            &self.problem,
            self.got.as_deref(),
            self.expected.as_deref(),
        ))
    }
}

impl ConfigError {
    /// Builds a [`ConfigError::Invalid`].
    pub(crate) fn invalid(
        file: String,
        line: Option<usize>,
        key: String,
        problem: String,
        got: Option<String>,
        expected: Option<String>,
    ) -> ConfigError {
        ConfigError::Invalid(Box::new(InvalidValue {
            file,
            line,
            key,
            problem,
            got,
            expected,
        }))
    }

    /// The key path the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid(v) => Some(&v.key),
            _ => None,
        }
    }

    /// The 1-based line the error points at, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Invalid(v) => v.line,
            ConfigError::Syntax { line, .. } => Some(*line),
            ConfigError::Io { .. } => None,
        }
    }

    /// The file (or `<env ...>` pseudo-location) the error points at.
    pub fn file(&self) -> &str {
        match self {
            ConfigError::Invalid(v) => &v.file,
            ConfigError::Syntax { file, .. } | ConfigError::Io { file, .. } => file,
        }
    }
}

fn render_invalid(
    file: &str,
    line: Option<usize>,
    key: &str,
    problem: &str,
    got: Option<&str>,
    expected: Option<&str>,
) -> String {
    let mut s = match line {
        Some(l) => format!("{file}:{l}: {key}: {problem}"),
        None => format!("{file}: {key}: {problem}"),
    };
    match (got, expected) {
        (Some(g), Some(e)) => s.push_str(&format!(" (got {g}, expected {e})")),
        (Some(g), None) => s.push_str(&format!(" (got {g})")),
        (None, Some(e)) => s.push_str(&format!(" (expected {e})")),
        (None, None) => {}
    }
    one_line(&s)
}

/// Something in the configuration that pgkeel tolerates but the operator should know about:
/// an unknown or unsupported key, a legacy section, a conflicting tag...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file (or `<env PATRONI_X>`) the warning is about.
    pub file: String,
    /// 1-based line of the key, when known.
    pub line: Option<usize>,
    /// The key path concerned, when the warning is about one key.
    pub key: Option<String>,
    /// The message, without the location.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// True when a key path names a secret whose value must never be shown.
pub(crate) fn is_secret_path(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.split('[').next().unwrap_or(last).to_ascii_lowercase();
    last.contains("password") || last == "token" || last == "auth_data"
}

/// Renders an offending value for an error message: scalars as YAML-ish text, collections as a
/// short description, secrets as `<redacted>`.
pub(crate) fn render_value(path: &str, value: &Value) -> String {
    if is_secret_path(path) {
        return "<redacted>".to_string();
    }
    let s = match value {
        Value::Null => "null (an empty value)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            if items.iter().all(|v| !v.is_object() && !v.is_array()) {
                serde_json::to_string(items).unwrap_or_else(|_| "a list".to_string())
            } else {
                format!("a list of {} items", items.len())
            }
        }
        Value::Object(m) => format!("a mapping with {} keys", m.len()),
    };
    truncate(&one_line(&s))
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_VALUE_CHARS).collect();
    out.push_str("...");
    out
}

/// Collapses line breaks so that a message stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    if !s.contains(['\n', '\r']) {
        return s.to_string();
    }
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_renders_one_line() {
        let e = ConfigError::invalid(
            "a.yml".into(),
            Some(3),
            "bootstrap.dcs.ttl".into(),
            "not an integer".into(),
            Some("\"abc\"".into()),
            Some("an integer number of seconds".into()),
        );
        assert_eq!(
            e.to_string(),
            "a.yml:3: bootstrap.dcs.ttl: not an integer (got \"abc\", expected an integer number of seconds)"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            render_value(
                "postgresql.authentication.superuser.password",
                &json!("s3cret")
            ),
            "<redacted>"
        );
        assert_eq!(
            render_value("etcd3.password", &json!({"a": 1})),
            "<redacted>"
        );
        assert_eq!(render_value("ttl", &json!("abc")), "\"abc\"");
    }

    #[test]
    fn long_values_are_cut() {
        let v = json!("x".repeat(500));
        assert!(render_value("k", &v).len() < 100);
    }
}
