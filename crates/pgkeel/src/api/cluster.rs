//! `GET /cluster` and `GET /history`: the agent's cached DCS view, or a fresh read when the
//! agent has none yet.

use super::model::{cluster_json, history_json};
use super::{ApiState, json_response, read_cluster, text_response};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::cluster::Cluster;

async fn current_cluster(state: &ApiState) -> Result<Cluster, Response> {
    let cached = state.status.borrow().cluster.clone();
    match cached {
        Some(c) => Ok(c),
        None => read_cluster(state.dcs.as_ref(), &state.layout)
            .await
            .map_err(|e| text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
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
