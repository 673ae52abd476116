//! `PATRONI_*` environment overrides, turned into a YAML-shaped tree that is deep-merged on top of
//! the file configuration, as Patroni's `_build_environment_configuration` does.
//!
//! Only the variables pgkeel understands are read; every other `PATRONI_*` variable is ignored
//! (Patroni has many). Empty values are ignored, like Patroni does. `*_HOSTS` values are parsed as
//! YAML lists (`'["a:2379","b:2379"]'` or `a:2379,b:2379`); everything else is kept as a string,
//! so a numeric password stays a string.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The YAML path a fixed `PATRONI_*` variable sets.
fn fixed_path(var: &str) -> Option<&'static str> {
    Some(match var {
        "PATRONI_NAME" => "name",
        "PATRONI_SCOPE" => "scope",
        "PATRONI_NAMESPACE" => "namespace",
        "PATRONI_LOG_LEVEL" => "log.level",
        "PATRONI_RESTAPI_LISTEN" => "restapi.listen",
        "PATRONI_RESTAPI_CONNECT_ADDRESS" => "restapi.connect_address",
        "PATRONI_RESTAPI_USERNAME" => "restapi.authentication.username",
        "PATRONI_RESTAPI_PASSWORD" => "restapi.authentication.password",
        "PATRONI_CTL_USERNAME" => "ctl.authentication.username",
        "PATRONI_CTL_PASSWORD" => "ctl.authentication.password",
        "PATRONI_POSTGRESQL_LISTEN" => "postgresql.listen",
        "PATRONI_POSTGRESQL_CONNECT_ADDRESS" => "postgresql.connect_address",
        "PATRONI_POSTGRESQL_DATA_DIR" => "postgresql.data_dir",
        "PATRONI_POSTGRESQL_PGPASS" => "postgresql.pgpass",
        "PATRONI_POSTGRESQL_BIN_DIR" => "postgresql.bin_dir",
        _ => return None,
    })
}

/// Keys of the `etcd3`/`etcd` sections settable from `PATRONI_ETCD3_<KEY>` / `PATRONI_ETCD_<KEY>`
/// (those of Patroni's generic `PATRONI_<SECTION>_<SUFFIX>` rule that pgkeel reads or refuses).
const ETCD_KEYS: &[&str] = &[
    "HOST", "HOSTS", "URL", "PROXY", "PROTOCOL", "USERNAME", "PASSWORD", "CACERT", "CERT", "KEY",
];

/// `PATRONI_RESTAPI_<KEY>` and `PATRONI_CTL_<KEY>` TLS settings: read so that they are refused
/// (see `tls.rs`) instead of silently dropped.
const RESTAPI_TLS_KEYS: &[&str] = &[
    "CERTFILE",
    "KEYFILE",
    "KEYFILE_PASSWORD",
    "CAFILE",
    "CIPHERS",
    "VERIFY_CLIENT",
];
const CTL_KEYS: &[&str] = &[
    "INSECURE",
    "CACERT",
    "CERTFILE",
    "KEYFILE",
    "KEYFILE_PASSWORD",
];
/// `PATRONI_{SUPERUSER,REPLICATION,REWIND}_<KEY>`: Patroni's `_AUTH_ALLOWED_PARAMETERS`.
const AUTH_KEYS: &[&str] = &[
    "USERNAME",
    "PASSWORD",
    "SSLMODE",
    "SSLCERT",
    "SSLKEY",
    "SSLPASSWORD",
    "SSLROOTCERT",
    "SSLCRL",
    "SSLCRLDIR",
    "GSSENCMODE",
    "CHANNEL_BINDING",
    "SSLNEGOTIATION",
];

/// The YAML path (as segments) a `PATRONI_*` variable sets, or `None` if pgkeel ignores it.
pub(crate) fn path_for(var: &str) -> Option<String> {
    if let Some(p) = fixed_path(var) {
        return Some(p.to_string());
    }
    for (prefix, section, keys) in [
        ("PATRONI_RESTAPI_", "restapi", RESTAPI_TLS_KEYS),
        ("PATRONI_CTL_", "ctl", CTL_KEYS),
    ] {
        if let Some(suffix) = var.strip_prefix(prefix)
            && keys.contains(&suffix)
        {
            return Some(format!("{section}.{}", suffix.to_ascii_lowercase()));
        }
    }
    for role in ["SUPERUSER", "REPLICATION", "REWIND"] {
        if let Some(suffix) = var
            .strip_prefix("PATRONI_")
            .and_then(|v| v.strip_prefix(role))
            .and_then(|v| v.strip_prefix('_'))
            && AUTH_KEYS.contains(&suffix)
        {
            return Some(format!(
                "postgresql.authentication.{}.{}",
                role.to_ascii_lowercase(),
                suffix.to_ascii_lowercase()
            ));
        }
    }
    for (prefix, section) in [("PATRONI_ETCD3_", "etcd3"), ("PATRONI_ETCD_", "etcd")] {
        if let Some(suffix) = var.strip_prefix(prefix)
            && ETCD_KEYS.contains(&suffix)
        {
            return Some(format!("{section}.{}", suffix.to_ascii_lowercase()));
        }
    }
    None
}

/// Parses a `*_HOSTS` value like Patroni's `_parse_list`: YAML, wrapped in `[...]` unless it
/// already is a list. Falls back to the raw string (split on commas later) if it is not YAML.
fn parse_list(raw: &str) -> Value {
    let trimmed = raw.trim();
    let text = if trimmed.starts_with('-') || trimmed.contains('[') {
        trimmed.to_string()
    } else {
        format!("[{trimmed}]")
    };
    match super::origin::parse_value(&text, "<env>") {
        Ok(v @ Value::Array(_)) => v,
        _ => Value::String(raw.to_string()),
    }
}

/// The environment's overrides: the tree to merge on top of the files, and path -> variable name.
pub(crate) fn env_overlay(env: &[(String, String)]) -> (Value, BTreeMap<String, String>) {
    let mut root = Map::new();
    let mut sources = BTreeMap::new();
    for (var, raw) in env {
        if raw.is_empty() {
            continue;
        }
        let Some(path) = path_for(var) else { continue };
        let value = if var.ends_with("_HOSTS") {
            parse_list(raw)
        } else {
            Value::String(raw.clone())
        };
        set_path(&mut root, &path, value);
        sources.insert(path, var.clone());
    }
    (Value::Object(root), sources)
}

fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(part.to_string(), value);
            return;
        }
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        cur = next;
    }
}

/// Deep-merges `overlay` into `base` like Patroni's `patch_config`: mappings merge recursively,
/// anything else replaces, and a null removes the key.
pub(crate) fn deep_merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(&k);
                } else if let Some(existing) = b.get_mut(&k)
                    && existing.is_object()
                    && v.is_object()
                {
                    deep_merge(existing, v);
                } else {
                    b.insert(k, strip_nulls(v));
                }
            }
        }
        (b, o) => *b = strip_nulls(o),
    }
}

/// Removes null-valued keys from mappings (Patroni drops them when merging into an empty config).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn overlay_builds_tree() {
        let (v, src) = env_overlay(&env(&[
            ("PATRONI_NAME", "n1"),
            ("PATRONI_SUPERUSER_PASSWORD", "12345"),
            ("PATRONI_ETCD3_HOSTS", "a:2379,b:2379"),
            ("PATRONI_ETCD_HOSTS", "[\"c:2379\"]"),
            ("PATRONI_SOMETHING_ELSE", "x"),
            ("PATRONI_SCOPE", ""),
        ]));
        assert_eq!(
            v,
            json!({
                "name": "n1",
                "postgresql": {"authentication": {"superuser": {"password": "12345"}}},
                "etcd3": {"hosts": ["a:2379", "b:2379"]},
                "etcd": {"hosts": ["c:2379"]},
            })
        );
        assert_eq!(src.get("name").map(String::as_str), Some("PATRONI_NAME"));
        assert_eq!(src.len(), 4);
    }

    #[test]
    fn tls_and_auth_variables_have_their_patroni_paths() {
        for (var, path) in [
            ("PATRONI_RESTAPI_CERTFILE", "restapi.certfile"),
            ("PATRONI_RESTAPI_VERIFY_CLIENT", "restapi.verify_client"),
            ("PATRONI_CTL_KEYFILE_PASSWORD", "ctl.keyfile_password"),
            ("PATRONI_ETCD3_PROXY", "etcd3.proxy"),
            (
                "PATRONI_SUPERUSER_PASSWORD",
                "postgresql.authentication.superuser.password",
            ),
            (
                "PATRONI_REPLICATION_SSLMODE",
                "postgresql.authentication.replication.sslmode",
            ),
            (
                "PATRONI_REWIND_CHANNEL_BINDING",
                "postgresql.authentication.rewind.channel_binding",
            ),
        ] {
            assert_eq!(path_for(var).as_deref(), Some(path), "{var}");
        }
        assert_eq!(path_for("PATRONI_RESTAPI_ALLOWLIST"), None);
        assert_eq!(path_for("PATRONI_SUPERUSERX_SSLMODE"), None);
    }

    #[test]
    fn merge_like_patch_config() {
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1], "e": 1});
        deep_merge(
            &mut base,
            json!({"a": {"b": 3, "x": null}, "d": [2], "e": null, "f": {"g": null, "h": 1}}),
        );
        assert_eq!(
            base,
            json!({"a": {"b": 3, "c": 2}, "d": [2], "f": {"h": 1}})
        );
    }
}
