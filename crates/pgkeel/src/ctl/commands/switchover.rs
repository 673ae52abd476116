//! `pgkeelctl switchover`, and the steps it shares with `failover`: patronictl 4.1's
//! `_do_failover_or_switchover`, with its prompts, checks (in its order), messages and exit
//! codes. The request goes to the leader's REST API (`POST /switchover` or `/failover`); when
//! the API cannot be reached the request is written to the `failover` key instead.

use super::super::output::json;
use super::super::prompt::{confirm, prompt};
use super::super::request::request_patroni;
use super::super::{Connect, Context, CtlError, SwitchoverArgs};
use super::list::render_list;
use super::{read_cluster, timestamp_micros};
use crate::config::BasicAuth;
use crate::ctl::OutputFormat;
use crate::dcs::Dcs;
use pgkeel_ha::cluster::{Cluster, bool_value};
use pgkeel_ha::keys::KeyLayout;
use serde_json::{Map, Value};
use std::io::{BufRead, Write};

/// Which operation is asked for (patronictl's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `switchover`: needs a healthy leader, may be scheduled.
    Switchover,
    /// `failover`: needs a candidate, happens now.
    Failover,
}

impl Action {
    /// The word patronictl uses (also the REST endpoint).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Switchover => "switchover",
            Action::Failover => "failover",
        }
    }

    /// Python's `action.title()`.
    fn title(self) -> &'static str {
        match self {
            Action::Switchover => "Switchover",
            Action::Failover => "Failover",
        }
    }
}

/// What the user asked on the command line.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `--candidate`.
    pub candidate: Option<String>,
    /// `--leader`/`--primary` (switchover only).
    pub leader: Option<String>,
    /// `--scheduled` (switchover only).
    pub scheduled: Option<String>,
    /// `--force`: no prompts.
    pub force: bool,
}

/// Runs `switchover`.
pub async fn run(
    ctx: &Context,
    args: &SwitchoverArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let req = Request {
        candidate: args.candidate.clone(),
        leader: args.leader.clone(),
        scheduled: args.scheduled.clone(),
        force: args.force,
    };
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    do_failover_or_switchover(ctx, Action::Switchover, &name, req, connect, input, out).await
}

/// `CLUSTER` or the configuration's `scope`.
pub(crate) fn cluster_name(ctx: &Context, given: Option<&str>) -> Result<String, CtlError> {
    let given: Vec<String> = given.into_iter().map(str::to_string).collect();
    let mut names = ctx.cluster_names(&given)?;
    Ok(names.remove(0))
}

/// Patroni's `GlobalConfig.check_mode`: the key read with `parse_bool`, false when unreadable.
pub(crate) fn check_mode(config: &Map<String, Value>, key: &str) -> bool {
    config.get(key).and_then(bool_value).unwrap_or(false)
}

/// Patroni's `is_standby_cluster`: a `standby_cluster` object with a host, port or
/// restore_command.
fn is_standby_cluster(config: &Map<String, Value>) -> bool {
    config
        .get("standby_cluster")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            ["host", "port", "restore_command"]
                .iter()
                .any(|k| s.get(*k).is_some_and(python_truthy))
        })
}

fn python_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Patroni's `is_synchronous_mode`: `synchronous_mode` true or `quorum`, and not a standby
/// cluster.
fn is_synchronous_mode(config: &Map<String, Value>) -> bool {
    let quorum = config
        .get("synchronous_mode")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("quorum"));
    (check_mode(config, "synchronous_mode") || quorum) && !is_standby_cluster(config)
}

/// `not cluster.sync.is_empty and not cluster.sync.matches(candidate, True)`: a `sync` key
/// with a leader that names neither the candidate as leader nor as a synchronous standby
/// (compared case-insensitively, like PostgreSQL).
fn candidate_is_asynchronous(cluster: &Cluster, candidate: &str) -> bool {
    let Some(sync) = &cluster.sync else {
        return false;
    };
    let Some(leader) = sync.leader.as_deref().filter(|l| !l.is_empty()) else {
        return false;
    };
    let matches = leader.eq_ignore_ascii_case(candidate)
        || sync
            .sync_standby
            .iter()
            .any(|s| s.eq_ignore_ascii_case(candidate));
    !matches
}

/// Patroni's `parse_scheduled`: `None` for absent, empty or `now`; otherwise an ISO 8601 time,
/// in the local time zone when it has no offset.
pub fn parse_scheduled(scheduled: Option<&str>) -> Result<Option<jiff::ZonedDateTime>, CtlError> {
    let Some(s) = scheduled
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "now")
    else {
        return Ok(None);
    };
    parse_iso(s).map(Some).ok_or_else(|| {
        CtlError::Failed(format!(
            "Unable to parse scheduled timestamp ({s}). It should be in an unambiguous format (e.g. ISO 8601)"
        ))
    })
}

/// The prompts' example time: an hour from now, `%Y-%m-%dT%H:%M` local.
pub(crate) fn next_hour() -> String {
    (jiff::ZonedDateTime::now() + jiff::SignedDuration::from_hours(1))
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

/// `YYYY-MM-DD[T| ]HH:MM[:SS[.f]]` with an optional `Z`, `±HH`, `±HHMM` or `±HH:MM`.
fn parse_iso(s: &str) -> Option<jiff::ZonedDateTime> {
    let s = s.replacen(' ', "T", 1);
    let (date, time) = s.split_once('T').unwrap_or((s.as_str(), "00:00"));
    let (time, offset) = if let Some(t) = time.strip_suffix(['Z', 'z']) {
        (t, Some(jiff::tz::Offset::UTC))
    } else if let Some(i) = time.rfind(['+', '-']) {
        (&time[..i], Some(parse_offset(&time[i..])?))
    } else {
        (time, None)
    };
    let dt: jiff::civil::DateTime = format!("{date}T{time}").parse().ok()?;
    let tz = match offset {
        Some(o) => jiff::tz::TimeZone::fixed(o),
        None => jiff::tz::TimeZone::system(),
    };
    dt.to_zoned_datetime(tz).ok()
}

fn parse_offset(s: &str) -> Option<jiff::tz::Offset> {
    let (sign, digits) = match s.split_at_checked(1)? {
        ("+", d) => (1, d),
        ("-", d) => (-1, d),
        _ => return None,
    };
    let digits = digits.replace(':', "");
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()
}

/// Python's `datetime.isoformat()` of an aware time: microseconds only when non-zero, the
/// offset as `+HH:MM`.
pub fn isoformat(t: &jiff::ZonedDateTime) -> String {
    let micros = t.subsec_nanosecond() / 1000;
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let secs = t.offset().seconds();
    let sign = if secs < 0 { '-' } else { '+' };
    let abs = secs.unsigned_abs();
    let mut offset = format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60);
    if !abs.is_multiple_of(60) {
        offset.push_str(&format!(":{:02}", abs % 60));
    }
    if micros != 0 {
        format!("{base}.{micros:06}{offset}")
    } else {
        format!("{base}{offset}")
    }
}

/// The members table patronictl prints before and after the operation.
fn print_topology(
    out: &mut (dyn Write + Send),
    cluster: &Cluster,
    name: &str,
) -> Result<(), CtlError> {
    write!(
        out,
        "{}",
        render_list(cluster, name, OutputFormat::Pretty, false, false)
    )?;
    Ok(())
}

/// patronictl's `_do_failover_or_switchover`.
pub async fn do_failover_or_switchover(
    ctx: &Context,
    action: Action,
    cluster_name: &str,
    req: Request,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let dcs = connect(&ctx.target).await?;
    let namespace = ctx.target.namespace.clone();
    let mut cluster = read_cluster(dcs.as_ref(), &namespace, cluster_name).await?;
    writeln!(out, "Current cluster topology")?;
    print_topology(out, &cluster, cluster_name)?;

    let config = cluster
        .config
        .as_ref()
        .map(|c| c.data.clone())
        .unwrap_or_default();
    let cluster_leader = cluster.leader_name().map(str::to_string);
    let Request {
        mut candidate,
        leader: mut switchover_leader,
        scheduled,
        force,
    } = req;

    if action == Action::Switchover {
        let Some(current) = cluster_leader.as_deref() else {
            return Err(CtlError::Failed("This cluster has no leader".into()));
        };
        let chosen = match switchover_leader.take() {
            Some(l) => l,
            None if force => current.to_string(),
            None => {
                let text = if is_standby_cluster(&config) {
                    "Standby Leader"
                } else {
                    "Primary"
                };
                prompt(input, out, text, Some(current))?
            }
        };
        if chosen != current {
            return Err(CtlError::Failed(format!(
                "Member {chosen} is not the leader of cluster {cluster_name}"
            )));
        }
        switchover_leader = Some(chosen);
    }

    let mut candidate_names: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| Some(m.name.as_str()) != cluster_leader.as_deref() && !m.nofailover())
        .map(|m| m.name.clone())
        .collect();
    candidate_names.sort();
    if candidate_names.is_empty() {
        return Err(CtlError::Failed(format!(
            "No candidates found to {} to",
            action.as_str()
        )));
    }

    if candidate.is_none() && !force {
        let list: Vec<String> = candidate_names.iter().map(|n| python_repr(n)).collect();
        let text = format!("Candidate [{}]", list.join(", "));
        candidate = Some(prompt(input, out, &text, Some(""))?);
    }
    let wanted = candidate.as_deref().filter(|c| !c.is_empty());
    if action == Action::Failover && wanted.is_none() {
        return Err(CtlError::Failed(
            "Failover could be performed only to a specific candidate".into(),
        ));
    }
    if let Some(c) = wanted
        && !candidate_names.iter().any(|n| n == c)
    {
        if Some(c) == cluster_leader.as_deref() {
            return Err(CtlError::Failed(format!(
                "Member {c} is already the leader of cluster {cluster_name}"
            )));
        }
        return Err(CtlError::Failed(format!(
            "Member {c} does not exist in cluster {cluster_name} or is tagged as nofailover"
        )));
    }

    if let Some(c) = wanted
        && !force
        && action == Action::Failover
        && is_synchronous_mode(&config)
        && candidate_is_asynchronous(&cluster, c)
        && !confirm(
            input,
            out,
            &format!("Are you sure you want to failover to the asynchronous node {c}?"),
        )?
    {
        return Err(CtlError::Failed(format!("Aborting {}", action.as_str())));
    }

    let mut scheduled_at = None;
    if action == Action::Switchover {
        let when = match scheduled {
            Some(s) => Some(s),
            None if force => None,
            None => {
                let text = format!(
                    "When should the switchover take place (e.g. {} ) ",
                    next_hour()
                );
                Some(prompt(input, out, &text, Some("now"))?)
            }
        };
        scheduled_at = parse_scheduled(when.as_deref())?;
        if scheduled_at.is_some() && check_mode(&config, "pause") {
            return Err(CtlError::Failed(
                "Can't schedule switchover in the paused state".into(),
            ));
        }
    }
    let scheduled_at_str = scheduled_at.as_ref().map(isoformat);

    // The REST body, in patronictl's key order and json.dumps spacing.
    let mut body = Map::new();
    body.insert(
        "candidate".into(),
        candidate.clone().map(Value::from).unwrap_or(Value::Null),
    );
    if action == Action::Switchover {
        body.insert(
            "leader".into(),
            switchover_leader
                .clone()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
    }
    if let Some(s) = &scheduled_at_str {
        body.insert("scheduled_at".into(), Value::from(s.clone()));
    }

    if !force {
        let demote = cluster_leader
            .as_deref()
            .map(|l| format!(", demoting current leader {l}"))
            .unwrap_or_default();
        match &scheduled_at_str {
            Some(at) => {
                let text = format!(
                    "Are you sure you want to schedule switchover of cluster {cluster_name} at {at}{demote}?"
                );
                if !confirm(input, out, &text)? {
                    return Err(CtlError::Failed(format!(
                        "Aborting scheduled {}",
                        action.as_str()
                    )));
                }
            }
            None => {
                let text = format!(
                    "Are you sure you want to {} cluster {cluster_name}{demote}?",
                    action.as_str()
                );
                if !confirm(input, out, &text)? {
                    return Err(CtlError::Failed(format!("Aborting {}", action.as_str())));
                }
            }
        }
    }

    // The leader's API if there is a leader, else the candidate's.
    let target = match &cluster_leader {
        Some(l) => Some((l.clone(), cluster.member(l).and_then(|m| m.api_url.clone()))),
        None => wanted.map(|c| {
            (
                c.to_string(),
                cluster.member(c).and_then(|m| m.api_url.clone()),
            )
        }),
    };
    let body_text = json::dumps(&Value::Object(body));
    let sent = match &target {
        Some((name, api_url)) => {
            send(
                ctx.rest_auth(),
                action,
                name,
                api_url.as_deref(),
                &body_text,
            )
            .await
        }
        None => None,
    };
    match sent {
        Some(r) if r.status == 200 || r.status == 202 => {
            cluster = read_cluster(dcs.as_ref(), &namespace, cluster_name).await?;
            writeln!(out, "{} {}", timestamp_micros(), r.body)?;
        }
        Some(r) => {
            writeln!(
                out,
                "{} failed, details: {}, {}",
                action.title(),
                r.status,
                r.body
            )?;
            return Ok(());
        }
        None => {
            writeln!(
                out,
                "{} Could not {} using Patroni api, falling back to DCS",
                timestamp_micros(),
                action.as_str()
            )?;
            manual_failover(
                dcs.as_ref(),
                &KeyLayout::new(&namespace, cluster_name),
                switchover_leader.as_deref(),
                wanted,
                scheduled_at_str.as_deref(),
            )
            .await?;
        }
    }
    print_topology(out, &cluster, cluster_name)
}

/// POSTs the request; `None` when no HTTP answer came (patronictl's `except Exception`). A
/// server that does not know `/switchover` (501) is asked `/failover`, as patronictl does for
/// old Patroni versions.
async fn send(
    auth: Option<&BasicAuth>,
    action: Action,
    name: &str,
    api_url: Option<&str>,
    body: &str,
) -> Option<super::super::request::Response> {
    let post = |endpoint: &'static str| {
        request_patroni(
            auth,
            name,
            api_url,
            reqwest::Method::POST,
            endpoint,
            Some(body.to_string()),
        )
    };
    let r = match post(action.as_str()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("WARNING - {e}; Failing over to DCS");
            return None;
        }
    };
    if r.status == 501
        && action == Action::Switchover
        && r.body.contains("Server does not support this operation")
    {
        return match post("failover").await {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("WARNING - {e}; Failing over to DCS");
                None
            }
        };
    }
    Some(r)
}

/// Patroni's `manual_failover`: the `failover` key, compact JSON with only the set fields.
async fn manual_failover(
    dcs: &dyn Dcs,
    layout: &KeyLayout,
    leader: Option<&str>,
    candidate: Option<&str>,
    scheduled_at: Option<&str>,
) -> Result<(), CtlError> {
    let mut value = Map::new();
    if let Some(l) = leader.filter(|l| !l.is_empty()) {
        value.insert("leader".into(), Value::from(l));
    }
    if let Some(c) = candidate.filter(|c| !c.is_empty()) {
        value.insert("member".into(), Value::from(c));
    }
    if let Some(s) = scheduled_at {
        value.insert("scheduled_at".into(), Value::from(s));
    }
    let text = Value::Object(value).to_string();
    dcs.put(&layout.failover(), text.as_bytes(), None).await?;
    Ok(())
}

/// Python's `repr()` of a string, as patronictl shows the candidate list.
fn python_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_times_parse_like_dateutil_and_print_like_isoformat() {
        assert!(parse_scheduled(None).unwrap().is_none());
        assert!(parse_scheduled(Some("now")).unwrap().is_none());
        assert!(parse_scheduled(Some("")).unwrap().is_none());
        let t = parse_scheduled(Some("2030-05-29T04:32:31-3"))
            .unwrap()
            .unwrap();
        assert_eq!(isoformat(&t), "2030-05-29T04:32:31-03:00");
        let t = parse_scheduled(Some("2030-05-29 04:32+0530"))
            .unwrap()
            .unwrap();
        assert_eq!(isoformat(&t), "2030-05-29T04:32:00+05:30");
        let t = parse_scheduled(Some("2030-05-29T04:32:31.5Z"))
            .unwrap()
            .unwrap();
        assert_eq!(isoformat(&t), "2030-05-29T04:32:31.500000+00:00");
        let e = parse_scheduled(Some("tomorrow")).unwrap_err().to_string();
        assert_eq!(
            e,
            "Unable to parse scheduled timestamp (tomorrow). It should be in an unambiguous format (e.g. ISO 8601)"
        );
    }

    #[test]
    fn reprs_quote_like_python() {
        assert_eq!(python_repr("node1"), "'node1'");
        assert_eq!(python_repr("it's"), "\"it's\"");
    }
}
