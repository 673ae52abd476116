//! `restapi.allowlist` and `restapi.allowlist_include_members` (Patroni's `check_access`): when
//! either is set, a write endpoint answers only clients whose address is in the list (an IP, a
//! network, or a host name resolved when the API starts) or, with `allowlist_include_members`,
//! is the REST API host of a member; anyone else gets 403 `Access is denied`, before the
//! credentials are looked at. GET endpoints are never restricted, as in Patroni.

use super::text_response;
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::cluster::Cluster;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// An IP network: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `10.0.0.0/8`, `::1/128`, or a bare address (`/32`, `/128`); host bits are ignored, as
    /// Python's `ip_network(strict=False)` does.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// The network of one address.
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u32) {
            match a.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (candidate, cwidth)) = (bits(self.addr), bits(ip));
        if width != cwidth {
            return false;
        }
        let prefix = u32::from(self.prefix).min(width);
        if prefix == 0 {
            return true;
        }
        let shift = width - prefix;
        (net >> shift) == (candidate >> shift)
    }
}

/// Who may call the write endpoints.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    /// `restapi.allowlist`, resolved.
    pub networks: Vec<IpNet>,
    /// `restapi.allowlist_include_members`.
    pub include_members: bool,
}

impl AccessList {
    /// Resolves `restapi.allowlist` (host names through the system resolver, once; one that
    /// does not resolve is logged and allows nobody, as in Patroni).
    pub fn from_config(allowlist: &[String], include_members: bool) -> AccessList {
        let networks = allowlist
            .iter()
            .flat_map(|entry| match IpNet::parse(entry) {
                Some(net) => vec![net],
                None => resolve(entry),
            })
            .collect();
        AccessList {
            networks,
            include_members,
        }
    }

    /// Nothing is restricted.
    pub fn is_open(&self) -> bool {
        self.networks.is_empty() && !self.include_members
    }

    /// `Ok(())` when `client` may write; otherwise Patroni's 403. `cluster` is the agent's
    /// last view, for `allowlist_include_members`.
    #[allow(clippy::result_large_err)]
    pub(super) fn check(
        &self,
        client: Option<SocketAddr>,
        cluster: Option<&Cluster>,
    ) -> Result<(), Response> {
        if self.is_open() {
            return Ok(());
        }
        let denied = || text_response(StatusCode::FORBIDDEN, "Access is denied");
        let Some(ip) = client.map(|c| c.ip()) else {
            return Err(denied());
        };
        if self.networks.iter().any(|n| n.contains(ip)) {
            return Ok(());
        }
        if self.include_members
            && let Some(c) = cluster
            && c.members
                .iter()
                .filter_map(|m| m.api_url.as_deref())
                .flat_map(api_host_ips)
                .any(|member| IpNet::host(member).contains(ip))
        {
            return Ok(());
        }
        Err(denied())
    }
}

/// The addresses of a member's `api_url` host: literal addresses as they are; names through
/// the system resolver.
fn api_host_ips(api_url: &str) -> Vec<IpAddr> {
    let Some(rest) = api_url.split_once("://").map(|(_, r)| r) else {
        return Vec::new();
    };
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match netloc.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => netloc,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => resolve(host).into_iter().map(|n| n.addr).collect(),
    }
}

fn resolve(host: &str) -> Vec<IpNet> {
    match (host, 0).to_socket_addrs() {
        Ok(addrs) => addrs.map(|a| IpNet::host(a.ip())).collect(),
        Err(e) => {
            tracing::error!("Failed to resolve {host}: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn networks_match_like_pythons_ipaddress() {
        let net = IpNet::parse("10.1.2.3/8").unwrap_or_else(|| panic!("parses"));
        assert!(net.contains(ip("10.200.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped counts");
        let one = IpNet::parse("127.0.0.1").unwrap_or_else(|| panic!("parses"));
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = IpNet::parse("fd00::/16").unwrap_or_else(|| panic!("parses"));
        assert!(v6.contains(ip("fd00:1::5")) && !v6.contains(ip("10.0.0.1")));
        assert!(IpNet::parse("0.0.0.0/0").is_some_and(|n| n.contains(ip("8.8.8.8"))));
        assert_eq!(IpNet::parse("10.0.0.0/33"), None);
        assert_eq!(IpNet::parse("nonsense/8"), None);
    }

    #[test]
    fn only_listed_clients_and_members_may_write() {
        let list = AccessList::from_config(&["192.168.0.0/16".into()], false);
        let at = |s: &str| Some(SocketAddr::new(ip(s), 40000));
        assert!(list.check(at("192.168.7.7"), None).is_ok());
        let denied = list.check(at("127.0.0.1"), None);
        assert!(matches!(&denied, Err(r) if r.status() == StatusCode::FORBIDDEN));
        assert!(list.check(None, None).is_err());
        assert!(AccessList::default().check(at("8.8.8.8"), None).is_ok());
        assert_eq!(
            api_host_ips("http://10.0.0.5:8008/patroni"),
            vec![ip("10.0.0.5")]
        );
        assert_eq!(api_host_ips("http://[::1]:8008/patroni"), vec![ip("::1")]);
    }
}
