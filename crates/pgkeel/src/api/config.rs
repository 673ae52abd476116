//! `/config`: the dynamic configuration in the DCS. GET reads it; PATCH merges into it with a
//! compare-and-swap on the key's mod_revision; PUT replaces it. Writes wake the agent so the
//! change applies within one cycle. `{"pause": true}` (what `patronictl pause` sends) puts the
//! cluster in maintenance mode, `{"pause": null}` resumes it (see docs/ha-rules.md, "Pause").

use super::{ApiState, json_response, text_response};
use crate::dcs::{Dcs, DcsError};
use axum::http::StatusCode;
use axum::response::Response;
use pgkeel_ha::cluster::GlobalConfig;
use pgkeel_ha::keys::KeyLayout;
use serde_json::{Map, Value};

/// Largest request body and largest stored `config` value, in bytes. Patroni's own dynamic
/// configuration is a few KiB; a bound keeps one client from filling etcd's value limit (1.5
/// MiB) and every agent's memory with it. Larger bodies get 413 before they are read.
pub const CONFIG_LIMIT: usize = 64 * 1024;

/// The `config` key's JSON object and mod_revision, `None` when absent.
async fn read_config(
    dcs: &dyn Dcs,
    layout: &KeyLayout,
) -> Result<Option<(Map<String, Value>, i64)>, DcsError> {
    let key = layout.config();
    let snap = dcs.get_prefix(&key).await?;
    let Some(kv) = snap.kvs.into_iter().find(|kv| kv.key == key) else {
        return Ok(None);
    };
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(Value::Object(m)) => Ok(Some((m, kv.mod_revision))),
        // An unreadable value is replaced by a PATCH as if it were `{}`.
        _ => Ok(Some((Map::new(), kv.mod_revision))),
    }
}

/// `GET /config`: 200 with the object, 502 when there is none.
pub(super) async fn get(state: &ApiState) -> Response {
    match read_config(state.dcs.as_ref(), &state.layout).await {
        Ok(Some((data, _))) => json_response(StatusCode::OK, &data),
        Ok(None) => text_response(StatusCode::BAD_GATEWAY, "config is not in the DCS"),
        Err(e) => {
            // Fall back to the agent's cached view, as Patroni reads `dcs.cluster` first.
            let cached = state
                .status
                .borrow()
                .cluster
                .as_ref()
                .and_then(|c| c.config.as_ref())
                .map(|c| c.data.clone());
            match cached {
                Some(data) => json_response(StatusCode::OK, &data),
                None => text_response(StatusCode::BAD_GATEWAY, e.to_string()),
            }
        }
    }
}

/// Parses a write body: a non-empty JSON object whose keys pgkeel reads have the right type
/// and range ([`GlobalConfig::check`]), so a value that would stop every agent is refused
/// before it reaches the DCS.
#[allow(clippy::result_large_err)]
fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(text_response(
            StatusCode::BAD_REQUEST,
            "empty body: expected a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => match GlobalConfig::check(&m) {
            Ok(()) => Ok(m),
            Err(rejected) => Err(text_response(
                StatusCode::BAD_REQUEST,
                format!("invalid configuration: {rejected}"),
            )),
        },
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

/// `PATCH /config` (auth checked by the caller).
pub(super) async fn patch(state: &ApiState, body: &[u8]) -> Response {
    let request = match parse_body(body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (mut data, mod_revision) = match read_config(state.dcs.as_ref(), &state.layout).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "config is not in the DCS");
        }
        Err(e) => return text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    if patch_config(&mut data, &request) {
        let value = Value::Object(data.clone()).to_string();
        if let Some(too_large) = over_limit(&value) {
            return too_large;
        }
        match state
            .dcs
            .put_if_mod_revision(&state.layout.config(), mod_revision, value.as_bytes())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return text_response(
                    StatusCode::CONFLICT,
                    "config was modified concurrently, retry",
                );
            }
            Err(e) => return text_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        }
    }
    state.wake_agent.notify_one();
    json_response(StatusCode::OK, &data)
}

/// `PUT /config` (auth checked by the caller): replaces the object and echoes it.
pub(super) async fn put(state: &ApiState, body: &[u8]) -> Response {
    let request = match parse_body(body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let value = Value::Object(request.clone()).to_string();
    if let Some(too_large) = over_limit(&value) {
        return too_large;
    }
    if let Err(e) = state
        .dcs
        .put(&state.layout.config(), value.as_bytes(), None)
        .await
    {
        return text_response(StatusCode::BAD_GATEWAY, e.to_string());
    }
    state.wake_agent.notify_one();
    json_response(StatusCode::OK, &request)
}

/// 413 when the configuration to store is larger than [`CONFIG_LIMIT`].
fn over_limit(value: &str) -> Option<Response> {
    (value.len() > CONFIG_LIMIT).then(|| {
        text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the configuration would be {} bytes; at most {CONFIG_LIMIT} are accepted",
                value.len()
            ),
        )
    })
}

/// Python's `str(v)` for the scalars Patroni compares when patching.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Patroni's `patch_config`: JSON merge-patch where `null` deletes a key, nested objects merge,
/// and scalars that print the same (`"1"` vs `1`) count as unchanged. Returns true if `config`
/// changed.
pub fn patch_config(config: &mut Map<String, Value>, patch: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (name, value) in patch {
        if value.is_null() {
            if config.remove(name).is_some_and(|old| !old.is_null()) {
                changed = true;
            }
            continue;
        }
        match config.get_mut(name) {
            Some(existing) => match (existing, value) {
                (Value::Object(old), Value::Object(new)) => {
                    if patch_config(old, new) {
                        changed = true;
                    }
                }
                (existing, Value::Object(_)) => {
                    *existing = value.clone();
                    changed = true;
                }
                (existing, _) => {
                    if py_str(existing) != py_str(value) {
                        *existing = value.clone();
                        changed = true;
                    }
                }
            },
            None => {
                config.insert(name.clone(), value.clone());
                changed = true;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn patch_config_merges_like_patroni() {
        let mut c = obj(json!({"ttl": 30, "postgresql": {"parameters": {"a": 1, "b": 2}}}));
        assert!(patch_config(
            &mut c,
            &obj(json!({"ttl": null, "postgresql": {"parameters": {"a": null, "c": 3}}}))
        ));
        assert_eq!(
            Value::Object(c.clone()),
            json!({"postgresql": {"parameters": {"b": 2, "c": 3}}})
        );
        // "2" prints like 2: unchanged, the old type is kept.
        assert!(!patch_config(
            &mut c,
            &obj(json!({"postgresql": {"parameters": {"b": "2"}}}))
        ));
        assert!(!patch_config(&mut c, &obj(json!({"missing": null}))));
    }
}
