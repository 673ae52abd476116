//! Requests to a member's REST API, as patronictl's `request_patroni` sends them: the member's
//! `api_url` with its path replaced by the endpoint, the body as `json.dumps` prints it, and
//! (like patronictl's `PatroniRequest`) basic auth from `ctl.authentication` or
//! `restapi.authentication` on every request.

use crate::config::BasicAuth;
use std::time::Duration;

/// Why a request got no HTTP answer (patronictl treats all of these alike: it falls back to
/// the DCS where it can).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The member publishes no usable `api_url`.
    #[error("member {0} has no usable api_url")]
    NoApiUrl(String),
    /// Connecting, sending or reading failed.
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
}

/// An HTTP answer: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body, decoded as UTF-8 (lossily).
    pub body: String,
}

/// Patroni's `Member.get_endpoint_url`: `scheme://netloc/endpoint` from the member's `api_url`.
pub fn endpoint_url(api_url: &str, endpoint: &str) -> Option<String> {
    let (scheme, rest) = api_url.split_once("://")?;
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    if scheme.is_empty() || netloc.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{netloc}/{endpoint}"))
}

/// How long one request may take. A switchover POST waits for the switchover, so this is long;
/// a member that accepts no connection fails at once.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `method` to `endpoint` of the member `name` reachable at `api_url`, with an optional
/// JSON body (already serialised), with `Authorization: Basic ...` when `auth` is set.
pub async fn request_patroni(
    auth: Option<&BasicAuth>,
    name: &str,
    api_url: Option<&str>,
    method: reqwest::Method,
    endpoint: &str,
    body: Option<String>,
) -> Result<Response, RequestError> {
    let url = api_url
        .and_then(|u| endpoint_url(u, endpoint))
        .ok_or_else(|| RequestError::NoApiUrl(name.to_string()))?;
    let http = |source| RequestError::Http {
        url: url.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("pgkeelctl/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(http)?;
    let mut req = client.request(method, &url);
    if let Some(a) = auth {
        // reqwest marks the header sensitive: it is never shown in Debug output or logs.
        req = req.basic_auth(&a.username, Some(&a.password));
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.map_err(http)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(http)?;
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_replaces_the_path() {
        assert_eq!(
            endpoint_url("http://127.0.0.1:8008/patroni", "switchover").as_deref(),
            Some("http://127.0.0.1:8008/switchover")
        );
        assert_eq!(
            endpoint_url("https://h:1", "failover").as_deref(),
            Some("https://h:1/failover")
        );
        assert_eq!(endpoint_url("", "failover"), None);
        assert_eq!(endpoint_url("127.0.0.1:8008", "failover"), None);
    }
}
