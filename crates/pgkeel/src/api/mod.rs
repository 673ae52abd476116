//! The Patroni-compatible REST API.
//!
//! Routing follows Patroni's `RestApiHandler`: `<METHOD> /<first segment>` goes to a dedicated
//! handler when one exists; any other GET/HEAD/OPTIONS is a health check matched by substring
//! (`health.rs`) or, when it names no check, 404; any other write method answers 501. Handlers
//! are thin: health checks read only the agent's published [`NodeStatus`], `/patroni` adds the
//! WAL positions read at request time; `/config`, `/cluster` and `/history` read the DCS
//! (the last two fall back to the agent's view when it does not answer). This module decides nothing about
//! the cluster: a new policy belongs in `pgkeel_ha`.
//!
//! # Layout
//! * `model`: the JSON documents, shared with `ctl`.
//! * `health`: health checks, `/liveness`, `/readiness`.
//! * `status`: `/patroni`.
//! * `cluster`: `/cluster`, `/history`.
//! * `config`: `/config` GET/PATCH/PUT.
//! * `restart`: `POST /restart` and `DELETE /restart`, requests into the HA loop.
//! * `reinitialize`: `POST /reinitialize`, a request into the HA loop.
//! * `schedule`: the times of scheduled switchovers and restarts.
//! * `switchover`: `POST /switchover`, `POST /failover`, `DELETE /switchover`: the `failover`
//!   key, which every HA loop honours.
//! * `POST /reload` is answered here: it only wakes the agent's reload (`agent/reload.rs`).
//! * `access`: `restapi.allowlist` for write methods (403 before the credentials).
//! * `auth`: basic auth for write methods; [`WriteGuard`] holds it with the allowlist, both
//!   replaced by a reload while the server runs.
//! * `server`: connection cap, timeouts and eviction, so no client starves the agent.

pub mod access;
mod auth;
mod cluster;
mod config;
pub mod health;
pub mod model;
mod reinitialize;
mod restart;
mod schedule;
pub mod server;
pub mod status;
mod switchover;

pub use auth::WriteGuard;
pub use config::patch_config;

use crate::agent::published::NodeStatus;
use crate::dcs::Dcs;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use pgkeel_ha::keys::KeyLayout;
use std::future::Future;
use std::sync::Arc;

/// What the API server needs: the agent's published status, the DCS (for `/config`), and a way
/// to wake the agent after a configuration change.
#[derive(Clone)]
pub struct ApiState {
    /// The agent's last published status (updated after every HA cycle).
    pub status: tokio::sync::watch::Receiver<Arc<NodeStatus>>,
    /// The DCS, for `/config`, `/cluster` and `/history`.
    pub dcs: Arc<dyn Dcs>,
    /// This cluster's key layout.
    pub layout: KeyLayout,
    /// `restapi.authentication` (required on write methods when set) and `restapi.allowlist`
    /// (who may call them at all), as last reloaded.
    pub write_guard: WriteGuard,
    /// Notified after a successful `/config` write so the HA loop runs a cycle at once.
    pub wake_agent: Arc<tokio::sync::Notify>,
    /// Live WAL positions for `/patroni`; `None` serves the published ones (API tests).
    pub live_wal: Option<Arc<crate::postgres::LiveWal>>,
    /// Requests into the HA loop (`POST /restart`); `None` when no loop runs (API tests).
    pub requests: Option<crate::agent::requests::RequestSender>,
    /// How long `POST /restart` waits for the restart to end.
    pub restart_wait: std::time::Duration,
    /// Notified by `POST /reload`: the agent re-reads its configuration file (as on SIGHUP).
    pub reload_agent: Arc<tokio::sync::Notify>,
}

/// The router: one fallback that dispatches like Patroni (see the module docs). Request
/// bodies are limited to 64 KiB: `/config` is the only endpoint that reads one, and a larger
/// body is answered 413 without being buffered.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(axum::extract::DefaultBodyLimit::max(config::CONFIG_LIMIT))
        .with_state(Arc::new(state))
}

/// Serves the API on `listener` until `shutdown` completes, within the connection limits for
/// this process's descriptor limit (see [`server`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_with(
        listener,
        router(state),
        server::Limits::for_this_process(),
        shutdown,
    )
    .await
}

pub use crate::dcs::read_cluster;

async fn dispatch(
    State(state): State<Arc<ApiState>>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    // Patroni's parse_qs: a malformed query string reads as no parameters.
    let query: Vec<(String, String)> = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let segment = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match (&method, segment) {
        (&Method::GET, "patroni") => status::get(&state).await,
        (&Method::GET, "cluster") => cluster::get_cluster(&state).await,
        (&Method::GET, "history") => cluster::get_history(&state).await,
        (&Method::GET, "config") => config::get(&state).await,
        (&Method::GET, "liveness") => health::liveness(&state),
        (&Method::GET, "readiness") => health::readiness(&state, &query),
        (&Method::GET | &Method::HEAD | &Method::OPTIONS, _) => {
            match health::HealthCheck::from_path(path) {
                Some(check) => health::check(&state, check, &query, method != Method::GET),
                // Not a health check and no handler: `/metrics`, `/failsafe` (not served yet) or
                // a typo. Patroni answers 503 with the status document, which reads as "this
                // endpoint exists and the node is unhealthy"; 404 says what is true.
                None => text_response(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => match WriteEndpoint::route(&method, segment) {
            // Every write goes through this one check: a new write endpoint cannot forget it.
            Some(endpoint) => {
                let cluster = state.status.borrow().cluster.clone();
                match state
                    .write_guard
                    .check(client.map(|c| c.0.0), cluster.as_ref(), &headers)
                {
                    Ok(()) => endpoint.serve(&state, &body).await,
                    Err(r) => r,
                }
            }
            None => text_response(
                StatusCode::NOT_IMPLEMENTED,
                format!("Unsupported method ({:?})", bounded(method.as_str())),
            ),
        },
    }
}

/// The endpoints that change something. Each needs `restapi.authentication` when it is set;
/// `dispatch` checks it once for all of them before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEndpoint {
    /// `PATCH /config`: merge into the dynamic configuration.
    PatchConfig,
    /// `PUT /config`: replace the dynamic configuration.
    PutConfig,
    /// `POST /restart`: restart PostgreSQL through the HA loop, now or at a scheduled time.
    Restart,
    /// `DELETE /restart`: cancel the scheduled restart.
    CancelRestart,
    /// `POST /reinitialize`: wipe and re-clone this replica.
    Reinitialize,
    /// `POST /reload`: re-read the local configuration file, as SIGHUP does.
    Reload,
    /// `POST /switchover`: a planned switchover, now or scheduled.
    Switchover,
    /// `POST /failover`: a manual failover to a named candidate.
    Failover,
    /// `DELETE /switchover`: cancel a scheduled switchover.
    CancelSwitchover,
}

impl WriteEndpoint {
    /// Every write endpoint with its method and path (for tests and docs).
    pub const ALL: [(WriteEndpoint, &'static str, &'static str); 9] = [
        (WriteEndpoint::PatchConfig, "PATCH", "/config"),
        (WriteEndpoint::PutConfig, "PUT", "/config"),
        (WriteEndpoint::Restart, "POST", "/restart"),
        (WriteEndpoint::CancelRestart, "DELETE", "/restart"),
        (WriteEndpoint::Reinitialize, "POST", "/reinitialize"),
        (WriteEndpoint::Reload, "POST", "/reload"),
        (WriteEndpoint::Switchover, "POST", "/switchover"),
        (WriteEndpoint::Failover, "POST", "/failover"),
        (WriteEndpoint::CancelSwitchover, "DELETE", "/switchover"),
    ];

    /// The write endpoint `METHOD /segment` names, if any.
    pub fn route(method: &Method, segment: &str) -> Option<WriteEndpoint> {
        Self::ALL
            .iter()
            .find(|(_, m, path)| method.as_str() == *m && path.trim_start_matches('/') == segment)
            .map(|(endpoint, _, _)| *endpoint)
    }

    async fn serve(self, state: &ApiState, body: &[u8]) -> Response {
        match self {
            WriteEndpoint::PatchConfig => config::patch(state, body).await,
            WriteEndpoint::PutConfig => config::put(state, body).await,
            WriteEndpoint::Restart => restart::post(state, body).await,
            WriteEndpoint::CancelRestart => restart::delete(state).await,
            WriteEndpoint::Reinitialize => reinitialize::post(state, body).await,
            WriteEndpoint::Reload => {
                // Patroni's `do_POST_reload`: the reload happens in the loop, answered at once.
                state.reload_agent.notify_one();
                text_response(StatusCode::ACCEPTED, "reload scheduled")
            }
            WriteEndpoint::Switchover => {
                switchover::post(state, body, switchover::Kind::Switchover).await
            }
            WriteEndpoint::Failover => {
                switchover::post(state, body, switchover::Kind::Failover).await
            }
            WriteEndpoint::CancelSwitchover => switchover::delete(state).await,
        }
    }
}

/// The HTTP answer to the HA loop's answer, as Patroni's request endpoints give it: 200 with
/// the message when the work is done, 503 with the reason otherwise (refused, busy, failed, or
/// no answer in time).
pub(crate) fn loop_answer(
    answer: Result<pgkeel_ha::ha::Answer, crate::agent::requests::RequestError>,
) -> Response {
    use pgkeel_ha::ha::Answer;
    match answer {
        Ok(Answer::Done { ok: true, message }) => text_response(StatusCode::OK, message),
        Ok(
            Answer::Done { message, .. }
            | Answer::Refused(message)
            | Answer::Busy(message)
            | Answer::Accepted(message),
        ) => text_response(StatusCode::SERVICE_UNAVAILABLE, message),
        Err(e) => text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// An optional JSON object body (Patroni's `_read_json_content(body_is_optional=True)`): empty
/// reads as `{}`; anything but an object is 400 with the reason.
#[allow(clippy::result_large_err)]
pub(crate) fn optional_json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(text_response(
            StatusCode::BAD_REQUEST,
            "body is not a JSON object",
        )),
        Err(e) => Err(text_response(
            StatusCode::BAD_REQUEST,
            format!("body is not valid JSON: {e}"),
        )),
    }
}

/// At most [`ECHO_LIMIT`] characters of client input, for messages that quote it: an
/// answer never repeats unbounded input back.
fn bounded(input: &str) -> String {
    match input.char_indices().nth(ECHO_LIMIT) {
        Some((end, _)) => format!("{}...", &input[..end]),
        None => input.to_string(),
    }
}

/// How much of a client's input an error message may quote.
const ECHO_LIMIT: usize = 32;

/// A JSON response. Serialising our own model types cannot fail; if it ever did, the client
/// gets a 500 rather than a panic.
pub(crate) fn json_response<T: serde::Serialize>(code: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => text_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A plain-text response (Patroni sends these as `text/html`).
pub(crate) fn text_response(code: StatusCode, body: impl Into<String>) -> Response {
    (code, [(header::CONTENT_TYPE, "text/html")], body.into()).into_response()
}

/// The status line only, with no body (HAProxy's HEAD/OPTIONS checks, `/liveness`).
pub(crate) fn status_only(code: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}
