//! The `etcd3:` section (or, with a warning, Patroni's legacy `etcd:` section read as etcd v3):
//! endpoints, protocol and credentials.

use serde_json::{Map, Value};

use crate::config::EtcdConfig;
use crate::config::defaults::{DEFAULT_ETCD_PORT, DEFAULT_ETCD_PROTOCOL};
use crate::config::error::ConfigError;
use crate::config::keys::{ETCD_KNOWN, ETCD_UNSUPPORTED, check_keys};
use crate::config::origin::{Ctx, index, join};
use crate::config::read::{
    opt_nonempty_str, opt_str, present, scalar_string, section, split_commas,
};
use crate::config::{tls, validate};

type R<T> = Result<T, ConfigError>;

/// Builds the etcd section, which the agent requires.
pub(crate) fn build_etcd(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<EtcdConfig> {
    build_etcd_opt(ctx, top)?.ok_or_else(|| {
        ctx.missing(
            "etcd3",
            "an etcd3 section with hosts, host, url or proxy (pgkeel only supports etcd v3)",
        )
    })
}

/// The etcd section (`etcd3`, else the legacy `etcd` read as v3), or `None` when there is none.
pub(crate) fn build_etcd_opt(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<Option<EtcdConfig>> {
    let v3 = section(ctx, top, "", "etcd3")?;
    let v2 = section(ctx, top, "", "etcd")?;
    let (m, path) = match (v3, v2) {
        (Some(m), Some(_)) => {
            ctx.warn(
                "etcd",
                "key `etcd` (the legacy etcd v2 section) is ignored because `etcd3` is also set",
            );
            (m, "etcd3")
        }
        (Some(m), None) => (m, "etcd3"),
        (None, Some(m)) => {
            ctx.warn(
                "etcd",
                "key `etcd` is Patroni's etcd v2 section; pgkeel only speaks etcd v3 (gRPC) and reads it as `etcd3` endpoints. Rename it to `etcd3` (the etcd servers must serve the v3 API)",
            );
            (m, "etcd")
        }
        (None, None) => return Ok(None),
    };
    tls::refuse_etcd(ctx, m, path)?;
    check_keys(ctx, m, path, ETCD_KNOWN, ETCD_UNSUPPORTED);
    let explicit_protocol = opt_nonempty_str(ctx, m, path, "protocol")?;
    let mut scheme_seen: Option<String> = None;
    let mut hosts = Vec::new();
    // Patroni's precedence (`AbstractEtcd.get_etcd_client`): proxy, then url, then hosts, then
    // host. pgkeel does no member discovery, so a proxy is simply the one endpoint.
    let url_key = if present(m, "proxy") { "proxy" } else { "url" };
    if let Some(u) = opt_nonempty_str(ctx, m, path, url_key)? {
        let up = join(path, url_key);
        let Some((scheme, rest)) = u.split_once("://") else {
            return Err(ctx.invalid_text(&up, "not a URL", &u, "http://host:port"));
        };
        scheme_seen = Some(scheme.to_ascii_lowercase());
        let hostport = rest.split('/').next().unwrap_or(rest);
        hosts.push(etcd_endpoint(ctx, &up, hostport, &mut None)?);
    } else if let Some(v) = m.get("hosts").filter(|v| !v.is_null()) {
        let hp = join(path, "hosts");
        let items: Vec<(String, String)> = match v {
            Value::String(s) => split_commas(s)
                .into_iter()
                .map(|h| (hp.clone(), h))
                .collect(),
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, item) in a.iter().enumerate() {
                    let ip = index(&hp, i);
                    match scalar_string(item) {
                        Some(s) => {
                            out.extend(split_commas(&s).into_iter().map(|h| (ip.clone(), h)))
                        }
                        None => {
                            return Err(ctx.invalid(
                                &ip,
                                "wrong type",
                                Some(item),
                                "a host:port string",
                            ));
                        }
                    }
                }
                out
            }
            other => {
                return Err(ctx.invalid(
                    &hp,
                    "wrong type",
                    Some(other),
                    "a list of host:port or a comma-separated string",
                ));
            }
        };
        for (ip, h) in items {
            hosts.push(etcd_endpoint(ctx, &ip, &h, &mut scheme_seen)?);
        }
        if hosts.is_empty() {
            return Err(ctx.invalid(&hp, "empty host list", Some(v), "at least one host:port"));
        }
    } else if let Some(h) = opt_nonempty_str(ctx, m, path, "host")? {
        let hp = join(path, "host");
        for h in split_commas(&h) {
            hosts.push(etcd_endpoint(ctx, &hp, &h, &mut scheme_seen)?);
        }
    } else {
        return Err(ctx.missing(
            &join(path, "hosts"),
            "etcd endpoints as hosts (list or comma string), host, url or proxy",
        ));
    }
    let protocol = explicit_protocol
        .or(scheme_seen)
        .unwrap_or_else(|| DEFAULT_ETCD_PROTOCOL.to_string())
        .to_ascii_lowercase();
    if protocol != "http" {
        return Err(ctx.invalid_text(
            &join(path, "protocol"),
            "unsupported protocol",
            &protocol,
            "http (TLS to etcd is not supported yet)",
        ));
    }
    Ok(Some(EtcdConfig {
        hosts,
        protocol,
        username: opt_str(ctx, m, path, "username")?,
        password: opt_str(ctx, m, path, "password")?,
    }))
}

/// One etcd endpoint: `[scheme://]host[:port]`, port defaulting to [`DEFAULT_ETCD_PORT`] as in
/// Patroni.
fn etcd_endpoint(ctx: &Ctx<'_>, path: &str, raw: &str, scheme: &mut Option<String>) -> R<String> {
    let mut s = raw.trim();
    if let Some((sch, rest)) = s.split_once("://") {
        *scheme = Some(sch.to_ascii_lowercase());
        s = rest.trim_end_matches('/');
    }
    if s.is_empty() {
        return Err(ctx.invalid_text(path, "empty etcd host", raw, "host:port"));
    }
    match validate::split_host_port(s) {
        Some((host, port)) => {
            validate::parse_port(port).ok_or_else(|| {
                ctx.invalid_text(
                    path,
                    "invalid port",
                    raw,
                    "host:port with a port between 1 and 65535",
                )
            })?;
            if host.is_empty() {
                return Err(ctx.invalid_text(path, "empty etcd host", raw, "host:port"));
            }
            Ok(s.to_string())
        }
        None => Ok(format!("{s}:{DEFAULT_ETCD_PORT}")),
    }
}
