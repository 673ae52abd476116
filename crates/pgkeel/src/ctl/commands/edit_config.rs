//! `pgkeelctl edit-config`: patronictl 4.1's `edit_config`. The cluster's `config` key is
//! changed by `--replace FILE` (start from `{}`), `--apply FILE` (deep merge, patronictl's
//! `patch_config`), `-s KEY=VALUE` / `-p PARAM=VALUE` (dotted paths, YAML values, null
//! deletes), or, without any of them, in `$EDITOR`. The diff is printed as `difflib` prints
//! it, confirmed (unless `--force`) and written as compact JSON with a compare-and-swap on the
//! revision read, so a concurrent change is never overwritten.

use super::super::output::{diff, json, yaml};
use super::super::prompt::confirm;
use super::super::{Connect, Context, CtlError, EditConfigArgs};
use super::read_cluster;
use super::switchover::cluster_name;
use pgkeel_ha::keys::KeyLayout;
use serde_json::{Map, Value};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Runs `edit-config`.
pub async fn run(
    ctx: &Context,
    args: &EditConfigArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    // `--group N` is a Citus group: patronictl's keys are then under `<scope>/<N>/`.
    let scope = super::members::group_scope(&name, args.group);
    let dcs = connect(&ctx.target).await?;
    let cluster = read_cluster(dcs.as_ref(), &ctx.target.namespace, &scope).await?;
    let Some(config) = cluster.config else {
        return Err(CtlError::Failed(format!(
            "The config key does not exist in the cluster {name}"
        )));
    };
    let data = config.data;
    let original = Value::Object(data.clone());
    let before_editing = yaml::dump_block(&original);

    // The configuration the options ask for; `None` when they ask nothing, and the editor is
    // started.
    let mut edited: Option<Map<String, Value>> = None;
    if let Some(file) = &args.replace {
        edited = Some(apply_yaml_file(&Map::new(), file, input)?);
    }
    if let Some(file) = &args.apply {
        let base = edited.as_ref().unwrap_or(&data);
        edited = Some(apply_yaml_file(base, file, input)?);
    }
    if !args.set.is_empty() || !args.pg.is_empty() {
        let pairs: Vec<String> = args
            .set
            .iter()
            .cloned()
            .chain(
                args.pg
                    .iter()
                    .map(|p| format!("postgresql.parameters.{}", p.trim_start())),
            )
            .collect();
        let base = edited.as_ref().unwrap_or(&data);
        edited = Some(apply_config_changes(base, &pairs)?);
    }
    let (after_editing, changed) = match edited {
        Some(data) => {
            let data = Value::Object(data);
            (yaml::dump_block(&data), data)
        }
        None => invoke_editor(&before_editing, &name)?,
    };

    if py_eq(&original, &changed) {
        if !args.quiet {
            writeln!(out, "Not changed")?;
        }
        return Ok(());
    }
    if !args.quiet {
        write!(
            out,
            "{}",
            diff::unified_diff(&before_editing, &after_editing)
        )?;
    }
    let from_stdin = args.apply.as_deref() == Some("-") || args.replace.as_deref() == Some("-");
    if from_stdin && !args.force {
        writeln!(out, "Use --force option to apply changes")?;
        return Ok(());
    }
    if args.force || confirm(input, out, "Apply these changes?")? {
        let key = KeyLayout::new(&ctx.target.namespace, &scope).config();
        let text = json::dumps_compact(&changed);
        if !dcs
            .put_if_mod_revision(&key, config.mod_revision, text.as_bytes())
            .await?
        {
            return Err(CtlError::Failed(
                "Config modification aborted due to concurrent changes".into(),
            ));
        }
        writeln!(out, "Configuration changed")?;
    }
    Ok(())
}

/// Parses YAML as `yaml.safe_load` does.
fn safe_load(text: &str, source: &str) -> Result<Value, CtlError> {
    super::super::pyyaml::safe_load(text, source).map_err(|e| CtlError::Failed(e.to_string()))
}

/// patronictl's `apply_yaml_file`: `data` patched with the mapping in `file` (`-` is stdin).
fn apply_yaml_file(
    data: &Map<String, Value>,
    file: &str,
    input: &mut (dyn BufRead + Send),
) -> Result<Map<String, Value>, CtlError> {
    let text = if file == "-" {
        let mut s = String::new();
        input.read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(file).map_err(|e| CtlError::Failed(format!("{file}: {e}")))?
    };
    let source = if file == "-" { "<stdin>" } else { file };
    let Value::Object(options) = safe_load(&text, source)? else {
        return Err(CtlError::Failed(format!(
            "{source}: the configuration to apply is not a mapping"
        )));
    };
    let mut changed = data.clone();
    patch_config(&mut changed, &options);
    Ok(changed)
}

/// patronictl's `apply_config_changes`: each `KEY=VALUE` pair sets the dotted path `KEY`
/// (under `postgresql.parameters` the rest of the path is one GUC name, dots included) to
/// `VALUE` read as YAML; a null value removes the key, and mappings left empty go too.
pub fn apply_config_changes(
    data: &Map<String, Value>,
    pairs: &[String],
) -> Result<Map<String, Value>, CtlError> {
    let mut changed = data.clone();
    for pair in pairs {
        let Some((path, value)) = pair.split_once('=') else {
            return Err(CtlError::Failed(format!(
                "Invalid parameter setting {pair}"
            )));
        };
        let value = safe_load(value, pair)?;
        let path: Vec<String> = path.trim().split('.').map(str::to_string).collect();
        set_path_value(&mut changed, &path, &value, &[]);
    }
    Ok(changed)
}

/// `set_path_value` of `apply_config_changes`.
fn set_path_value(
    config: &mut Map<String, Value>,
    path: &[String],
    value: &Value,
    prefix: &[&str],
) {
    let joined;
    let path = if prefix == ["postgresql", "parameters"] {
        joined = [path.join(".")];
        &joined[..]
    } else {
        path
    };
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        if value.is_null() {
            config.shift_remove(key);
        } else {
            config.insert(key.clone(), value.clone());
        }
        return;
    }
    if !matches!(config.get(key), Some(Value::Object(_))) {
        config.insert(key.clone(), Value::Object(Map::new()));
    }
    let mut sub: Vec<&str> = prefix.to_vec();
    sub.push(key);
    let emptied = match config.get_mut(key) {
        Some(Value::Object(child)) => {
            set_path_value(child, rest, value, &sub);
            child.is_empty()
        }
        _ => false,
    };
    if emptied {
        config.shift_remove(key);
    }
}

/// Patroni's `patch_config`: `data` merged into `config` (null removes a key, mappings merge,
/// other values replace unless their `str()` is the same).
pub fn patch_config(config: &mut Map<String, Value>, data: &Map<String, Value>) {
    for (name, value) in data {
        if value.is_null() {
            config.shift_remove(name);
            continue;
        }
        match (config.get_mut(name), value) {
            (Some(Value::Object(current)), Value::Object(patch)) => patch_config(current, patch),
            (Some(current), Value::Object(_)) => *current = value.clone(),
            (Some(current), _) => {
                if py_str(current) != py_str(value) {
                    *current = value.clone();
                }
            }
            (None, _) => {
                config.insert(name.clone(), value.clone());
            }
        }
    }
}

/// patronictl's `invoke_editor`: `$EDITOR` (else `editor`, else `vi` on the PATH) on a
/// temporary `<cluster>-config-*.yaml` holding `before`; returns the text left and its YAML.
fn invoke_editor(before: &str, cluster: &str) -> Result<(String, Value), CtlError> {
    let editor = match std::env::var_os("EDITOR").filter(|e| !e.is_empty()) {
        Some(e) => PathBuf::from(e),
        None => ["editor", "vi"]
            .iter()
            .find_map(|e| which(e))
            .ok_or_else(|| {
                CtlError::Failed(
                    "EDITOR environment variable is not set. editor or vi are not available".into(),
                )
            })?,
    };
    let file = TempFile::create(&format!("{}-config-", cluster.replace('/', "_")), before)?;
    let status = std::process::Command::new(&editor)
        .arg(&file.0)
        .status()
        .map_err(|e| CtlError::Failed(format!("cannot run {}: {e}", editor.display())))?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| -s))
            .unwrap_or(-1);
        return Err(CtlError::Failed(format!(
            "Editor exited with return code {code}"
        )));
    }
    let after = std::fs::read_to_string(&file.0)
        .map_err(|e| CtlError::Failed(format!("{}: {e}", file.0.display())))?;
    let data = safe_load(&after, &file.0.display().to_string())?;
    Ok((after, data))
}

/// `shutil.which(name)`: the first executable `name` on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A file in the temporary directory (`$TMPDIR`), removed on drop, like patronictl's
/// `temporary_file`.
struct TempFile(PathBuf);

impl TempFile {
    /// Creates `<dir>/<prefix><random>.yaml` (mode 0600, never an existing file) holding
    /// `contents`.
    fn create(prefix: &str, contents: &str) -> Result<TempFile, CtlError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir();
        let mut last = None;
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let tag = format!(
                "{:08x}",
                nanos ^ std::process::id().rotate_left(16) ^ attempt
            );
            let path = dir.join(format!("{prefix}{tag}.yaml"));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let file = TempFile(path);
                    f.write_all(contents.as_bytes())?;
                    return Ok(file);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| std::io::Error::other("no temporary file name left"))
            .into())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A number as Python sees it (bools are the integers 0 and 1).
enum PyNum {
    Int(i128),
    Float(f64),
}

fn py_num(v: &Value) -> Option<PyNum> {
    match v {
        Value::Bool(b) => Some(PyNum::Int(i128::from(*b))),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Some(PyNum::Int(i128::from(i))),
            (_, Some(u), _) => Some(PyNum::Int(i128::from(u))),
            (_, _, Some(f)) => Some(PyNum::Float(f)),
            _ => None,
        },
        _ => None,
    }
}

/// Python's `==` on JSON-like values (`1 == 1.0 == True`), for patronictl's `Not changed`
/// check.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (py_num(a), py_num(b)) {
        return match (x, y) {
            (PyNum::Int(x), PyNum::Int(y)) => x == y,
            (PyNum::Int(i), PyNum::Float(f)) | (PyNum::Float(f), PyNum::Int(i)) => {
                f.fract() == 0.0 && f.is_finite() && f as i128 == i
            }
            (PyNum::Float(x), PyNum::Float(y)) => x == y,
        };
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

/// Python's `str()` of a value, which `patch_config` compares.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a value.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(_) => match py_num(v) {
            Some(PyNum::Int(i)) => i.to_string(),
            Some(PyNum::Float(f)) => py_float(f),
            None => v.to_string(),
        },
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr()` of a float: the shortest digits, positional for exponents -4..16.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let e = exp as usize;
            if digits.len() <= e + 1 {
                format!("{sign}{digits}{}.0", "0".repeat(e + 1 - digits.len()))
            } else {
                format!("{sign}{}.{}", &digits[..=e], &digits[e + 1..])
            }
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let m = if digits.len() == 1 {
            digits
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{sign}{m}e{exp:+03}")
    }
}

/// Python's `repr()` of a string.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn set_pairs_like_patronictl() {
        let data = obj(json!({"ttl": 30, "postgresql": {"parameters": {"a.b": 1}}, "x": {"y": 1}}));
        let pairs = [
            "ttl=on".to_string(),
            "postgresql.parameters.a.b=".to_string(),
            "x.y=null".to_string(),
            "n.m=[1, 'a']".to_string(),
            "s=None".to_string(),
        ];
        let v = apply_config_changes(&data, &pairs).unwrap();
        assert_eq!(
            Value::Object(v),
            json!({"ttl": true, "n": {"m": [1, "a"]}, "s": "None"})
        );
        let e = apply_config_changes(&data, &["ttl".to_string()]).unwrap_err();
        assert_eq!(e.to_string(), "Invalid parameter setting ttl");
    }

    #[test]
    fn patch_and_compare_like_python() {
        let mut c = obj(json!({"a": 100, "b": {"c": 1, "d": 2}, "e": [1, 2], "t": true}));
        patch_config(
            &mut c,
            &obj(
                json!({"a": "100", "b": {"c": null, "z": 3}, "e": "[1, 2]", "t": "True", "n": null}),
            ),
        );
        assert_eq!(
            c,
            obj(json!({"a": 100, "b": {"d": 2, "z": 3}, "e": [1, 2], "t": true}))
        );
        assert!(py_eq(
            &json!({"a": 1, "b": true}),
            &json!({"b": 1, "a": 1.0})
        ));
        assert!(!py_eq(&json!({"a": "1"}), &json!({"a": 1})));
        assert_eq!(py_float(0.5), "0.5");
        assert_eq!(py_float(100.0), "100.0");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1.5e-5), "1.5e-05");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_repr(&json!(["it's", "a"])), "[\"it's\", 'a']");
    }
}
