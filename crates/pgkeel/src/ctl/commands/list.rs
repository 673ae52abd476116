//! `pgkeelctl list`: the members table, as patronictl 4.1's `output_members` prints it.

use super::super::output::{OutputFormat, records, table, yaml};
use super::super::{Connect, Context, CtlError, ListArgs};
use crate::api::model::{ClusterJson, ClusterMember, Lag, cluster_json};
use pgkeel_ha::cluster::Cluster;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;

/// Runs `list`.
pub async fn run(
    ctx: &Context,
    args: &ListArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let names = ctx.cluster_names(&args.clusters)?;
    let (fmt, extended) = (args.format, args.extended);
    super::print_clusters(
        ctx,
        &names,
        &args.watch,
        args.timestamp,
        connect,
        out,
        &|c, name| render_list(c, name, fmt, extended, false),
    )
    .await
}

const BASE_COLUMNS: [&str; 10] = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
];

const RIGHT_ALIGNED: [&str; 5] = [
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
];

/// Python's `str.title()` after `replace('_', ' ')`: `standby_leader` -> `Standby Leader`.
fn role_title(role: &str) -> String {
    let mut out = String::with_capacity(role.len());
    let mut prev_alpha = false;
    for c in role.replace('_', " ").chars() {
        if c.is_alphabetic() {
            if prev_alpha {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_alpha = true;
        } else {
            out.push(c);
            prev_alpha = false;
        }
    }
    out
}

/// `round(bytes / 1024 / 1024)` with Python's round-half-to-even.
pub fn lag_mb(bytes: u64) -> u64 {
    const MB: u64 = 1024 * 1024;
    let (q, r) = (bytes / MB, bytes % MB);
    if 2 * r > MB || (2 * r == MB && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

fn lag_cell(lag: Option<&Lag>) -> Value {
    match lag {
        Some(Lag::Bytes(b)) => Value::from(lag_mb(*b)),
        Some(Lag::Text(t)) if t != "unknown" => Value::from(t.clone()),
        _ => Value::from(""),
    }
}

/// The receive and replay cells (LSN, lag) of a member as patronictl fills them: when both are
/// `unknown` but the member has an `lsn` (the old single-position form), it goes into the
/// receive cells of a streaming member and into the replay cells of any other.
fn lsn_cells(m: &ClusterMember) -> [(Option<String>, Option<&Lag>); 2] {
    let unknown = |l: &Option<String>| l.as_deref() == Some("unknown");
    let mut receive = (m.receive_lsn.clone(), m.receive_lag.as_ref());
    let mut replay = (m.replay_lsn.clone(), m.replay_lag.as_ref());
    if unknown(&m.receive_lsn)
        && unknown(&m.replay_lsn)
        && m.lsn
            .as_deref()
            .is_some_and(|l| !l.is_empty() && l != "unknown")
    {
        let single = (m.lsn.clone(), m.lag.as_ref());
        if m.state == "streaming" {
            receive = single;
        } else {
            replay = single;
        }
    }
    [receive, replay]
}

/// patronictl's `topology_sort`: the leader, then each member's replicas (by `replicatefrom`
/// tag, else the leader's), depth-first, names prefixed with `+ ` per level.
fn topology_sort(members: Vec<ClusterMember>) -> Vec<ClusterMember> {
    let leader = members
        .iter()
        .find(|m| m.role.ends_with("leader"))
        .map(|m| m.name.clone());
    let replicas: Vec<String> = members
        .iter()
        .filter(|m| !m.role.ends_with("leader"))
        .map(|m| m.name.clone())
        .collect();
    let mut children: BTreeMap<Option<String>, Vec<ClusterMember>> = BTreeMap::new();
    let mut root = None;
    for m in members {
        if m.role.ends_with("leader") {
            if root.is_none() {
                root = Some(m);
            }
            continue;
        }
        let parent = m
            .tags
            .get("replicatefrom")
            .and_then(Value::as_str)
            .filter(|p| *p != m.name && replicas.iter().any(|r| r == p))
            .map(str::to_string)
            .or_else(|| leader.clone());
        children.entry(parent).or_default().push(m);
    }
    let mut out = Vec::new();
    fn walk(
        level: usize,
        key: Option<String>,
        member: Option<ClusterMember>,
        children: &mut BTreeMap<Option<String>, Vec<ClusterMember>>,
        out: &mut Vec<ClusterMember>,
    ) {
        let kids = children.remove(&key).unwrap_or_default();
        if let Some(mut m) = member {
            if level > 0 {
                m.name = format!("{}+ {}", " ".repeat((level - 1) * 2), m.name);
            }
            out.push(m);
        }
        for k in kids {
            let name = Some(k.name.clone());
            walk(level + 1, name, Some(k), children, out);
        }
    }
    let root_key = root.as_ref().map(|m| m.name.clone());
    walk(0, root_key, root, &mut children, &mut out);
    out
}

/// The table's columns and rows (cells as JSON values; `""` is empty).
fn rows(
    cj: ClusterJson,
    scope: &str,
    extended: bool,
    topology: bool,
    hide_long: bool,
) -> (Vec<&'static str>, Vec<Vec<Value>>) {
    let members = if topology {
        topology_sort(cj.members)
    } else {
        cj.members
    };
    let with_host: Vec<&ClusterMember> = members.iter().filter(|m| m.host.is_some()).collect();
    let mut columns: Vec<&'static str> = BASE_COLUMNS.to_vec();
    // patronictl: each optional column when extended or when any member has a value for it.
    let any = |has: fn(&ClusterMember) -> bool| extended || with_host.iter().any(|m| has(m));
    if any(|m| m.pending_restart == Some(true)) {
        columns.push("Pending restart");
    }
    if any(|m| !m.pending_restart_reason.is_empty()) {
        columns.push("Pending restart reason");
    }
    if any(|m| m.scheduled_restart.as_ref().is_some_and(|r| !r.is_empty())) {
        columns.push("Scheduled restart");
    }
    if any(|m| !m.tags.is_empty()) {
        columns.push("Tags");
    }
    let mut hosts: Vec<&str> = with_host.iter().filter_map(|m| m.host.as_deref()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let append_port = with_host.iter().any(|m| m.port.is_some_and(|p| p != 5432))
        || hosts.len() < with_host.len();
    let rows = members
        .iter()
        .map(|m| {
            let host = match (&m.host, m.port) {
                (Some(h), Some(p)) if append_port && !h.is_empty() => format!("{h}:{p}"),
                (Some(h), _) => h.clone(),
                (None, _) => String::new(),
            };
            let [(receive_lsn, receive_lag), (replay_lsn, replay_lag)] = lsn_cells(m);
            columns
                .iter()
                .map(|c| match *c {
                    "Cluster" => Value::from(scope),
                    "Member" => Value::from(m.name.clone()),
                    "Host" => Value::from(host.clone()),
                    "Role" => Value::from(role_title(&m.role)),
                    "State" => Value::from(m.state.clone()),
                    "TL" => m
                        .timeline
                        .map(Value::from)
                        .unwrap_or_else(|| Value::from("")),
                    "Receive LSN" => Value::from(receive_lsn.clone().unwrap_or_default()),
                    "Receive Lag" => lag_cell(receive_lag),
                    "Replay LSN" => Value::from(replay_lsn.clone().unwrap_or_default()),
                    "Replay Lag" => lag_cell(replay_lag),
                    "Pending restart" => Value::from(if m.pending_restart == Some(true) {
                        "*"
                    } else {
                        ""
                    }),
                    "Scheduled restart" => Value::from(scheduled_restart_cell(m)),
                    "Pending restart reason" => Value::from(restart_reason_cell(m, hide_long)),
                    "Tags" if !m.tags.is_empty() => {
                        Value::Object(m.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    }
                    _ => Value::from(""),
                })
                .collect()
        })
        .collect();
    (columns, rows)
}

/// patronictl's `Pending restart reason` cell: `param: old->new` per line; in the table a
/// line longer than 50 characters reads `param: [hidden - too long]`.
fn restart_reason_cell(m: &ClusterMember, hide_long: bool) -> String {
    m.pending_restart_reason
        .iter()
        .map(|(param, values)| {
            let value = |k: &str| values.get(k).map(cell_text).unwrap_or_default();
            let full = format!("{param}: {}->{}", value("old_value"), value("new_value"));
            if hide_long && full.chars().count() > 50 {
                format!("{param}: [hidden - too long]")
            } else {
                full
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// patronictl's `Scheduled restart` cell: the schedule, and the version filter if any.
fn scheduled_restart_cell(m: &ClusterMember) -> String {
    let Some(r) = &m.scheduled_restart else {
        return String::new();
    };
    let mut text = r.get("schedule").map(cell_text).unwrap_or_default();
    if let Some(v) = r.get("postgres_version") {
        text.push_str(&format!(" if version < {}", cell_text(v)));
    }
    text
}

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Null) || v.as_str() == Some("")
}

/// Python's `str(v)` for a table cell (tags are formatted by the caller).
fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// patronictl's footer lines (pretty/topology only).
fn service_info(
    cj_pause: bool,
    switchover: Option<&crate::api::model::ScheduledSwitchover>,
) -> Option<String> {
    let mut info = Vec::new();
    if cj_pause {
        info.push("Maintenance mode: on".to_string());
    }
    if let Some(s) = switchover {
        let mut line = format!("Switchover scheduled at: {}", s.at);
        for (name, v) in [("from", &s.from), ("to", &s.to)] {
            if let Some(v) = v {
                line.push_str(&format!("\n{name:>24}: {v}"));
            }
        }
        info.push(line);
    }
    (!info.is_empty()).then(|| format!(" {}", info.join("\n ")))
}

/// Renders `pgkeelctl list` (or `topology` with `topology = true`) for one cluster, exactly as
/// patronictl 4.1 prints it, including the trailing newline.
pub fn render_list(
    cluster: &Cluster,
    scope: &str,
    fmt: OutputFormat,
    extended: bool,
    topology: bool,
) -> String {
    render_list_group(cluster, scope, fmt, extended, topology, None)
}

/// [`render_list`] of one Citus group's keys (`--group N`): the table is titled
/// ` Citus cluster: <scope> (group: N, <sysid>) ` as patronictl titles it.
pub fn render_list_group(
    cluster: &Cluster,
    scope: &str,
    fmt: OutputFormat,
    extended: bool,
    topology: bool,
    group: Option<i64>,
) -> String {
    let cj = cluster_json(cluster, scope);
    let footer = service_info(cj.pause == Some(true), cj.scheduled_switchover.as_ref());
    let hide_long = matches!(fmt, OutputFormat::Pretty);
    let (columns, rows) = rows(cj, scope, extended, topology, hide_long);
    match fmt {
        OutputFormat::Json | OutputFormat::Yaml => records(&columns, rows, fmt, is_empty),
        OutputFormat::Tsv => {
            let mut out = columns.join("\t");
            out.push('\n');
            for r in rows {
                let cells: Vec<String> = r
                    .iter()
                    .map(|v| match v {
                        Value::Object(_) => yaml::dump_flow(v),
                        other => cell_text(other),
                    })
                    .collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            out
        }
        OutputFormat::Pretty => {
            let initialize = match cluster.initialize.as_deref() {
                None => "uninitialized",
                Some("") => "initializing",
                Some(s) => s,
            };
            let title = match group {
                Some(g) => format!(" Citus cluster: {scope} (group: {g}, {initialize}) "),
                None => format!(" Cluster: {scope} ({initialize}) "),
            };
            let headers: Vec<String> = columns[1..]
                .iter()
                .map(|c| if c.ends_with(" Lag") { "Lag" } else { c }.to_string())
                .collect();
            let aligns: Vec<table::Align> = columns[1..]
                .iter()
                .map(|c| {
                    if RIGHT_ALIGNED.contains(c) {
                        table::Align::Right
                    } else {
                        table::Align::Left
                    }
                })
                .collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    r[1..]
                        .iter()
                        .map(|v| match v {
                            Value::Object(_) => yaml::dump_block(v).trim().to_string(),
                            other => cell_text(other),
                        })
                        .collect()
                })
                .collect();
            let mut out = table::render(Some(&title), &headers, &aligns, &cells);
            out.push('\n');
            if let Some(f) = footer {
                out.push_str(&f);
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_rounding_follow_python() {
        assert_eq!(role_title("standby_leader"), "Standby Leader");
        assert_eq!(role_title("sync_standby"), "Sync Standby");
        assert_eq!(lag_mb(0), 0);
        assert_eq!(lag_mb(524_288), 0); // 0.5 -> 0
        assert_eq!(lag_mb(1_572_864), 2); // 1.5 -> 2
        assert_eq!(lag_mb(2_621_440), 2); // 2.5 -> 2
        assert_eq!(lag_mb(1_048_577), 1);
    }
}
