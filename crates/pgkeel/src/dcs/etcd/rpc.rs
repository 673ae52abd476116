//! The wire level of [`super::EtcdDcs`]: one endpoint's gRPC channel and auth token, the metadata
//! every request carries, and the etcd v3 requests pgkeel sends, built from the generated
//! `pgkeel_etcd_proto` types.
//!
//! Exists so the failover, keep-alive and watch policy in the parent module reads as policy, and so
//! what goes on the wire (Patroni's `etcd3` transactions, the `hasleader` and `token` metadata) is
//! in one place.

use std::time::Duration;

use pgkeel_etcd_proto::etcdserverpb::{
    AuthenticateRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest, WatchCreateRequest, WatchRequest,
    auth_client::AuthClient,
    compare::{CompareResult, CompareTarget, TargetUnion},
    kv_client::KvClient,
    lease_client::LeaseClient,
    request_op,
    watch_client::WatchClient,
    watch_request,
};
use tokio::sync::Mutex;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::dcs::DcsError;

/// Metadata key asking the member to refuse the request at once if it has no raft leader, instead
/// of stalling (etcd's `WithRequireLeader`).
const REQUIRE_LEADER_KEY: &str = "hasleader";
/// Metadata key of the auth token (etcd's `token`).
const TOKEN_KEY: &str = "token";
/// What etcd says when the token is invalid or expired; with code `Unknown` from some services.
const INVALID_AUTH_TOKEN_MSG: &str = "etcdserver: invalid auth token";

/// One configured etcd member: its URL, a lazily connecting channel, and its auth token.
pub(super) struct Endpoint {
    /// `http://host:port`, for messages.
    pub(super) url: String,
    /// A channel to this member only; it dials on first use and redials after errors.
    channel: Channel,
    /// The auth token obtained from this member, if credentials are configured and it was fetched.
    /// The lock also serialises fetches, so concurrent calls that need a token authenticate once.
    token: Mutex<Option<AsciiMetadataValue>>,
}

impl Endpoint {
    /// Builds the channel for `url` (`http://host:port`, or `host:port`). Does no I/O.
    pub(super) fn new(url: String, request_timeout: Duration) -> Result<Endpoint, DcsError> {
        if url.starts_with("https://") {
            return Err(DcsError::Other(format!(
                "etcd URL {url}: https is not supported by this build (no TLS); use http://"
            )));
        }
        let full = if url.starts_with("http://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        let endpoint = tonic::transport::Endpoint::from_shared(full)
            .map_err(|e| DcsError::Other(format!("invalid etcd URL {url:?}: {e}")))?
            .connect_timeout(request_timeout.min(Duration::from_secs(2)))
            // etcd's default keepalive enforcement rejects pings more often than every 5 s.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(request_timeout.max(Duration::from_secs(1)))
            .keep_alive_while_idle(false);
        Ok(Endpoint {
            url,
            channel: endpoint.connect_lazy(),
            token: Mutex::new(None),
        })
    }

    /// A handle for one call. With `credentials`, carries a token: the stored one, or one fetched
    /// now. `stale` is a token the server just refused: it is replaced unless another call already
    /// replaced it.
    pub(super) async fn conn(
        &self,
        credentials: Option<&(String, String)>,
        stale: Option<&AsciiMetadataValue>,
    ) -> Result<Conn, Status> {
        let Some((user, password)) = credentials else {
            return Ok(Conn {
                channel: self.channel.clone(),
                token: None,
            });
        };
        let mut slot = self.token.lock().await;
        let reusable = match (slot.as_ref(), stale) {
            (Some(token), Some(stale)) => token != stale,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !reusable {
            *slot = Some(self.authenticate(user, password).await?);
        }
        Ok(Conn {
            channel: self.channel.clone(),
            token: slot.clone(),
        })
    }

    /// Exchanges the credentials for a token (the only request sent without one).
    async fn authenticate(&self, user: &str, password: &str) -> Result<AsciiMetadataValue, Status> {
        let bare = Conn {
            channel: self.channel.clone(),
            token: None,
        };
        let resp = AuthClient::new(self.channel.clone())
            .authenticate(bare.request(AuthenticateRequest {
                name: user.to_owned(),
                password: password.to_owned(),
            }))
            .await?
            .into_inner();
        resp.token.parse().map_err(|e| {
            // A definite (if odd) answer: never retried as if etcd were unavailable.
            Status::invalid_argument(format!("etcd returned an unusable auth token: {e}"))
        })
    }
}

/// A handle on one endpoint for one call: its channel and the token to send.
#[derive(Clone)]
pub(super) struct Conn {
    /// The endpoint's channel (cheap to clone).
    channel: Channel,
    /// The auth token, when etcd auth is on.
    pub(super) token: Option<AsciiMetadataValue>,
}

impl Conn {
    /// Wraps `message` with the metadata every pgkeel request carries: `hasleader` always, and the
    /// token when there is one.
    pub(super) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert(REQUIRE_LEADER_KEY, AsciiMetadataValue::from_static("true"));
        if let Some(token) = &self.token {
            metadata.insert(TOKEN_KEY, token.clone());
        }
        request
    }

    /// The KV service on this endpoint.
    pub(super) fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    /// The Lease service on this endpoint.
    pub(super) fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    /// The Watch service on this endpoint.
    pub(super) fn watch(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone())
    }
}

/// Whether etcd refused the token (expired or invalid), so a fresh one may succeed.
pub(super) fn is_invalid_auth_token(status: &Status) -> bool {
    match status.code() {
        Code::Unauthenticated => true,
        Code::Unknown => status.message() == INVALID_AUTH_TOKEN_MSG,
        _ => false,
    }
}

/// The end of the key range holding every key that starts with `prefix` (etcd's `GetPrefix`).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    for (i, byte) in prefix.iter().enumerate().rev() {
        if *byte < 0xff {
            let mut end = prefix[..=i].to_vec();
            end[i] = *byte + 1;
            return end;
        }
    }
    // No key is greater than 0xff...ff: "\0" means "to the end of the keyspace".
    vec![0]
}

/// A linearizable read of every key under `prefix`.
pub(super) fn range_prefix(prefix: &str) -> RangeRequest {
    RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: prefix_end(prefix.as_bytes()),
        ..RangeRequest::default()
    }
}

/// A put of `key`, attached to `lease` when it is `Some` and not 0.
pub(super) fn put(key: &str, value: &[u8], lease: Option<i64>) -> PutRequest {
    PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        lease: lease.unwrap_or(0),
        ..PutRequest::default()
    }
}

/// A delete of `key`, or of every key under it with `prefix`.
pub(super) fn delete(key: &str, prefix: bool) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: if prefix {
            prefix_end(key.as_bytes())
        } else {
            Vec::new()
        },
        ..DeleteRangeRequest::default()
    }
}

/// What a guard compares.
pub(super) enum Guard<'a> {
    /// The key's create revision equals this (0: the key does not exist).
    CreateRevision(i64),
    /// The key's mod revision equals this.
    ModRevision(i64),
    /// The key's value equals this.
    Value(&'a [u8]),
}

/// A transaction: if `key` passes `guard`, do `then` (nothing otherwise), as Patroni's `etcd3`
/// backend builds its compare-and-set requests.
pub(super) fn txn(key: &str, guard: Guard<'_>, then: request_op::Request) -> TxnRequest {
    let (target, union) = match guard {
        Guard::CreateRevision(r) => (CompareTarget::Create, TargetUnion::CreateRevision(r)),
        Guard::ModRevision(r) => (CompareTarget::Mod, TargetUnion::ModRevision(r)),
        Guard::Value(v) => (CompareTarget::Value, TargetUnion::Value(v.to_vec())),
    };
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: target as i32,
            key: key.as_bytes().to_vec(),
            range_end: Vec::new(),
            target_union: Some(union),
        }],
        success: vec![RequestOp {
            request: Some(then),
        }],
        failure: Vec::new(),
    }
}

/// The request that creates a watch on every key under `prefix`.
pub(super) fn watch_prefix(prefix: &str) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                ..WatchCreateRequest::default()
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/service/demo/"), b"/service/demo0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[tokio::test]
    async fn requests_carry_hasleader_and_the_token() {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let conn = Conn {
            channel,
            token: Some(AsciiMetadataValue::from_static("tok.1")),
        };
        let r = conn.request(());
        assert_eq!(
            r.metadata().get("hasleader").map(|v| v.to_str().ok()),
            Some(Some("true"))
        );
        assert_eq!(
            r.metadata().get("token").map(|v| v.to_str().ok()),
            Some(Some("tok.1"))
        );
        let bare = Conn {
            token: None,
            ..conn
        };
        assert!(bare.request(()).metadata().get("token").is_none());
    }

    #[test]
    fn expired_tokens_are_recognised() {
        assert!(is_invalid_auth_token(&Status::unauthenticated("x")));
        assert!(is_invalid_auth_token(&Status::unknown(
            INVALID_AUTH_TOKEN_MSG
        )));
        assert!(!is_invalid_auth_token(&Status::unknown("other")));
        assert!(!is_invalid_auth_token(&Status::invalid_argument(
            "etcdserver: authentication failed, invalid user ID or password"
        )));
    }

    #[test]
    fn txn_compares_then_puts() {
        let t = txn(
            "/k",
            Guard::CreateRevision(0),
            request_op::Request::RequestPut(put("/k", b"v", Some(7))),
        );
        let c = &t.compare[0];
        assert_eq!(
            (c.result, c.target),
            (CompareResult::Equal as i32, CompareTarget::Create as i32)
        );
        assert_eq!(c.target_union, Some(TargetUnion::CreateRevision(0)));
        assert!(t.failure.is_empty());
        match &t.success[0].request {
            Some(request_op::Request::RequestPut(p)) => {
                assert_eq!((p.key.as_slice(), p.lease), (&b"/k"[..], 7))
            }
            other => panic!("{other:?}"),
        }
    }
}
