//! The keys pgkeel knows in each section of a Patroni configuration, the keys it knows but does
//! not support yet, and [`check_keys`], which warns about everything else.
//!
//! A known key is read by a builder in [`super::sections`]; an unsupported one is ignored with a
//! "not supported by pgkeel yet" warning; any other key is ignored with an "unknown" warning
//! that suggests the nearest known key.

use serde_json::{Map, Value};

use super::origin::{Ctx, join};

/// Top-level keys pgkeel reads.
pub(crate) const TOP_KNOWN: &[&str] = &[
    "scope",
    "namespace",
    "name",
    "restapi",
    "ctl",
    "etcd",
    "etcd3",
    "bootstrap",
    "postgresql",
    "tags",
    "log",
];
/// Top-level Patroni sections pgkeel does not implement (other DCSs, watchdog, Citus...).
pub(crate) const TOP_UNSUPPORTED: &[&str] = &[
    "watchdog",
    "consul",
    "zookeeper",
    "exhibitor",
    "kubernetes",
    "raft",
    "citus",
    "thread_pool_size",
    "thread_stack_size",
];
/// `restapi` keys pgkeel reads.
pub(crate) const RESTAPI_KNOWN: &[&str] = &[
    "listen",
    "connect_address",
    "authentication",
    "allowlist",
    "allowlist_include_members",
];
/// `restapi` keys of Patroni's HTTPS server and request handling that pgkeel does not implement.
pub(crate) const RESTAPI_UNSUPPORTED: &[&str] = &[
    "certfile",
    "keyfile",
    "keyfile_password",
    "cafile",
    "ciphers",
    "verify_client",
    "http_extra_headers",
    "https_extra_headers",
    "request_queue_size",
    "server_tokens",
    "thread_pool_size",
];
/// `ctl` keys pgkeel reads.
pub(crate) const CTL_KNOWN: &[&str] = &["authentication"];
/// `ctl` TLS keys pgkeel does not implement.
pub(crate) const CTL_UNSUPPORTED: &[&str] = &[
    "insecure",
    "cacert",
    "certfile",
    "keyfile",
    "keyfile_password",
];
/// Keys of a basic-auth mapping (`restapi.authentication`, `ctl.authentication`).
pub(crate) const BASIC_AUTH_KNOWN: &[&str] = &["username", "password"];
/// `etcd3` (or legacy `etcd`) keys pgkeel reads; the TLS ones are refused by `tls.rs`.
pub(crate) const ETCD_KNOWN: &[&str] = &[
    "host", "hosts", "url", "proxy", "protocol", "username", "password", "cacert", "cert", "key",
];
/// `etcd3` keys for member discovery that pgkeel does not implement.
pub(crate) const ETCD_UNSUPPORTED: &[&str] = &["use_proxies", "srv", "srv_suffix", "port"];
/// `bootstrap` keys pgkeel reads (plus the sub-section a custom `method` names).
pub(crate) const BOOTSTRAP_KNOWN: &[&str] = &[
    "dcs",
    "method",
    "initdb",
    "pg_hba",
    "users",
    "post_bootstrap",
    "post_init",
];
/// Keys of one legacy `bootstrap.users` entry.
pub(crate) const BOOTSTRAP_USER_KNOWN: &[&str] = &["password", "options"];
/// `postgresql` keys pgkeel reads (plus the sub-sections custom replica methods name).
pub(crate) const PG_KNOWN: &[&str] = &[
    "listen",
    "connect_address",
    "data_dir",
    "bin_dir",
    "pgpass",
    "authentication",
    "parameters",
    "pg_hba",
    "use_pg_rewind",
    "use_unix_socket",
    "callbacks",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
    "pg_ctl_timeout",
    "basebackup",
    "create_replica_methods",
];
/// `postgresql` keys pgkeel does not implement.
pub(crate) const PG_UNSUPPORTED: &[&str] = &[
    "proxy_address",
    "config_dir",
    "bin_name",
    "pg_ident",
    "recovery_conf",
    "custom_conf",
    "use_unix_socket_repl",
    "pre_promote",
    "before_stop",
    "config_base_name",
    "use_slots",
];
/// The roles of `postgresql.authentication`.
pub(crate) const PG_AUTH_KNOWN: &[&str] = &["superuser", "replication", "rewind"];
/// Keys of one role under `postgresql.authentication`.
pub(crate) const PG_USER_KNOWN: &[&str] = &["username", "password"];
/// libpq TLS and GSS keys of a role that pgkeel does not implement (some are refused by `tls.rs`).
pub(crate) const PG_USER_UNSUPPORTED: &[&str] = &[
    "sslmode",
    "sslkey",
    "sslpassword",
    "sslcert",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslnegotiation",
    "gssencmode",
    "channel_binding",
];
/// `postgresql.callbacks` keys pgkeel runs (and `primary_role_name`, pgkeel's own).
pub(crate) const CALLBACKS_KNOWN: &[&str] = &[
    "on_start",
    "on_stop",
    "on_restart",
    "on_reload",
    "on_role_change",
    "primary_role_name",
];
/// `log` keys pgkeel reads.
pub(crate) const LOG_KNOWN: &[&str] = &["level"];
/// `log` keys of Patroni's Python logging that pgkeel does not implement.
pub(crate) const LOG_UNSUPPORTED: &[&str] = &[
    "type",
    "traceback_level",
    "format",
    "dateformat",
    "static_fields",
    "max_queue_size",
    "dir",
    "mode",
    "file_num",
    "file_size",
    "loggers",
    "deduplicate_heartbeat_logs",
];
/// Boolean tags Patroni only publishes when they are true.
pub(crate) const BOOL_TAGS: &[&str] = &[
    "clonefrom",
    "nofailover",
    "noloadbalance",
    "nosync",
    "nostream",
];

/// Warns about keys of `map` that pgkeel does not know (naming the full path) or knows but does
/// not support yet.
pub(crate) fn check_keys(
    ctx: &mut Ctx<'_>,
    map: &Map<String, Value>,
    path: &str,
    known: &[&str],
    unsupported: &[&str],
) {
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let full = join(path, key);
        if unsupported.contains(&key.as_str()) {
            ctx.warn(
                &full,
                format!("key `{full}` is not supported by pgkeel yet; ignored"),
            );
        } else {
            let hint = known
                .iter()
                .find(|k| edit_distance(k, key) <= 2)
                .map(|k| format!(" (did you mean `{}`?)", join(path, k)))
                .unwrap_or_default();
            ctx.warn(&full, format!("key `{full}` is unknown; ignored{hint}"));
        }
    }
}

/// Levenshtein distance, to suggest the known key a misspelt one was meant to be.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("data_dir", "data_dr"), 1);
        assert!(edit_distance("listen", "parameters") > 2);
    }
}
