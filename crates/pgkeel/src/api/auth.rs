//! Basic auth for the write methods (`restapi.authentication`), as Patroni's `check_auth_header`.
//!
//! GET endpoints never call this: Patroni never password-protects them.

use super::access::AccessList;
use crate::config::BasicAuth;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::{Arc, RwLock};

/// What the write endpoints check: `restapi.authentication` and the allowlist. A cheap handle
/// shared by the server and the agent, which replaces both at once on a reload; each request
/// is checked against the ones current when it arrives.
#[derive(Clone, Default)]
pub struct WriteGuard(Arc<RwLock<Arc<Guard>>>);

/// One generation of the guard.
#[derive(Default)]
struct Guard {
    auth: Option<BasicAuth>,
    access: AccessList,
}

impl WriteGuard {
    /// A guard with these credentials (`None`: none required) and this allowlist.
    pub fn new(auth: Option<BasicAuth>, access: AccessList) -> WriteGuard {
        WriteGuard(Arc::new(RwLock::new(Arc::new(Guard { auth, access }))))
    }

    /// Checks the next requests against these instead.
    pub fn replace(&self, auth: Option<BasicAuth>, access: AccessList) {
        let new = Arc::new(Guard { auth, access });
        match self.0.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Patroni's order: the client's address first, then its credentials.
    #[allow(clippy::result_large_err)]
    pub(super) fn check(
        &self,
        client: Option<std::net::SocketAddr>,
        cluster: Option<&pgkeel_ha::cluster::Cluster>,
        headers: &HeaderMap,
    ) -> Result<(), Response> {
        let guard = match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        guard.access.check(client, cluster)?;
        check(guard.auth.as_ref(), headers)
    }
}

/// `Ok(())` when no authentication is configured or the `Authorization` header carries the
/// configured credentials; otherwise the 401 response Patroni sends.
#[allow(clippy::result_large_err)]
pub(super) fn check(auth: Option<&BasicAuth>, headers: &HeaderMap) -> Result<(), Response> {
    let Some(auth) = auth else {
        return Ok(());
    };
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", auth.username, auth.password));
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("no auth header received"));
    };
    let ok = given
        .as_bytes()
        .strip_prefix(b"Basic ")
        .is_some_and(|b64| constant_time_eq(b64, expected.as_bytes()));
    if ok {
        Ok(())
    } else {
        Err(unauthorized("not authenticated"))
    }
}

fn unauthorized(message: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"Patroni\""),
            (header::CONTENT_TYPE, "text/html"),
        ],
        message,
    )
        .into_response()
}

/// Compares without an early exit on the first differing byte (like `hmac.compare_digest`,
/// only the length may leak).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {b64}")
                .parse()
                .expect("a valid header value"),
        );
        h
    }

    fn auth(password: &str) -> Option<BasicAuth> {
        Some(BasicAuth {
            username: "admin".into(),
            password: password.into(),
        })
    }

    /// A reload replaces the credentials and the allowlist of the running server at once.
    #[test]
    fn a_replaced_guard_checks_the_next_request_against_the_new_credentials() {
        let code = |g: &WriteGuard, h: &HeaderMap, from: &str| {
            let addr = from.parse().ok();
            g.check(addr, None, h).err().map(|r| r.status().as_u16())
        };
        let guard = WriteGuard::new(auth("old"), AccessList::default());
        let server = guard.clone();
        let here = "127.0.0.1:40000";
        assert_eq!(code(&server, &basic("admin", "old"), here), None);
        guard.replace(
            auth("new"),
            AccessList::from_config(&["10.0.0.0/8".into()], false),
        );
        assert_eq!(
            code(&server, &basic("admin", "old"), "10.1.2.3:1"),
            Some(401)
        );
        assert_eq!(code(&server, &basic("admin", "new"), "10.1.2.3:1"), None);
        assert_eq!(code(&server, &basic("admin", "new"), here), Some(403));
        guard.replace(None, AccessList::default());
        assert_eq!(code(&server, &HeaderMap::new(), here), None);
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
