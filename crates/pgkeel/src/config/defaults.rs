//! The values a configuration gets for keys it leaves out, and the floors of the timing keys,
//! each defined once. Values the HA core also reads (the timing floors, `failover_priority`)
//! are the core's own constants, so the file and the running agent agree; the dynamic
//! defaults (`ttl` 30, `loop_wait` 10, `retry_timeout` 10) are `GlobalConfig::default()`.

use std::path::PathBuf;

/// The floors are the HA core's, so that the file and the running agent agree (see
/// docs/configuration.md): `ttl` 5 (Patroni: 20), `loop_wait` 1, `retry_timeout` 1 (Patroni: 3).
pub use pgkeel_ha::cluster::{MIN_LOOP_WAIT, MIN_RETRY_TIMEOUT, MIN_TTL};

/// `failover_priority` of a node whose tags do not set it, as published in its member key;
/// the core's, which reads the tag the same way.
pub(crate) use pgkeel_ha::cluster::DEFAULT_FAILOVER_PRIORITY;

/// `namespace`, the first level of the DCS path (Patroni's default).
pub(crate) const DEFAULT_NAMESPACE: &str = "/service";

/// Port of an etcd endpoint given without one (Patroni's default).
pub(crate) const DEFAULT_ETCD_PORT: u16 = 2379;

/// etcd scheme when neither `protocol` nor an endpoint URL names one (the only one pgkeel speaks).
pub(crate) const DEFAULT_ETCD_PROTOCOL: &str = "http";

/// Superuser name when `postgresql.authentication.superuser` (or its `username`) is absent.
pub(crate) const DEFAULT_SUPERUSER: &str = "postgres";

/// `postgresql.pg_ctl_timeout`: seconds `pg_ctl` waits for a start or stop (Patroni's default).
pub(crate) const DEFAULT_PG_CTL_TIMEOUT: u64 = 60;

/// `log.level` when the `log` section or its `level` is absent.
pub(crate) const DEFAULT_LOG_LEVEL: &str = "INFO";

/// Patroni's default `~/pgpass`; `/tmp/pgpass-<name>` when `HOME` is unknown.
pub(crate) fn default_pgpass(env: &[(String, String)], name: &str) -> PathBuf {
    match env.iter().find(|(k, v)| k == "HOME" && !v.is_empty()) {
        Some((_, home)) => PathBuf::from(home).join("pgpass"),
        None => PathBuf::from(format!("/tmp/pgpass-{name}")),
    }
}
