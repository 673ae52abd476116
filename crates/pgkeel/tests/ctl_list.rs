//! Snapshot tests of `pgkeelctl list`/`topology` output against patronictl 4.1's format.
// Reference: patroni-reference.md §4 (list output).

use pgkeel::ctl::{OutputFormat, render_list};
use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::keys::KeyLayout;
use pgkeel_ha::keys::codec::{RawKv, parse_cluster};

const MB: u64 = 1024 * 1024;

fn member(port: u16, role: &str, extra: &str) -> String {
    let base = format!(
        r#""conn_url":"postgres://127.0.0.1:{port}/postgres","api_url":"http://127.0.0.1:{}/patroni","state":"running","role":"{role}","version":"4.1.4","timeline":1"#,
        port + 2576
    );
    if extra.is_empty() {
        format!("{{{base}}}")
    } else {
        format!("{{{base},{extra}}}")
    }
}

fn replica(port: u16, lsn: u64, extra: &str) -> String {
    let lsns = format!(
        r#""xlog_location":{lsn},"replay_lsn":{lsn},"receive_lsn":{lsn},"replication_state":"streaming""#
    );
    let extra = if extra.is_empty() {
        lsns
    } else {
        format!("{lsns},{extra}")
    };
    member(port, "replica", &extra)
}

const OPTIME: u64 = 0x4000060;

/// Builds a cluster from raw Patroni key values, as the DCS would return them.
fn cluster(
    initialize: Option<&str>,
    members: &[(&str, String)],
    extra: &[(&str, &str)],
) -> Cluster {
    let layout = KeyLayout::new("/service", "batman");
    let mut kvs: Vec<(String, String)> = vec![
        ("/service/batman/leader".into(), "postgresql0".into()),
        (
            "/service/batman/status".into(),
            format!(r#"{{"optime":{OPTIME}}}"#),
        ),
        ("/service/batman/config".into(), r#"{"ttl":30}"#.into()),
        ("/service/batman/history".into(), "[]".into()),
    ];
    if let Some(i) = initialize {
        kvs.push(("/service/batman/initialize".into(), i.into()));
    }
    for (name, value) in members {
        kvs.push((format!("/service/batman/members/{name}"), value.clone()));
    }
    for (k, v) in extra {
        kvs.retain(|(key, _)| key != &format!("/service/batman/{k}"));
        kvs.push((format!("/service/batman/{k}"), (*v).to_string()));
    }
    let raw: Vec<RawKv<'_>> = kvs
        .iter()
        .map(|(k, v)| RawKv {
            key: k,
            value: v.as_bytes(),
            mod_revision: 1,
            lease: 0,
        })
        .collect();
    parse_cluster(&layout, &raw)
}

fn three_nodes() -> Vec<(&'static str, String)> {
    vec![
        (
            "postgresql0",
            member(5432, "primary", &format!(r#""xlog_location":{OPTIME}"#)),
        ),
        ("postgresql2", replica(5434, OPTIME, "")),
        ("postgresql1", replica(5433, OPTIME, "")),
    ]
}

fn batman() -> Cluster {
    cluster(Some("7277694203142172922"), &three_nodes(), &[])
}

#[test]
fn pretty_list_matches_patronictl() {
    let expected = "\
+ Cluster: batman (7277694203142172922) -+-----------+----+-------------+-----+------------+-----+
| Member      | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+
| postgresql0 | 127.0.0.1:5432 | Leader  | running   |  1 |             |     |            |     |
| postgresql1 | 127.0.0.1:5433 | Replica | streaming |  1 |   0/4000060 |   0 |  0/4000060 |   0 |
| postgresql2 | 127.0.0.1:5434 | Replica | streaming |  1 |   0/4000060 |   0 |  0/4000060 |   0 |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+
";
    assert_eq!(
        render_list(&batman(), "batman", OutputFormat::Pretty, false, false),
        expected
    );
}

#[test]
fn json_omits_empty_values_and_keeps_column_order() {
    let expected = concat!(
        r#"[{"Cluster": "batman", "Member": "postgresql0", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 1}, "#,
        r#"{"Cluster": "batman", "Member": "postgresql1", "Host": "127.0.0.1:5433", "Role": "Replica", "State": "streaming", "TL": 1, "Receive LSN": "0/4000060", "Receive Lag": 0, "Replay LSN": "0/4000060", "Replay Lag": 0}, "#,
        r#"{"Cluster": "batman", "Member": "postgresql2", "Host": "127.0.0.1:5434", "Role": "Replica", "State": "streaming", "TL": 1, "Receive LSN": "0/4000060", "Receive Lag": 0, "Replay LSN": "0/4000060", "Replay Lag": 0}]"#,
        "\n"
    );
    assert_eq!(
        render_list(&batman(), "batman", OutputFormat::Json, false, false),
        expected
    );
}

#[test]
fn yaml_sorts_keys_and_omits_empty_values() {
    let replica = |n: u8, port: u16| {
        format!(
            "- Cluster: batman\n  Host: 127.0.0.1:{port}\n  Member: postgresql{n}\n  Receive LSN: 0/4000060\n  Receive Lag: 0\n  Replay LSN: 0/4000060\n  Replay Lag: 0\n  Role: Replica\n  State: streaming\n  TL: 1\n"
        )
    };
    let expected = format!(
        "- Cluster: batman\n  Host: 127.0.0.1:5432\n  Member: postgresql0\n  Role: Leader\n  State: running\n  TL: 1\n{}{}\n",
        replica(1, 5433),
        replica(2, 5434)
    );
    assert_eq!(
        render_list(&batman(), "batman", OutputFormat::Yaml, false, false),
        expected
    );
}

#[test]
fn tsv_has_a_header_and_the_cluster_column() {
    let expected = "\
Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag
batman\tpostgresql0\t127.0.0.1:5432\tLeader\trunning\t1\t\t\t\t
batman\tpostgresql1\t127.0.0.1:5433\tReplica\tstreaming\t1\t0/4000060\t0\t0/4000060\t0
batman\tpostgresql2\t127.0.0.1:5434\tReplica\tstreaming\t1\t0/4000060\t0\t0/4000060\t0
";
    assert_eq!(
        render_list(&batman(), "batman", OutputFormat::Tsv, false, false),
        expected
    );
}

#[test]
fn host_has_no_port_when_all_on_5432_and_distinct() {
    let members = vec![
        (
            "a",
            member(5432, "primary", "").replace("127.0.0.1", "10.0.0.1"),
        ),
        (
            "b",
            replica(5432, OPTIME, "").replace("127.0.0.1", "10.0.0.2"),
        ),
    ];
    let c = cluster(Some("7277694203142172922"), &members, &[("leader", "a")]);
    let out = render_list(&c, "batman", OutputFormat::Tsv, false, false);
    assert!(out.contains("\ta\t10.0.0.1\tLeader"), "{out}");
    assert!(out.contains("\tb\t10.0.0.2\tReplica"), "{out}");
}

#[test]
fn titles_for_uninitialized_and_initializing_clusters() {
    let c = cluster(None, &three_nodes(), &[]);
    let out = render_list(&c, "batman", OutputFormat::Pretty, false, false);
    assert!(
        out.starts_with("+ Cluster: batman (uninitialized) -------+"),
        "{out}"
    );
    let c = cluster(Some(""), &three_nodes(), &[]);
    let out = render_list(&c, "batman", OutputFormat::Pretty, false, false);
    assert!(
        out.starts_with("+ Cluster: batman (initializing) --------+"),
        "{out}"
    );
}

#[test]
fn empty_cluster_prints_header_only() {
    let c = cluster(None, &[], &[("leader", "")]);
    let out = render_list(&c, "batman", OutputFormat::Pretty, false, false);
    let expected = "\
+ Cluster: batman (uninitialized) --+-------------+-----+------------+-----+
| Member | Host | Role | State | TL | Receive LSN | Lag | Replay LSN | Lag |
+--------+------+------+-------+----+-------------+-----+------------+-----+
+--------+------+------+-------+----+-------------+-----+------------+-----+
";
    assert_eq!(out, expected);
}

#[test]
fn lag_is_rounded_to_megabytes_half_to_even() {
    // receive 1.5 MB behind -> 2, replay 2.5 MB behind -> 2 (Python round()).
    let m = member(
        5433,
        "replica",
        &format!(
            r#""receive_lsn":{},"replay_lsn":{},"replication_state":"streaming""#,
            OPTIME - 3 * MB / 2,
            OPTIME - 5 * MB / 2
        ),
    );
    let members = vec![
        ("postgresql0", member(5432, "primary", "")),
        ("postgresql1", m),
    ];
    let c = cluster(Some("7277694203142172922"), &members, &[]);
    let out = render_list(&c, "batman", OutputFormat::Tsv, false, false);
    assert!(
        out.contains("\tstreaming\t1\t0/3E80060\t2\t0/3D80060\t2\n"),
        "{out}"
    );
}

#[test]
fn unknown_positions_show_unknown() {
    let members = vec![
        ("postgresql0", member(5432, "primary", "")),
        ("postgresql1", member(5433, "replica", "")),
    ];
    let c = cluster(Some("7277694203142172922"), &members, &[]);
    let out = render_list(&c, "batman", OutputFormat::Json, false, false);
    assert!(
        // The lag of an unknown position is '' (left out), as patronictl's output_members has it.
        out.contains(r#""TL": 1, "Receive LSN": "unknown", "Replay LSN": "unknown"}"#),
        "{out}"
    );
}

#[test]
fn tags_and_pending_restart_columns_appear_only_when_present() {
    let plain = render_list(&batman(), "batman", OutputFormat::Pretty, false, false);
    assert!(!plain.contains("Tags") && !plain.contains("Pending restart"));

    let mut members = three_nodes();
    members[1].1 = replica(
        5434,
        OPTIME,
        r#""pending_restart":true,"tags":{"nofailover":true}"#,
    );
    let c = cluster(Some("7277694203142172922"), &members, &[]);
    let expected = "\
+ Cluster: batman (7277694203142172922) -+-----------+----+-------------+-----+------------+-----+-----------------+------------------+
| Member      | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Pending restart | Tags             |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+-----------------+------------------+
| postgresql0 | 127.0.0.1:5432 | Leader  | running   |  1 |             |     |            |     |                 |                  |
| postgresql1 | 127.0.0.1:5433 | Replica | streaming |  1 |   0/4000060 |   0 |  0/4000060 |   0 |                 |                  |
| postgresql2 | 127.0.0.1:5434 | Replica | streaming |  1 |   0/4000060 |   0 |  0/4000060 |   0 | *               | nofailover: true |
+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+-----------------+------------------+
";
    assert_eq!(
        render_list(&c, "batman", OutputFormat::Pretty, false, false),
        expected
    );
    let json = render_list(&c, "batman", OutputFormat::Json, false, false);
    assert!(
        json.contains(r#""Pending restart": "*", "Tags": {"nofailover": true}}]"#),
        "{json}"
    );
    let tsv = render_list(&c, "batman", OutputFormat::Tsv, false, false);
    assert!(tsv.ends_with("\t*\t{nofailover: true}\n"), "{tsv}");
    let yaml = render_list(&c, "batman", OutputFormat::Yaml, false, false);
    assert!(
        yaml.contains("  Pending restart: '*'\n")
            && yaml.contains("  Tags:\n    nofailover: true\n"),
        "{yaml}"
    );
}

#[test]
fn extended_shows_every_optional_column() {
    let out = render_list(&batman(), "batman", OutputFormat::Tsv, true, false);
    assert!(
        out.starts_with("Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag\tPending restart\tPending restart reason\tScheduled restart\tTags\n"),
        "{out}"
    );
}

#[test]
fn multi_line_tags_put_rules_between_rows() {
    let mut members = three_nodes();
    members[1].1 = replica(
        5434,
        OPTIME,
        r#""tags":{"nofailover":true,"clonefrom":true}"#,
    );
    let c = cluster(Some("7277694203142172922"), &members, &[]);
    let out = render_list(&c, "batman", OutputFormat::Pretty, false, false);
    let rule = "+-------------+----------------+---------+-----------+----+-------------+-----+------------+-----+------------------+";
    let expected = format!(
        "\
+ Cluster: batman (7277694203142172922) -+-----------+----+-------------+-----+------------+-----+------------------+
| Member      | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags             |
{rule}
| postgresql0 | 127.0.0.1:5432 | Leader  | running   |  1 |             |     |            |     |                  |
{rule}
| postgresql1 | 127.0.0.1:5433 | Replica | streaming |  1 |   0/4000060 |   0 |  0/4000060 |   0 |                  |
{rule}
| postgresql2 | 127.0.0.1:5434 | Replica | streaming |  1 |   0/4000060 |   0 |  0/4000060 |   0 | clonefrom: true  |
|             |                |         |           |    |             |     |            |     | nofailover: true |
{rule}
"
    );
    assert_eq!(out, expected);
}

#[test]
fn topology_puts_the_leader_first_and_indents_cascades() {
    let members = vec![
        ("a-replica", replica(5433, OPTIME, "")),
        (
            "b-cascade",
            replica(5434, OPTIME, r#""tags":{"replicatefrom":"a-replica"}"#),
        ),
        ("z-leader", member(5432, "primary", "")),
    ];
    let c = cluster(
        Some("7277694203142172922"),
        &members,
        &[("leader", "z-leader")],
    );
    let out = render_list(&c, "batman", OutputFormat::Pretty, false, true);
    let names: Vec<&str> = out
        .lines()
        .skip(3)
        .filter(|l| l.starts_with("| "))
        .map(|l| l.split('|').nth(1).unwrap_or("").trim_end())
        .collect();
    assert_eq!(names, [" z-leader", " + a-replica", "   + b-cascade"]);
}

#[test]
fn footer_shows_maintenance_mode_and_scheduled_switchover() {
    let c = cluster(
        Some("7277694203142172922"),
        &three_nodes(),
        &[
            ("config", r#"{"pause":true}"#),
            (
                "failover",
                r#"{"leader":"postgresql0","member":"postgresql1","scheduled_at":"2026-01-01T10:00:00+00:00"}"#,
            ),
        ],
    );
    let out = render_list(&c, "batman", OutputFormat::Pretty, false, false);
    assert!(
        out.ends_with(
            "-----+\n Maintenance mode: on\n Switchover scheduled at: 2026-01-01T10:00:00+00:00\n                    from: postgresql0\n                      to: postgresql1\n"
        ),
        "{out}"
    );
    let json = render_list(&c, "batman", OutputFormat::Json, false, false);
    assert!(!json.contains("Maintenance"));
}
