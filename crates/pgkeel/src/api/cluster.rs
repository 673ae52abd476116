//! `GET /cluster` and `GET /history`: read from the DCS when asked, as Patroni's are, so they
//! never lag a whole `loop_wait` behind the members' keys; the agent's last view when the DCS
//! does not answer.

use super::model::{cluster_json, history_json};
use super::{ApiState, json_response, read_cluster, text_response};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::cluster::Cluster;

async fn current_cluster(state: &ApiState) -> Result<Cluster, Response> {
    match read_cluster(state.dcs.as_ref(), &state.layout).await {
        Ok(c) => Ok(c),
        Err(e) => {
            let cached = state.status.borrow().cluster.clone();
            cached.ok_or_else(|| text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
        }
    }
}

/// `GET /cluster`.
pub(super) async fn get_cluster(state: &ApiState) -> Response {
    let scope = state.status.borrow().scope.clone();
    match current_cluster(state).await {
        Ok(c) => json_response(StatusCode::OK, &cluster_json(&c, &scope)),
        Err(r) => r,
    }
}

/// `GET /history`: `[]` when the key is absent.
pub(super) async fn get_history(state: &ApiState) -> Response {
    match current_cluster(state).await {
        Ok(c) => json_response(StatusCode::OK, &history_json(&c)),
        Err(r) => r,
    }
}
