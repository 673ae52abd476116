//! Times in requests (`scheduled_at` of a switchover, `schedule` of a restart) read and written
//! as Patroni does: ISO 8601 with a zone, not in the past; written back in UTC.

use axum::http::StatusCode;
use pgkeel_ha::time::parse_iso8601_ms;

/// Patroni's `parse_schedule`: the time (ms since the epoch) or 400 (no zone) / 422 (past,
/// unreadable).
pub(super) fn parse_schedule(
    at: &str,
    action: &str,
    now_ms: i64,
) -> Result<i64, (StatusCode, String)> {
    match parse_iso8601_ms(at) {
        Some(ms) if ms < now_ms => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Cannot schedule {action} in the past"),
        )),
        Some(ms) => Ok(ms),
        None if parse_iso8601_ms(&format!("{}+00:00", at.trim())).is_some() => Err((
            StatusCode::BAD_REQUEST,
            format!("Timezone information is mandatory for the scheduled {action}"),
        )),
        None => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
                .into(),
        )),
    }
}

/// `scheduled_at` as written to the key: ISO 8601 in UTC (Patroni writes `isoformat()` of the
/// parsed time; the instant is the same).
pub(super) fn iso_utc(ms: i64) -> Option<String> {
    let ts = jiff::Timestamp::from_millisecond(ms).ok()?;
    let frac = if ms.rem_euclid(1000) == 0 {
        String::new()
    } else {
        format!(".{:06}", ms.rem_euclid(1000) * 1000)
    };
    Some(format!("{}{frac}+00:00", ts.strftime("%Y-%m-%dT%H:%M:%S")))
}
