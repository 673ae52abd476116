//! `pgkeelctl switchover` / `failover` against Patroni's own `patronictl` 4.1: both run on the
//! same setup (a real etcd holding Patroni-format keys of a fake cluster whose members'
//! `api_url` point at an in-process HTTP stub), and must print the same stdout (timestamps
//! normalised), exit alike, print the same error, send the same requests and write the same
//! `failover` key.
#![allow(clippy::unwrap_used)] // test support code outside #[test] fns
// Reference: patroni/ctl.py `_do_failover_or_switchover`, `manual_failover`; docs/patronictl.rst.

use pgkeel_testkit::etcd::{EtcdCluster, etcdctl_bin};
use pgkeel_testkit::patroni::{patronictl_bin, require_patronictl};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// One request the stub received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    method: String,
    path: String,
    body: String,
}

#[derive(Default)]
struct StubState {
    requests: Vec<Recorded>,
    status: u16,
    body: String,
}

/// A member REST API on 127.0.0.1 that records requests and answers with a set status/body.
struct Stub {
    port: u16,
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(StubState::default()));
        let s = state.clone();
        // The thread ends with the test process (the listener lives as long as it).
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                serve(conn, &s);
            }
        });
        Stub { port, state }
    }

    fn answer(&self, status: u16, body: &str) {
        let mut s = self.state.lock().unwrap();
        s.requests.clear();
        s.status = status;
        s.body = body.to_string();
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(conn: TcpStream, state: &Mutex<StubState>) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, answer) = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        (s.status, s.body.clone())
    };
    let mut conn = reader.into_inner();
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

/// What one tool did.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    /// The `Error: ...` / `Aborted!` line (patronictl also logs warnings to stderr).
    error: Option<String>,
    code: Option<i32>,
    requests: Vec<Recorded>,
    failover_key: Option<String>,
}

struct Fixture {
    etcd: EtcdCluster,
    stub: Stub,
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// A port nothing listens on (an unreachable API).
    dead_port: u16,
}

fn etcdctl(etcd: &EtcdCluster, args: &[&str]) -> String {
    let out = Command::new(etcdctl_bin())
        .arg(format!("--endpoints={}", etcd.client_urls().join(",")))
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

impl Fixture {
    fn start() -> Fixture {
        require_patronictl();
        let etcd = EtcdCluster::start(1).unwrap();
        let stub = Stub::start();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("patronictl.yaml");
        std::fs::write(
            &config,
            format!(
                "scope: batman\nnamespace: /service\netcd3:\n  hosts: {}\n",
                etcd.client_hosts().join(",")
            ),
        )
        .unwrap();
        let dead_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Fixture {
            etcd,
            stub,
            _dir: dir,
            config,
            dead_port,
        }
    }

    /// Replaces the cluster's keys with `keys` (relative to `/service/batman/`).
    fn load(&self, keys: &[(String, String)]) {
        etcdctl(&self.etcd, &["del", "--prefix", "/service/"]);
        for (k, v) in keys {
            etcdctl(&self.etcd, &["put", &format!("/service/batman/{k}"), v]);
        }
    }

    fn run(
        &self,
        bin: &Path,
        keys: &[(String, String)],
        answer: (u16, &str),
        args: &[&str],
        input: &str,
    ) -> Outcome {
        self.load(keys);
        self.stub.answer(answer.0, answer.1);
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env_remove("PATRONICTL_CONFIG_FILE")
            .env("TZ", "UTC")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error = stderr
            .lines()
            .find(|l| l.starts_with("Error:") || *l == "Aborted!")
            .map(str::to_string);
        let failover_key = Some(etcdctl(
            &self.etcd,
            &["get", "/service/batman/failover", "--print-value-only"],
        ))
        .map(|s| s.trim_end().to_string())
        .filter(|s| !s.is_empty());
        Outcome {
            stdout: normalise(&String::from_utf8_lossy(&out.stdout)),
            error,
            code: out.status.code(),
            requests: self.stub.requests(),
            failover_key,
        }
    }

    /// Runs patronictl then pgkeelctl on the same keys and stub answer; asserts they agree and
    /// returns what they did.
    fn compare(
        &self,
        keys: &[(String, String)],
        answer: (u16, &str),
        args: &[&str],
        input: &str,
    ) -> Outcome {
        let patroni = self.run(&patronictl_bin(), keys, answer, args, input);
        let ours = self.run(
            Path::new(env!("CARGO_BIN_EXE_pgkeelctl")),
            keys,
            answer,
            args,
            input,
        );
        assert_eq!(
            ours, patroni,
            "pgkeelctl {args:?} (left) differs from patronictl (right)\n--- pgkeelctl:\n{}\n--- patronictl:\n{}",
            ours.stdout, patroni.stdout
        );
        patroni
    }
}

/// Replaces every run of `pattern` (`9` = any digit, other characters literal) with `with`.
fn replace_pattern(s: &str, pattern: &str, with: &str) -> String {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    let matches_at = |i: usize| {
        i + p.len() <= s.len()
            && p.iter().zip(&s[i..]).all(|(pc, sc)| {
                if *pc == '9' {
                    sc.is_ascii_digit()
                } else {
                    pc == sc
                }
            })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        if matches_at(i) {
            out.push_str(with);
            i += p.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Hides the clock: `timestamp()` values and the prompt's "next hour" example.
fn normalise(s: &str) -> String {
    let s = replace_pattern(s, "9999-99-99 99:99:99.99999", "<TS>");
    replace_pattern(&s, "(e.g. 9999-99-99T99:99 )", "(e.g. <NEXT_HOUR> )")
}

fn member(api_port: u16, pg_port: u16, role: &str, state: &str, tags: &str) -> String {
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!(r#","tags":{tags}"#)
    };
    let lsn = if role == "primary" {
        r#""xlog_location":67108960"#.to_string()
    } else {
        r#""xlog_location":67108960,"replay_lsn":67108960,"receive_lsn":67108960,"replication_state":"streaming""#.to_string()
    };
    format!(
        r#"{{"conn_url":"postgres://127.0.0.1:{pg_port}/postgres","api_url":"http://127.0.0.1:{api_port}/patroni","state":"{state}","role":"{role}","version":"4.1.5","timeline":1,{lsn}{tags}}}"#
    )
}

/// A three-member cluster (`node0` leads) whose APIs are all at `api_port`.
fn batman(api_port: u16, config: &str) -> Vec<(String, String)> {
    vec![
        ("initialize".into(), "7277694203142172922".into()),
        ("config".into(), config.into()),
        ("leader".into(), "node0".into()),
        ("status".into(), r#"{"optime":67108960}"#.into()),
        (
            "members/node0".into(),
            member(api_port, 5432, "primary", "running", ""),
        ),
        (
            "members/node1".into(),
            member(api_port, 5433, "replica", "streaming", ""),
        ),
        (
            "members/node2".into(),
            member(
                api_port,
                5434,
                "replica",
                "streaming",
                r#"{"nofailover":true}"#,
            ),
        ),
    ]
}

const OK: (u16, &str) = (200, r#"Successfully switched over to "node1""#);

#[test]
fn forced_switchover_posts_like_patronictl_and_prints_both_topologies() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--leader",
            "node0",
            "--candidate",
            "node1",
            "--force",
        ],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert_eq!(
        o.requests,
        [Recorded {
            method: "POST".into(),
            path: "/switchover".into(),
            body: r#"{"candidate": "node1", "leader": "node0"}"#.into()
        }]
    );
    assert!(
        o.stdout
            .starts_with("Current cluster topology\n+ Cluster: batman"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("<TS> Successfully switched over to \"node1\"\n"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.stdout.matches("+ Cluster: batman").count(),
        2,
        "{}",
        o.stdout
    );

    // --primary is --leader; without --candidate, --force sends a null candidate.
    let o = f.compare(
        &keys,
        OK,
        &["switchover", "batman", "--primary", "node0", "--force"],
        "",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": null, "leader": "node0"}"#
    );
    // The server's refusal is printed and exits 0, without the second table.
    let o = f.compare(
        &keys,
        (412, "candidate name does not match with sync_standby"),
        &["switchover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout.ends_with(
            "Switchover failed, details: 412, candidate name does not match with sync_standby\n"
        ),
        "{}",
        o.stdout
    );
    // An old server without /switchover is asked /failover.
    let o = f.compare(
        &keys,
        (501, "Server does not support this operation"),
        &["switchover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(
        o.requests
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["/switchover", "/failover"]
    );
}

#[test]
fn interactive_switchover_prompts_and_confirms_like_patronictl() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    // Primary (default), candidate, when (default now), confirm.
    let o = f.compare(&keys, OK, &["switchover"], "\nnode1\n\ny\n");
    assert!(
        o.stdout.contains("Primary [node0]: Candidate ['node1'] []: When should the switchover take place (e.g. <NEXT_HOUR> )  [now]: Are you sure you want to switchover cluster batman, demoting current leader node0? [y/N]: "),
        "{}",
        o.stdout
    );
    assert_eq!(o.requests.len(), 1);
    // An empty candidate is allowed for a switchover (the server picks one).
    let o = f.compare(&keys, OK, &["switchover"], "\n\nnow\nyes\n");
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": "", "leader": "node0"}"#
    );
    // "no", an unknown answer then no, and end of input: nothing is sent.
    for input in ["\nnode1\n\nn\n", "\nnode1\n\nmaybe\n\n", "\nnode1\n"] {
        let o = f.compare(&keys, OK, &["switchover"], input);
        assert_eq!(o.code, Some(1), "{input:?}");
        assert!(o.requests.is_empty(), "{input:?}");
        assert!(o.error.is_some(), "{input:?}");
    }
    // A scheduled switchover asks to confirm the time and sends it.
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--candidate",
            "node1",
            "--scheduled",
            "2030-01-02T03:04+02:00",
        ],
        "\ny\n",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": "node1", "leader": "node0", "scheduled_at": "2030-01-02T03:04:00+02:00"}"#
    );
    assert!(o.stdout.contains("Are you sure you want to schedule switchover of cluster batman at 2030-01-02T03:04:00+02:00, demoting current leader node0? [y/N]: "), "{}", o.stdout);
    // Without an offset the local time zone (TZ=UTC here) is used.
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--candidate",
            "node1",
            "--scheduled",
            "2030-01-02 03:04:05",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.requests[0].body,
        r#"{"candidate": "node1", "leader": "node0", "scheduled_at": "2030-01-02T03:04:05+00:00"}"#
    );
}

#[test]
fn refused_switchovers_fail_with_patronictls_errors() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    let cases: [(&[&str], &str); 6] = [
        (
            &["switchover", "--leader", "node1", "--force"],
            "Error: Member node1 is not the leader of cluster batman",
        ),
        (
            &["switchover", "--candidate", "node0", "--force"],
            "Error: Member node0 is already the leader of cluster batman",
        ),
        (
            &["switchover", "--candidate", "node2", "--force"],
            "Error: Member node2 does not exist in cluster batman or is tagged as nofailover",
        ),
        (
            &["switchover", "--candidate", "nodeX", "--force"],
            "Error: Member nodeX does not exist in cluster batman or is tagged as nofailover",
        ),
        (
            &["switchover", "--scheduled", "next tuesday", "--force"],
            "Error: Unable to parse scheduled timestamp (next tuesday). It should be in an unambiguous format (e.g. ISO 8601)",
        ),
        (
            &["failover", "--force"],
            "Error: Failover could be performed only to a specific candidate",
        ),
    ];
    for (args, error) in cases {
        let o = f.compare(&keys, OK, args, "");
        assert_eq!(
            (o.code, o.error.as_deref()),
            (Some(1), Some(error)),
            "{args:?}"
        );
        assert!(o.requests.is_empty(), "{args:?}");
    }
    // No leader key: a switchover is refused.
    let no_leader: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader" && k != "members/node0")
        .cloned()
        .collect();
    let o = f.compare(&no_leader, OK, &["switchover", "--force"], "");
    assert_eq!(
        o.error.as_deref(),
        Some("Error: This cluster has no leader")
    );
    // Only nofailover replicas: no candidates.
    let lone: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "members/node1")
        .cloned()
        .collect();
    let o = f.compare(
        &lone,
        OK,
        &["failover", "--candidate", "node2", "--force"],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: No candidates found to failover to")
    );
    // Maintenance mode: no scheduled switchover.
    let paused = batman(f.stub.port, r#"{"ttl":30,"pause":true}"#);
    let o = f.compare(
        &paused,
        OK,
        &["switchover", "--scheduled", "2030-01-02T03:04Z", "--force"],
        "",
    );
    assert_eq!(
        o.error.as_deref(),
        Some("Error: Can't schedule switchover in the paused state")
    );
}

#[test]
fn failover_posts_to_the_leader_or_the_candidate_and_warns_about_async_nodes() {
    let f = Fixture::start();
    let keys = batman(f.stub.port, r#"{"ttl":30}"#);
    let o = f.compare(
        &keys,
        (200, r#"Successfully failed over to "node1""#),
        &["failover", "--candidate", "node1"],
        "y\n",
    );
    assert_eq!(o.requests[0].path, "/failover");
    assert_eq!(o.requests[0].body, r#"{"candidate": "node1"}"#);
    assert!(o.stdout.contains("Are you sure you want to failover cluster batman, demoting current leader node0? [y/N]: "), "{}", o.stdout);

    // Without a leader the candidate's API is asked and nobody is demoted.
    let no_leader: Vec<_> = keys
        .iter()
        .filter(|(k, _)| k != "leader" && k != "members/node0")
        .cloned()
        .collect();
    let o = f.compare(
        &no_leader,
        (200, "ok"),
        &["failover", "batman"],
        "node1\ny\n",
    );
    assert!(
        o.stdout
            .contains("Are you sure you want to failover cluster batman? [y/N]: "),
        "{}",
        o.stdout
    );
    assert_eq!(o.requests.len(), 1);

    // Synchronous mode, candidate not in /sync: one more confirmation; "n" aborts.
    let mut sync = batman(f.stub.port, r#"{"ttl":30,"synchronous_mode":true}"#);
    sync.push((
        "sync".into(),
        r#"{"leader":"node0","sync_standby":"node2"}"#.into(),
    ));
    let o = f.compare(&sync, OK, &["failover", "--candidate", "node1"], "n\n");
    assert_eq!(o.error.as_deref(), Some("Error: Aborting failover"));
    assert!(
        o.stdout
            .contains("Are you sure you want to failover to the asynchronous node node1? [y/N]: "),
        "{}",
        o.stdout
    );
    let o = f.compare(&sync, OK, &["failover", "--candidate", "node1"], "y\ny\n");
    assert_eq!(o.requests.len(), 1);
}

#[test]
fn unreachable_api_falls_back_to_the_failover_key() {
    let f = Fixture::start();
    let keys = batman(f.dead_port, r#"{"ttl":30}"#);
    let o = f.compare(
        &keys,
        OK,
        &["switchover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout
            .contains("<TS> Could not switchover using Patroni api, falling back to DCS\n"),
        "{}",
        o.stdout
    );
    assert_eq!(
        o.failover_key.as_deref(),
        Some(r#"{"leader":"node0","member":"node1"}"#)
    );
    let o = f.compare(
        &keys,
        OK,
        &[
            "switchover",
            "--scheduled",
            "2030-01-02T03:04:05.25-03:30",
            "--force",
        ],
        "",
    );
    assert_eq!(
        o.failover_key.as_deref(),
        Some(r#"{"leader":"node0","scheduled_at":"2030-01-02T03:04:05.250000-03:30"}"#)
    );
    let o = f.compare(
        &keys,
        OK,
        &["failover", "--candidate", "node1", "--force"],
        "",
    );
    assert_eq!(o.failover_key.as_deref(), Some(r#"{"member":"node1"}"#));
}
