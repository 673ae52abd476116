//! Loading: a file, a directory of `*.yml|*.yaml` files deep-merged in sorted order, or YAML in
//! `PATRONI_CONFIGURATION`; then `PATRONI_*` overrides on top; then the typed build and checks.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::build::{build, build_ctl_settings, not_a_mapping};
use super::env::{deep_merge, env_overlay};
use super::origin::{Ctx, Origins, parse_document};
use super::validate::validate_filesystem_with;
use super::{Config, ConfigError, ConfigWarning, CtlSettings};

/// A loaded configuration with the warnings found while reading it (unknown or unsupported keys,
/// legacy sections...). The caller logs the warnings.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: Config,
    /// Non-fatal findings, each naming its file and key path.
    pub warnings: Vec<ConfigWarning>,
}

/// The pseudo-file name used for configurations built from the environment only.
const ENV_SOURCE: &str = "<env>";
/// The pseudo-file name of YAML given in `PATRONI_CONFIGURATION`.
const ENV_CONFIGURATION_SOURCE: &str = "<env PATRONI_CONFIGURATION>";

/// Loads the configuration at `path` (a file, or a directory whose `*.yml`/`*.yaml` files are
/// deep-merged in sorted order) with the process's `PATRONI_*` overrides on top, then checks the
/// filesystem (`data_dir`, `bin_dir`, see [`super::validate_filesystem`]).
///
/// Unlike Patroni, the `PATRONI_*` variables are not removed from the environment.
pub fn load_config(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let display = path.display().to_string();
    let docs = read_docs(path)?;
    let (loaded, origins) = load_docs(&docs, &display, path.to_path_buf(), &env)?;
    validate_filesystem_with(&loaded.config, &Ctx::new(&origins))?;
    Ok(loaded)
}

/// Reads the file at `path`, or every `*.yml`/`*.yaml` file of the directory at `path` in
/// sorted order, as (display name, text) pairs.
fn read_docs(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let display = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::Io {
        file: display.clone(),
        message: e.to_string(),
    })?;
    let mut docs = Vec::new();
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| ConfigError::Io {
            file: display.clone(),
            message: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ConfigError::Io {
                file: display,
                message: "the directory holds no *.yml or *.yaml file".to_string(),
            });
        }
        for f in files {
            docs.push((f.display().to_string(), read(&f)?));
        }
    } else {
        docs.push((display, read(path)?));
    }
    Ok(docs)
}

/// Loads what pgkeelctl needs, the way patronictl loads its configuration: the file or
/// directory at `path` when given, else the YAML in `PATRONI_CONFIGURATION`, else nothing; the
/// `PATRONI_*` variables of `env` (`PATRONI_ETCD3_HOSTS`, `PATRONI_SCOPE`, ...) on top. Nothing is
/// required (see [`CtlSettings`]).
pub fn load_ctl_settings(
    path: Option<&Path>,
    env: &[(String, String)],
) -> Result<CtlSettings, ConfigError> {
    let (docs, primary) = match path {
        Some(p) => (read_docs(p)?, p.display().to_string()),
        None => match env
            .iter()
            .find(|(k, v)| k == "PATRONI_CONFIGURATION" && !v.is_empty())
        {
            Some((_, yaml)) => (
                vec![(ENV_CONFIGURATION_SOURCE.to_string(), yaml.clone())],
                ENV_CONFIGURATION_SOURCE.to_string(),
            ),
            None => (Vec::new(), ENV_SOURCE.to_string()),
        },
    };
    let (merged, origins) = merge_docs(&docs, &primary, env)?;
    let mut ctx = Ctx::new(&origins);
    build_ctl_settings(&merged, &mut ctx, PathBuf::from(primary))
}

/// Largest configuration file read. Patroni's configurations are a few KiB; without a bound
/// `/dev/zero` given as the file grew the agent to gigabytes.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// Reads one configuration file: a regular file of at most [`MAX_CONFIG_FILE_BYTES`] holding
/// UTF-8. A FIFO, device or socket is refused before it is opened (reading a FIFO with no
/// writer blocks forever).
fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io_error = |message: String| ConfigError::Io {
        file: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| io_error(e.to_string()))?;
    if !meta.is_file() {
        return Err(io_error(
            "not a regular file (a FIFO, device or socket?); expected a YAML file".to_string(),
        ));
    }
    // O_NONBLOCK: should the path be swapped for a FIFO after the check, open does not block.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_error(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CONFIG_FILE_BYTES {
        return Err(io_error(format!(
            "larger than {MAX_CONFIG_FILE_BYTES} bytes; expected a YAML configuration file"
        )));
    }
    String::from_utf8(bytes).map_err(|e| io_error(format!("not UTF-8 text: {e}")))
}

/// Loads configuration text without touching the filesystem or the process environment:
/// `source` names the text in errors and `env` holds the `PATRONI_*` overrides to apply (and
/// `HOME`, used for the default `pgpass`). Filesystem checks are not run.
pub fn load_config_from_str(
    text: &str,
    source: &Path,
    env: &[(String, String)],
) -> Result<LoadedConfig, ConfigError> {
    let display = source.display().to_string();
    let docs = [(display.clone(), text.to_string())];
    load_docs(&docs, &display, source.to_path_buf(), env).map(|(l, _)| l)
}

/// Loads a configuration from the environment alone: the YAML in `PATRONI_CONFIGURATION` if set,
/// else only the `PATRONI_*` variables. Filesystem checks are not run.
pub fn load_config_from_env_only(env: &[(String, String)]) -> Result<LoadedConfig, ConfigError> {
    match env
        .iter()
        .find(|(k, v)| k == "PATRONI_CONFIGURATION" && !v.is_empty())
    {
        Some((_, yaml)) => {
            let docs = [(ENV_CONFIGURATION_SOURCE.to_string(), yaml.clone())];
            load_docs(
                &docs,
                ENV_CONFIGURATION_SOURCE,
                PathBuf::from(ENV_CONFIGURATION_SOURCE),
                env,
            )
            .map(|(l, _)| l)
        }
        None => load_docs(&[], ENV_SOURCE, PathBuf::from(ENV_SOURCE), env).map(|(l, _)| l),
    }
}

/// Parses and merges `docs` (name, text) in order, applies `env`, builds and validates.
fn load_docs(
    docs: &[(String, String)],
    primary: &str,
    source: PathBuf,
    env: &[(String, String)],
) -> Result<(LoadedConfig, Origins), ConfigError> {
    let (merged, origins) = merge_docs(docs, primary, env)?;
    let mut ctx = Ctx::new(&origins);
    let config = build(&merged, &mut ctx, env, source)?;
    let mut warnings = origins.duplicates.clone();
    warnings.append(&mut ctx.warnings);
    Ok((LoadedConfig { config, warnings }, origins))
}

/// Parses and deep-merges `docs` (name, text) in order, then the `PATRONI_*` overlay of `env`;
/// returns the merged tree and where each value came from.
fn merge_docs(
    docs: &[(String, String)],
    primary: &str,
    env: &[(String, String)],
) -> Result<(Value, Origins), ConfigError> {
    let mut origins = Origins {
        primary: primary.to_string(),
        ..Origins::default()
    };
    let mut merged = Value::Object(Map::new());
    for (name, text) in docs {
        let doc = parse_document(text, name)?;
        origins.files.push((name.clone(), doc.lines));
        origins.duplicates.extend(doc.duplicates);
        match doc.value {
            Value::Null => {}
            v @ Value::Object(_) => deep_merge(&mut merged, v),
            other => {
                // Report against this file (not the merged result).
                let single = Origins {
                    primary: name.clone(),
                    files: vec![origins.files.last().cloned().unwrap_or_default()],
                    ..Origins::default()
                };
                return Err(not_a_mapping(&Ctx::new(&single), &other));
            }
        }
    }
    let (overlay, env_paths) = env_overlay(env);
    deep_merge(&mut merged, overlay);
    origins.env = env_paths;
    Ok((merged, origins))
}
