//! End-to-end: the member commands of `pgkeelctl` and of Patroni's own `patronictl` 4.1 on one
//! real cluster (3 etcd + 3 PostgreSQL 15 + 3 agents on 127.0.0.1), step by step: `query`
//! (both tools print the same rows and error rows), `restart` of one member and of every
//! replica (`--role replica`), a scheduled restart flushed with `flush CLUSTER restart`,
//! `reinit` of a replica (re-cloned, streaming again; the leader is refused) and `reload`.
// Reference: patroni/ctl.py `query`, `restart`, `flush`, `reinit`, `reload`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pgkeel_testkit::nodeconf::SUPERUSER_PASSWORD;
use pgkeel_testkit::patroni::{patronictl_bin, require_patronictl};
use pgkeel_testkit::{PgkeelCluster, require_tools, wait};

const SCOPE: &str = "e2e-ctl";

/// The two tools under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Pgkeelctl,
    Patronictl,
}

impl Tool {
    fn bin(self) -> PathBuf {
        match self {
            Tool::Pgkeelctl => PathBuf::from(env!("CARGO_BIN_EXE_pgkeelctl")),
            Tool::Patronictl => patronictl_bin(),
        }
    }
}

/// Runs `tool -c <node0 config> ARGS` with `input` on stdin and `env` on top of an
/// environment without libpq's variables (no password file either).
fn run(c: &PgkeelCluster, tool: Tool, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(tool.bin());
    cmd.arg("-c")
        .arg(&c.node(0).config_path)
        .args(args)
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env("LANG", "C.UTF-8")
        .env("PGPASSFILE", "/nonexistent/pgpass");
    for var in [
        "PGPASSWORD",
        "PGUSER",
        "PGDATABASE",
        "PGAPPNAME",
        "PGSSLMODE",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tool");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("wait for the tool")
}

/// [`run`] that must succeed; its stdout.
fn ok(c: &PgkeelCluster, tool: Tool, args: &[&str]) -> String {
    let out = run(c, tool, args, "", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool:?} {args:?} failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log_tails(20)
    );
    stdout
}

/// Hides `timestamp(0)` values (`2024-01-02 03:04:05` at the start of a line).
fn hide_time(s: &str) -> String {
    s.lines()
        .map(|l| {
            let head: Vec<char> = l.chars().take(19).collect();
            let is_time = head.len() == 19
                && head.iter().enumerate().all(|(i, ch)| match i {
                    4 | 7 => *ch == '-',
                    10 => *ch == ' ',
                    13 | 16 => *ch == ':',
                    _ => ch.is_ascii_digit(),
                });
            if is_time {
                format!("<TIME>{}\n", l.chars().skip(19).collect::<String>())
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// Runs `query` through both tools and asserts the same exit code and stdout (time hidden);
/// returns that stdout.
fn same_query(c: &PgkeelCluster, args: &[&str], input: &str, env: &[(&str, &str)]) -> String {
    let mut full = vec!["query", SCOPE];
    full.extend_from_slice(args);
    let ours = run(c, Tool::Pgkeelctl, &full, input, env);
    let theirs = run(c, Tool::Patronictl, &full, input, env);
    let text = |o: &Output| hide_time(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        (ours.status.code(), text(&ours)),
        (theirs.status.code(), text(&theirs)),
        "query {args:?}: pgkeelctl (left) differs from patronictl (right); stderr:\n{}\n---\n{}",
        String::from_utf8_lossy(&ours.stderr),
        String::from_utf8_lossy(&theirs.stderr)
    );
    text(&theirs)
}

/// The `scheduled_restart` of member `name`'s key, if any.
fn scheduled_restart(c: &PgkeelCluster, name: &str) -> Result<Option<String>, String> {
    let text = c
        .etcd_get(&format!("members/{name}"))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no member key of {name}"))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(v.get("scheduled_restart").map(|s| s.to_string()))
}

/// Every postmaster PID, by node.
fn pids(c: &PgkeelCluster) -> Vec<Option<u32>> {
    (0..c.len()).map(|i| c.postmaster_pid(i)).collect()
}

#[test]
fn e2e_ctl_query_restart_flush_reinit_reload_through_both_tools() {
    require_tools();
    require_patronictl();
    let c = PgkeelCluster::start(pgkeel_testkit::fast_options!(SCOPE)).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replicas: Vec<usize> = (0..c.len()).filter(|&i| i != leader).collect();
    let name = |i: usize| c.node(i).name.clone();
    let (lname, r0, r1) = (name(leader), name(replicas[0]), name(replicas[1]));
    let auth = [("PGPASSWORD", SUPERUSER_PASSWORD)];
    let su = ["-U", "postgres", "-d", "postgres"];
    let with_su =
        |args: &[&str]| -> Vec<String> { su.iter().chain(args).map(|s| s.to_string()).collect() };
    let q = |args: &[&str], input: &str, env: &[(&str, &str)]| {
        let args = with_su(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        same_query(&c, &args, input, env)
    };

    // --- query: the leader by default, values as psycopg2 gives them to Python.
    let sql = "SELECT 1 AS one, 'x'::text AS t, true AS b, NULL::int AS n, 1.5::float8 AS f, \
               1e16::float8 AS big, 2.50::numeric AS d, 'f'::text AS ft";
    assert_eq!(
        q(&["-c", sql], "", &auth),
        "one\tt\tb\tn\tf\tbig\td\tft\n1\tx\tTrue\tNone\t1.5\t1e+16\t2.50\tf\n"
    );
    let in_recovery = "SELECT pg_catalog.pg_is_in_recovery() AS r";
    assert_eq!(q(&["-c", in_recovery], "", &auth), "r\nFalse\n");
    assert_eq!(
        q(&["-r", "replica", "-c", in_recovery], "", &auth),
        "r\nTrue\n"
    );
    assert_eq!(
        q(&["-r", "primary", "-c", in_recovery], "", &auth),
        "r\nFalse\n"
    );
    assert_eq!(q(&["-m", &r1, "-c", in_recovery], "", &auth), "r\nTrue\n");
    // The only leader is no standby leader; the checked role of a named member is not asked.
    assert_eq!(
        q(&["-r", "standby-leader", "-c", "SELECT 1"], "", &auth),
        "<TIME>\tNo connection to role 'standby-leader' is available\n"
    );
    // Only the last statement's rows; autocommit, as Patroni's psycopg.connect sets it.
    assert_eq!(
        q(
            &["-c", "SELECT 1 AS a; SELECT 2 AS b, 'two' AS c"],
            "",
            &auth
        ),
        "b\tc\n2\ttwo\n"
    );
    assert_eq!(
        q(
            &["-c", "CREATE TABLE IF NOT EXISTS made_by_query (x int)"],
            "",
            &auth
        ),
        "<TIME>\tERROR, SQLSTATE: no results to fetch\n"
    );
    assert_eq!(
        c.psql(leader, "SELECT to_regclass('made_by_query') IS NOT NULL")
            .expect("psql"),
        "t",
        "the query was not committed"
    );
    assert_eq!(
        q(&["-c", "SELECT * FROM no_such_table"], "", &auth),
        "<TIME>\tERROR, SQLSTATE: 42P01\n"
    );
    q(
        &[
            "-c",
            "SELECT '2024-01-02 03:04:05.12+00'::timestamptz AS ts, now() > '2000-01-01' AS y",
        ],
        "",
        &auth,
    );
    let json = q(
        &[
            "--format",
            "json",
            "-c",
            "SELECT 1 AS a, NULL AS b, true AS c, 'x' AS d",
        ],
        "",
        &auth,
    );
    assert_eq!(
        json,
        "[{\"a\": 1, \"b\": null, \"c\": true, \"d\": \"x\"}]\n"
    );
    q(
        &["--format", "yaml", "-c", "SELECT 1 AS a, 'x' AS d"],
        "",
        &auth,
    );
    q(
        &["--format", "pretty", "-c", "SELECT 1 AS a, 'x' AS d"],
        "",
        &auth,
    );
    q(
        &["--delimiter", ",", "-c", "SELECT 1 AS a, 'x' AS d"],
        "",
        &auth,
    );
    let file = c.base_dir().join("query.sql");
    std::fs::write(&file, "SELECT current_user AS u, current_database() AS db").expect("write");
    assert_eq!(
        q(&["--file", file.to_str().expect("utf-8 path")], "", &auth),
        "u\tdb\npostgres\tpostgres\n"
    );
    // The password from the prompt (stdin without a terminal), from nowhere, and a wrong one.
    assert_eq!(
        q(
            &["--password", "-c", "SELECT 7 AS seven"],
            &format!("{SUPERUSER_PASSWORD}\n"),
            &[]
        ),
        "seven\n7\n"
    );
    let none = q(&["-c", "SELECT 1"], "", &[]);
    assert!(none.contains("no password supplied"), "{none}");
    let wrong = q(
        &["-c", "SELECT 1"],
        "",
        &[("PGPASSWORD", "not-the-password")],
    );
    assert!(
        wrong.contains("password authentication failed for user \"postgres\""),
        "{wrong}"
    );
    assert!(!wrong.contains("not-the-password"), "{wrong}");

    // --- restart one member, through each tool: a new postmaster, streaming again.
    for (tool, r) in [
        (Tool::Pgkeelctl, replicas[0]),
        (Tool::Patronictl, replicas[1]),
    ] {
        let before = pids(&c);
        let out = ok(&c, tool, &["restart", SCOPE, &name(r), "--force"]);
        assert!(
            out.contains(&format!("Success: restart on member {}", name(r))),
            "{tool:?}: {out}"
        );
        let after = pids(&c);
        assert_ne!(after[r], before[r], "{tool:?} did not restart {}", name(r));
        assert!(after[r].is_some());
        assert_eq!(
            after[leader], before[leader],
            "the leader was restarted too"
        );
        assert_eq!(
            c.wait_healthy(Duration::from_secs(30)).expect("healthy"),
            leader
        );
    }

    // --- restart every replica: --role replica leaves the leader alone.
    let before = pids(&c);
    let out = ok(
        &c,
        Tool::Pgkeelctl,
        &["restart", SCOPE, "--role", "replica", "--force"],
    );
    for r in [&r0, &r1] {
        assert!(
            out.contains(&format!("Success: restart on member {r}")),
            "{out}"
        );
    }
    assert!(
        !out.contains(&format!("restart on member {lname}")),
        "{out}"
    );
    let after = pids(&c);
    for &r in &replicas {
        assert_ne!(after[r], before[r], "replica {} not restarted", name(r));
    }
    assert_eq!(after[leader], before[leader], "the leader was restarted");
    assert_eq!(
        c.wait_healthy(Duration::from_secs(30)).expect("healthy"),
        leader
    );

    // --- a scheduled restart, flushed by the other tool: nothing is restarted.
    let before = pids(&c);
    for (scheduler, flusher, r) in [
        (Tool::Pgkeelctl, Tool::Patronictl, &r0),
        (Tool::Patronictl, Tool::Pgkeelctl, &r1),
    ] {
        let out = ok(
            &c,
            scheduler,
            &[
                "restart",
                SCOPE,
                r,
                "--scheduled",
                "2099-01-01T00:00:00+00:00",
                "--force",
            ],
        );
        assert!(
            out.contains(&format!("Success: restart scheduled on member {r}")),
            "{scheduler:?}: {out}"
        );
        wait(
            &c,
            "the scheduled restart in the member key",
            Duration::from_secs(15),
            || match scheduled_restart(&c, r)? {
                Some(s) if s.contains("2099-01-01") => Ok(()),
                other => Err(format!("scheduled_restart: {other:?}")),
            },
        );
        let out = ok(&c, flusher, &["flush", SCOPE, "restart", "--force"]);
        assert!(
            out.contains(&format!("Success: flush scheduled restart for member {r}")),
            "{flusher:?}: {out}"
        );
        assert!(
            out.contains(&format!("No scheduled restart for member {lname}")),
            "{out}"
        );
        wait(
            &c,
            "the scheduled restart gone",
            Duration::from_secs(15),
            || match scheduled_restart(&c, r)? {
                None => Ok(()),
                Some(s) => Err(format!("still scheduled: {s}")),
            },
        );
    }
    assert_eq!(pids(&c), before, "a flushed restart restarted something");

    // --- reinit: the leader is refused alike; a replica is re-cloned by each tool.
    let refused: Vec<(Option<i32>, String)> = [Tool::Pgkeelctl, Tool::Patronictl]
        .into_iter()
        .map(|tool| {
            let out = run(&c, tool, &["reinit", SCOPE, &lname, "--force"], "", &[]);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let error = stderr
                .lines()
                .find(|l| l.starts_with("Error:"))
                .unwrap_or(&stderr);
            (out.status.code(), error.to_string())
        })
        .collect();
    assert_eq!(
        refused[0], refused[1],
        "pgkeelctl (left) and patronictl (right) differ"
    );
    assert_eq!(
        refused[1],
        (Some(1), "Error: No replica among provided members".into())
    );
    c.psql(leader, "CREATE TABLE before_reinit AS SELECT 42 AS x")
        .expect("write on the leader");
    for (tool, r) in [
        (Tool::Pgkeelctl, replicas[0]),
        (Tool::Patronictl, replicas[1]),
    ] {
        let marker = c.node(r).data_dir.join("pgkeel-test-marker");
        std::fs::write(&marker, b"old").expect("marker");
        let mut args = vec!["reinit", SCOPE, c.node(r).name.as_str(), "--force"];
        if tool == Tool::Patronictl {
            args.push("--wait");
        }
        let out = ok(&c, tool, &args);
        assert!(
            out.contains(&format!("Success: reinitialize for member {}", name(r))),
            "{tool:?}: {out}"
        );
        if tool == Tool::Patronictl {
            assert!(
                out.contains(&format!("Reinitialize is completed on: {}", name(r))),
                "{out}"
            );
        }
        wait(&c, "the re-clone", Duration::from_secs(30), || {
            if marker_gone(&marker) {
                Ok(())
            } else {
                Err(format!("{} still has the old data directory", name(r)))
            }
        });
        assert_eq!(
            c.wait_healthy(Duration::from_secs(60)).expect("healthy"),
            leader
        );
        wait(
            &c,
            "the table on the re-cloned replica",
            Duration::from_secs(15),
            || {
                c.psql(r, "SELECT x FROM before_reinit")
                    .map_err(|e| e.to_string())
                    .and_then(|v| if v == "42" { Ok(()) } else { Err(v) })
            },
        );
    }

    // --- reload: every agent reads its file again, asked by each tool.
    let reloads = |c: &PgkeelCluster| -> Vec<usize> {
        (0..c.len())
            .map(|i| c.logs(i).matches("Reloading configuration from").count())
            .collect()
    };
    for tool in [Tool::Pgkeelctl, Tool::Patronictl] {
        let before = reloads(&c);
        let out = ok(&c, tool, &["reload", SCOPE, "--force"]);
        for i in 0..c.len() {
            assert!(
                out.contains(&format!("Reload request received for member {}", name(i))),
                "{tool:?}: {out}"
            );
        }
        wait(
            &c,
            "every agent logging the reload",
            Duration::from_secs(15),
            || {
                let now = reloads(&c);
                if now.iter().zip(&before).all(|(n, b)| n > b) {
                    Ok(())
                } else {
                    Err(format!("reloads logged: {before:?} -> {now:?}"))
                }
            },
        );
    }
    assert_eq!(
        c.wait_healthy(Duration::from_secs(30)).expect("healthy"),
        leader
    );
}

/// The marker is gone (the directory it was in was replaced).
fn marker_gone(marker: &Path) -> bool {
    !marker.exists()
}
