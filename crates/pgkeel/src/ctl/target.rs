//! Where pgkeelctl finds the DCS: the configuration file's `etcd3` section, or `--dcs-url`.

use super::CtlError;
use crate::config::EtcdConfig;

/// Patroni's default namespace.
pub const DEFAULT_NAMESPACE: &str = "/service";

/// An etcd v3 cluster to connect to, and the namespace the clusters live under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcsTarget {
    /// Endpoints as `host:port`.
    pub hosts: Vec<String>,
    /// `http` or `https`.
    pub protocol: String,
    /// First level of the key path (`/service`).
    pub namespace: String,
    /// etcd user.
    pub username: Option<String>,
    /// etcd password.
    pub password: Option<String>,
    /// `-k/--insecure`: skip TLS verification.
    pub insecure: bool,
}

impl DcsTarget {
    /// Endpoint URLs (`http://127.0.0.1:2379`) for the etcd client.
    pub fn endpoints(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("{}://{}", self.protocol, h))
            .collect()
    }

    /// The target described by a configuration's etcd section and namespace.
    pub fn from_settings(etcd: &EtcdConfig, namespace: &str, insecure: bool) -> DcsTarget {
        DcsTarget {
            hosts: etcd.hosts.clone(),
            protocol: etcd.protocol.clone(),
            namespace: namespace.to_string(),
            username: etcd.username.clone(),
            password: etcd.password.clone(),
            insecure,
        }
    }
}

/// Parses `--dcs-url` like patronictl's `parse_dcs`: `[scheme://]host[:port][,host[:port]...][/namespace]`.
/// `etcd3`, `etcd` (read as v3) and `http`/`https` schemes are accepted; the port defaults to
/// 2379; the namespace is `None` when the URL has no path.
pub fn parse_dcs_url(url: &str) -> Result<(DcsTarget, Option<String>), CtlError> {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), url.trim_start_matches("//")),
    };
    let protocol = match scheme.as_str() {
        "" | "etcd" | "etcd3" | "http" => "http",
        // Refused rather than silently connecting without TLS.
        "https" => {
            return Err(CtlError::Usage(format!(
                "--dcs-url {url}: TLS to etcd is not supported by pgkeel yet; use an http:// or etcd3:// URL"
            )));
        }
        "consul" | "zookeeper" | "exhibitor" | "kubernetes" | "raft" => {
            return Err(CtlError::Usage(format!(
                "Unsupported dcs scheme: {scheme} (pgkeel supports etcd v3 only)"
            )));
        }
        other => return Err(CtlError::Usage(format!("Unknown dcs scheme: {other}"))),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (creds, authority) = match authority.rsplit_once('@') {
        Some((c, a)) => (Some(c), a),
        None => (None, authority),
    };
    let mut hosts = Vec::new();
    for h in authority
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        let (host, port) = match pgkeel_ha::cluster::split_host_port(h) {
            Some((host, _)) if !h.contains(':') || h.ends_with(']') => (host, 2379),
            Some(hp) => hp,
            None => return Err(CtlError::Usage(format!("invalid host in dcs url: {h:?}"))),
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        hosts.push(format!("{host}:{port}"));
    }
    if hosts.is_empty() {
        hosts.push("localhost:2379".into());
    }
    let (username, password) = match creds.map(|c| c.split_once(':').unwrap_or((c, ""))) {
        Some((u, p)) => (
            Some(u.to_string()),
            Some(p.to_string()).filter(|p| !p.is_empty()),
        ),
        None => (None, None),
    };
    let namespace = path
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "/")
        .map(str::to_string);
    Ok((
        DcsTarget {
            hosts,
            protocol: protocol.into(),
            namespace: namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            username,
            password,
            insecure: false,
        },
        namespace,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_urls_parse_like_patronictl() {
        let (t, ns) = parse_dcs_url("etcd3://10.0.0.1:2379,10.0.0.2/pg").unwrap();
        assert_eq!(t.hosts, ["10.0.0.1:2379", "10.0.0.2:2379"]);
        assert_eq!(ns.as_deref(), Some("/pg"));
        assert_eq!(t.endpoints()[0], "http://10.0.0.1:2379");
        let (t, ns) = parse_dcs_url("etcd://localhost").unwrap();
        assert_eq!((t.hosts[0].as_str(), ns), ("localhost:2379", None));
        assert_eq!(t.namespace, "/service");
        assert_eq!(parse_dcs_url("http://h:1/").unwrap().0.hosts, ["h:1"]);
        assert!(parse_dcs_url("consul://h").is_err());
        let e = parse_dcs_url("https://h:2379").unwrap_err().to_string();
        assert!(e.contains("TLS to etcd is not supported"), "{e}");
        assert!(parse_dcs_url("etcd3://h:notaport").is_err());
    }
}
