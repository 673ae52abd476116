//! `POST /reinitialize` (Patroni's `do_POST_reinitialize`): throw this replica's data away and
//! clone it again, through the HA loop. Optional body `{"force": bool, "from_leader": bool}`
//! (Patroni's `parse_bool` spellings). 200 `reinitialize started` once the clone began (the copy
//! goes on in the background: poll `/patroni` until `state` is no longer `creating replica`);
//! 503 with Patroni's reason otherwise (`Cluster has no leader, can not reinitialize`, `I am the
//! leader, can not reinitialize`, `<action> already in progress`).

use super::{ApiState, optional_json_object, text_response};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::cluster::bool_value;
use pgkeel_ha::ha::RequestKind;
use std::time::Duration;

/// How long the loop may take to answer (it is woken at once; a cycle in progress ends first).
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// `POST /reinitialize` (auth checked by the caller).
pub(super) async fn post(state: &ApiState, body: &[u8]) -> Response {
    let request = match optional_json_object(body) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let flag = |k: &str| request.get(k).and_then(bool_value).unwrap_or(false);
    let kind = RequestKind::Reinitialize {
        force: flag("force"),
        from_leader: flag("from_leader"),
    };
    let Some(requests) = &state.requests else {
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "reinitialize failed");
    };
    super::loop_answer(requests.ask(kind, ANSWER_WITHIN, ANSWER_WITHIN).await)
}
