//! `patroni.dynamic.json`: the last dynamic configuration (`/config`) this node saw, kept in
//! its data directory as Patroni keeps it.
//!
//! Patroni writes the file after a cycle in which `/config` changed (once PostgreSQL has a data
//! directory) and reads it at start, so a restarted agent knows the cluster's `ttl`,
//! `loop_wait`, ... before the DCS answers. pgkeel does the same and hands it to the core
//! ([`pgkeel_ha::Ha::remember_dynamic_config`]). The file travels with the data directory
//! (pg_basebackup copies it), which is harmless: `/config` replaces it at the first DCS read.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::PgError;
use super::os::{OsUser, write_atomic};

/// The cache's file name, Patroni's.
pub const FILE_NAME: &str = "patroni.dynamic.json";

/// Where the cache of the data directory `data_dir` lives.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Why the cache could not be used (the agent logs it and goes on without it).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading the file failed (other than "not there").
    #[error("cannot read {path}: {source}")]
    Read {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a JSON object.
    #[error("{path} is not a JSON object: {reason}")]
    Malformed {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The cached configuration; `Ok(None)` when there is no cache (a new node).
pub fn load(data_dir: &Path) -> Result<Option<Map<String, Value>>, CacheError> {
    let path = path(data_dir);
    // /config documents are small: a cache far larger than any of them is not one.
    const MAX_BYTES: u64 = 1 << 20;
    let text = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CacheError::Read { path, source }),
        Ok(m) if !m.is_file() || m.len() > MAX_BYTES => {
            return Err(CacheError::Malformed {
                path,
                reason: format!("not a regular file of at most {MAX_BYTES} bytes"),
            });
        }
        Ok(_) => std::fs::read_to_string(&path).map_err(|source| CacheError::Read {
            path: path.clone(),
            source,
        })?,
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(other) => Err(CacheError::Malformed {
            path,
            reason: format!("found {}", json_kind(&other)),
        }),
        Err(e) => Err(CacheError::Malformed {
            path,
            reason: e.to_string(),
        }),
    }
}

/// Writes `config` atomically, with the data directory's file mode (0600, or 0640 when the
/// directory allows group access) and owner.
pub(crate) fn save(
    data_dir: &Path,
    config: &Map<String, Value>,
    user: Option<&OsUser>,
) -> Result<(), PgError> {
    use std::os::unix::fs::PermissionsExt;
    let group_access = std::fs::metadata(data_dir)
        .map(|m| m.permissions().mode() & 0o050 == 0o050)
        .unwrap_or(false);
    let mode = if group_access { 0o640 } else { 0o600 };
    let text = serde_json::to_vec(config).map_err(|e| PgError::Io {
        what: format!("encoding {}", path(data_dir).display()),
        source: e.into(),
    })?;
    write_atomic(&path(data_dir), &text, mode, user)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn saves_and_loads_the_dynamic_config_with_the_data_directory_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        assert!(load(dir.path()).expect("no cache is fine").is_none());
        let config = json!({"ttl": 8, "loop_wait": 1, "postgresql": {"parameters": {"a": 1}}});
        let map = config.as_object().cloned().expect("an object");
        save(dir.path(), &map, None).expect("save");
        assert_eq!(load(dir.path()).expect("load"), Some(map));
        let mode = std::fs::metadata(path(dir.path()))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_cache_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (text, want) in [("{\"ttl\": ", "EOF"), ("[1, 2]", "found an array")] {
            std::fs::write(path(dir.path()), text).expect("write");
            let e = load(dir.path()).expect_err("malformed").to_string();
            assert!(e.contains(FILE_NAME) && e.contains(want), "{e}");
        }
    }
}
