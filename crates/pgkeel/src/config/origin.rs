//! Where each configuration value came from: YAML parsing with a key-path -> line map, and the
//! error/warning context used while building the typed [`super::Config`].
//!
//! Values are parsed by serde-saphyr into a `serde_json::Value` (YAML 1.1 booleans, legacy octal,
//! merge keys, duplicate keys last-wins, like PyYAML, but with a warning). Lines are found by
//! walking the parser's event stream, which works for block and flow style alike.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser};

use super::error::{ConfigError, ConfigWarning, render_value};

/// Key path (`postgresql.authentication.superuser`, `bootstrap.initdb[1]`) -> 1-based line.
pub(crate) type LineMap = HashMap<String, usize>;

/// Joins a parent path and a key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent path and a sequence index.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        with_snippet: false,
    }
}

/// Parses YAML text into a JSON value the way PyYAML would read it.
pub(crate) fn parse_value(text: &str, file: &str) -> Result<Value, ConfigError> {
    serde_saphyr::from_str_with_options::<Value>(text, yaml_options()).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((1, 1));
        let rendered = e.render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        });
        let message = match rendered.rfind(" at line ") {
            Some(pos) => rendered[..pos].to_string(),
            None => rendered,
        };
        ConfigError::Syntax {
            file: file.to_string(),
            line: line.max(1),
            column: column.max(1),
            message: super::error::one_line(&message),
        }
    })
}

/// Parses a YAML document: its value and the line of each key and sequence item.
pub(crate) fn parse_document(text: &str, file: &str) -> Result<ParsedDocument, ConfigError> {
    let value = parse_value(text, file)?;
    let mut duplicates = Vec::new();
    let lines = line_map_with_duplicates(text, &mut duplicates);
    let duplicates = duplicates
        .into_iter()
        .map(|d| ConfigWarning {
            file: file.to_string(),
            line: Some(d.second_line),
            key: Some(d.path.clone()),
            message: format!(
                "duplicate key {} (first on line {}); the last one is used",
                d.path, d.first_line
            ),
        })
        .collect();
    Ok(ParsedDocument {
        value,
        lines,
        duplicates,
    })
}

/// One parsed YAML document.
pub(crate) struct ParsedDocument {
    /// The value, read as PyYAML would (a duplicate key's last value wins).
    pub value: Value,
    /// The line of each key and sequence item.
    pub lines: LineMap,
    /// A warning for each key given twice in one mapping: PyYAML (and so Patroni) silently
    /// keeps the last, which hides typos such as two `postgresql:` sections.
    pub duplicates: Vec<ConfigWarning>,
}

/// A key given twice in the same mapping.
struct DuplicateKey {
    path: String,
    first_line: usize,
    second_line: usize,
}

enum Frame {
    /// A mapping at `path`; `key` is the pending key once read (None: next node is a key).
    Map { path: String, key: Option<String> },
    /// A sequence at `path`; `next` is the index of the next item.
    Seq { path: String, next: usize },
}

/// Computes key path -> line from the parser's events. Best effort: stops at the first error.
#[cfg(test)]
pub(crate) fn line_map(text: &str) -> LineMap {
    line_map_with_duplicates(text, &mut Vec::new())
}

/// [`line_map`], also noting each key that appears twice in one mapping (merge keys `<<`
/// aside). The later line wins, as the later value does.
fn line_map_with_duplicates(text: &str, duplicates: &mut Vec<DuplicateKey>) -> LineMap {
    let mut lines = LineMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    for item in Parser::new_from_str(text) {
        let Ok((event, span)) = item else { break };
        let line = span.start.line();
        match event {
            Event::Scalar(ref text, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = stack.last_mut()
                {
                    let key_path = join(path, text);
                    if let Some(first_line) = lines.insert(key_path.clone(), line)
                        && text.as_ref() != "<<"
                    {
                        duplicates.push(DuplicateKey {
                            path: key_path,
                            first_line,
                            second_line: line,
                        });
                    }
                    *key = Some(text.to_string());
                } else {
                    node_start(&mut stack, &mut lines, line);
                    node_end(&mut stack);
                }
            }
            Event::Alias(_) => {
                if let Some(Frame::Map {
                    key: key @ None, ..
                }) = stack.last_mut()
                {
                    *key = Some("*".to_string());
                } else {
                    node_start(&mut stack, &mut lines, line);
                    node_end(&mut stack);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let path = node_start(&mut stack, &mut lines, line);
                if matches!(event, Event::MappingStart(..)) {
                    stack.push(Frame::Map { path, key: None });
                } else {
                    stack.push(Frame::Seq { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                node_end(&mut stack);
            }
            _ => {}
        }
    }
    lines
}

/// A value node starts: returns its path and records the line of sequence items.
fn node_start(stack: &mut [Frame], lines: &mut LineMap, line: usize) -> String {
    match stack.last_mut() {
        None => {
            lines.entry(String::new()).or_insert(line);
            String::new()
        }
        Some(Frame::Map { path, key }) => match key {
            Some(k) => join(path, k),
            // A complex (collection) key: give it a path nobody will look up.
            None => {
                *key = Some("?".to_string());
                join(path, "?complex-key")
            }
        },
        Some(Frame::Seq { path, next }) => {
            let p = index(path, *next);
            lines.entry(p.clone()).or_insert(line);
            p
        }
    }
}

/// A value node ended: advance the parent.
fn node_end(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => {
            // The complex-key marker stays set so the following value is treated as the value.
            if key.as_deref() != Some("?") {
                *key = None;
            } else {
                *key = Some("?complex-key".to_string());
            }
        }
        Some(Frame::Seq { next, .. }) => *next += 1,
        None => {}
    }
}

/// All the places values came from, in merge order (later wins), plus environment overrides.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    /// Shown for keys that are absent (a path, a directory, `<env>`).
    pub primary: String,
    /// Each file (display name) with its line map, in merge order.
    pub files: Vec<(String, LineMap)>,
    /// Key path -> the `PATRONI_*` variable that set it.
    pub env: BTreeMap<String, String>,
    /// Keys given twice in one file (see [`ParsedDocument::duplicates`]).
    pub duplicates: Vec<ConfigWarning>,
}

fn is_under(path: &str, ancestor: &str) -> bool {
    path == ancestor
        || (path.starts_with(ancestor)
            && matches!(path.as_bytes().get(ancestor.len()), Some(b'.') | Some(b'[')))
}

impl Origins {
    /// Where the value at `path` came from: (file or `<env X>`, line).
    pub fn locate(&self, path: &str) -> (String, Option<usize>) {
        // Environment overrides win over every file.
        for (p, var) in self.env.iter().rev() {
            if is_under(path, p) {
                return (format!("<env {var}>"), None);
            }
        }
        for (file, lines) in self.files.iter().rev() {
            if let Some(l) = lines.get(path) {
                return (file.clone(), Some(*l));
            }
        }
        // Only set from the environment below this path (e.g. the `etcd` section of PATRONI_ETCD_HOST).
        if let Some((_, var)) = self.env.iter().find(|(p, _)| is_under(p, path)) {
            return (format!("<env {var}>"), None);
        }
        // A value produced by a merge key or an alias: point at the nearest ancestor we know.
        let mut p = path;
        while let Some(pos) = p.rfind(['.', '[']) {
            p = &p[..pos];
            for (file, lines) in self.files.iter().rev() {
                if let Some(l) = lines.get(p) {
                    return (file.clone(), Some(*l));
                }
            }
        }
        (self.primary.clone(), None)
    }
}

/// Context while building the typed config: locates errors and collects warnings.
pub(crate) struct Ctx<'a> {
    /// Value origins.
    pub origins: &'a Origins,
    /// Warnings so far.
    pub warnings: Vec<ConfigWarning>,
}

impl<'a> Ctx<'a> {
    /// A new context.
    pub fn new(origins: &'a Origins) -> Ctx<'a> {
        Ctx {
            origins,
            warnings: Vec::new(),
        }
    }

    /// An error about the value at `path` (which is present).
    pub fn invalid(
        &self,
        path: &str,
        problem: impl Into<String>,
        got: Option<&Value>,
        expected: impl Into<String>,
    ) -> ConfigError {
        let (file, line) = self.origins.locate(path);
        let expected: String = expected.into();
        ConfigError::invalid(
            file,
            line,
            path.to_string(),
            problem.into(),
            got.map(|v| render_value(path, v)),
            (!expected.is_empty()).then_some(expected),
        )
    }

    /// An error about a value given as raw text (already known not to be secret-free).
    pub fn invalid_text(
        &self,
        path: &str,
        problem: impl Into<String>,
        got: &str,
        expected: impl Into<String>,
    ) -> ConfigError {
        self.invalid(
            path,
            problem,
            Some(&Value::String(got.to_string())),
            expected,
        )
    }

    /// A required key is absent (or present with an empty value, which YAML merging drops).
    pub fn missing(&self, path: &str, expected: impl Into<String>) -> ConfigError {
        if let Some((file, lines)) = self
            .origins
            .files
            .iter()
            .rev()
            .find(|(_, l)| l.contains_key(path))
        {
            return ConfigError::invalid(
                file.clone(),
                lines.get(path).copied(),
                path.to_string(),
                "empty value".to_string(),
                Some("null (an empty value)".to_string()),
                Some(expected.into()),
            );
        }
        ConfigError::invalid(
            self.origins.primary.clone(),
            None,
            path.to_string(),
            "missing required key".to_string(),
            None,
            Some(expected.into()),
        )
    }

    /// Records a warning about the key at `path`.
    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        let (file, line) = self.origins.locate(path);
        self.warnings.push(ConfigWarning {
            file,
            line,
            key: Some(path.to_string()),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_block_and_flow_keys() {
        let text = "scope: a\npostgresql:\n  listen: x\n  authentication:\n    superuser: {username: p}\nbootstrap:\n  initdb:\n  - encoding: UTF8\n  - data-checksums\n";
        let m = line_map(text);
        assert_eq!(m.get("scope"), Some(&1));
        assert_eq!(m.get("postgresql"), Some(&2));
        assert_eq!(m.get("postgresql.listen"), Some(&3));
        assert_eq!(m.get("postgresql.authentication.superuser"), Some(&5));
        assert_eq!(
            m.get("postgresql.authentication.superuser.username"),
            Some(&5)
        );
        assert_eq!(m.get("bootstrap.initdb[0]"), Some(&8));
        assert_eq!(m.get("bootstrap.initdb[0].encoding"), Some(&8));
        assert_eq!(m.get("bootstrap.initdb[1]"), Some(&9));
    }

    #[test]
    fn locate_prefers_env_then_last_file() {
        let mut a = LineMap::new();
        a.insert("name".into(), 3);
        let mut b = LineMap::new();
        b.insert("name".into(), 7);
        let mut o = Origins {
            primary: "dir".into(),
            files: vec![("a.yml".into(), a), ("b.yml".into(), b)],
            env: BTreeMap::new(),
            duplicates: Vec::new(),
        };
        assert_eq!(o.locate("name"), ("b.yml".into(), Some(7)));
        assert_eq!(o.locate("scope"), ("dir".into(), None));
        o.env.insert("name".into(), "PATRONI_NAME".into());
        assert_eq!(o.locate("name"), ("<env PATRONI_NAME>".into(), None));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse_value("a:\n  b: 1\n c: 2\n", "f.yml").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("f.yml:3:2: invalid YAML:"), "{s}");
        assert!(!s.contains('\n'));
    }
}
