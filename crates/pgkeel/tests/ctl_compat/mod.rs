//! Shared by the ctl_* comparison tests: Patroni's own `patronictl` and `pgkeelctl` run on the
//! same setup (a real etcd holding Patroni-format keys of a fake cluster whose members'
//! `api_url` point at in-process HTTP stubs on 127.0.0.1), and [`Fixture::compare`] asserts they
//! print the same stdout (timestamps normalised), exit alike, print the same error, send the
//! same requests (with the same `Authorization` headers) and leave the same `failover` and
//! `config` keys.
#![allow(clippy::unwrap_used)] // test support code outside #[test] fns
#![allow(dead_code)] // each test binary uses part of it

use pgkeel_testkit::etcd::{EtcdCluster, etcdctl_bin};
use pgkeel_testkit::patroni::{patronictl_bin, require_patronictl};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// One request the stub received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The stub port it reached (which member's API).
    pub port: u16,
    pub method: String,
    pub path: String,
    pub body: String,
}

#[derive(Default)]
struct StubState {
    requests: Vec<Recorded>,
    /// The `Authorization` header of each request, in the same order.
    authorizations: Vec<Option<String>>,
    status: u16,
    body: String,
}

/// Member REST APIs on 127.0.0.1 (one port per member) that record requests and answer with a
/// set status/body.
pub struct Stub {
    /// The listening ports.
    pub ports: Vec<u16>,
    /// The first port (all members' API in tests that need only one).
    pub port: u16,
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    pub fn start(n: usize) -> Stub {
        let state = Arc::new(Mutex::new(StubState::default()));
        let mut ports = Vec::new();
        for _ in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            ports.push(port);
            let s = state.clone();
            // The thread ends with the test process (the listener lives as long as it).
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    serve(conn, port, &s);
                }
            });
        }
        Stub {
            port: ports[0],
            ports,
            state,
        }
    }

    fn answer(&self, status: u16, body: &str) {
        let mut s = self.state.lock().unwrap();
        s.requests.clear();
        s.authorizations.clear();
        s.status = status;
        s.body = body.to_string();
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn authorizations(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().authorizations.clone()
    }
}

fn serve(conn: TcpStream, port: u16, state: &Mutex<StubState>) {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut authorization = None;
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
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(v.trim().to_string());
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (status, answer) = {
        let mut s = state.lock().unwrap();
        s.requests.push(Recorded {
            port,
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        s.authorizations.push(authorization);
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
pub struct Outcome {
    pub stdout: String,
    /// The `Error: ...` / `Aborted!` line (patronictl also logs warnings to stderr).
    pub error: Option<String>,
    pub code: Option<i32>,
    pub requests: Vec<Recorded>,
    /// The `Authorization` header of each request.
    pub authorizations: Vec<Option<String>>,
    pub failover_key: Option<String>,
    /// The `config` key afterwards, parsed (`None` when absent; a string if not JSON).
    pub config_key: Option<serde_json::Value>,
    /// The whole stderr (not compared: patronictl logs differently).
    pub stderr: Ignored,
}

/// A value that every other value equals (what [`Outcome`] holds but does not compare).
#[derive(Debug, Clone, Default)]
pub struct Ignored(pub String);

impl PartialEq for Ignored {
    fn eq(&self, _: &Ignored) -> bool {
        true
    }
}

impl Eq for Ignored {}

pub struct Fixture {
    pub etcd: EtcdCluster,
    pub stub: Stub,
    _dir: tempfile::TempDir,
    config: PathBuf,
    /// A port nothing listens on (an unreachable API).
    pub dead_port: u16,
}

pub fn etcdctl(etcd: &EtcdCluster, args: &[&str]) -> String {
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
    pub fn start() -> Fixture {
        Fixture::start_with("")
    }

    /// [`Fixture::start`] with `extra` YAML appended to the configuration file.
    pub fn start_with(extra: &str) -> Fixture {
        require_patronictl();
        let etcd = EtcdCluster::start(1).unwrap();
        let stub = Stub::start(3);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("patronictl.yaml");
        std::fs::write(
            &config,
            format!(
                "scope: batman\nnamespace: /service\netcd3:\n  hosts: {}\n{extra}",
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

    /// A directory that lives as long as the fixture (for scripts and files tests write).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The configuration file both tools are given with `-c`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Replaces the cluster's keys with `keys` (relative to `/service/batman/`).
    pub fn load(&self, keys: &[(String, String)]) {
        etcdctl(&self.etcd, &["del", "--prefix", "/service/"]);
        for (k, v) in keys {
            etcdctl(&self.etcd, &["put", &format!("/service/batman/{k}"), v]);
        }
    }

    pub fn run(
        &self,
        bin: &Path,
        keys: &[(String, String)],
        answer: (u16, &str),
        args: &[&str],
        input: &str,
    ) -> Outcome {
        self.run_with(bin, keys, answer, args, input, &[])
    }

    /// [`Fixture::run`] with extra environment variables.
    pub fn run_with(
        &self,
        bin: &Path,
        keys: &[(String, String)],
        answer: (u16, &str),
        args: &[&str],
        input: &str,
        env: &[(&str, &str)],
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
            .env_remove("EDITOR")
            .envs(env.iter().copied())
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
        let config_key = Some(etcdctl(
            &self.etcd,
            &["get", "/service/batman/config", "--print-value-only"],
        ))
        .map(|s| s.trim_end().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)));
        Outcome {
            stdout: normalise(&String::from_utf8_lossy(&out.stdout)),
            error,
            code: out.status.code(),
            requests: self.stub.requests(),
            authorizations: self.stub.authorizations(),
            failover_key,
            config_key,
            stderr: Ignored(stderr.into_owned()),
        }
    }

    /// Runs patronictl then pgkeelctl on the same keys and stub answer; asserts they agree and
    /// returns what they did.
    pub fn compare(
        &self,
        keys: &[(String, String)],
        answer: (u16, &str),
        args: &[&str],
        input: &str,
    ) -> Outcome {
        self.compare_with(keys, answer, args, input, &[])
    }

    /// [`Fixture::compare`] with extra environment variables for both tools.
    pub fn compare_with(
        &self,
        keys: &[(String, String)],
        answer: (u16, &str),
        args: &[&str],
        input: &str,
        env: &[(&str, &str)],
    ) -> Outcome {
        let patroni = self.run_with(&patronictl_bin(), keys, answer, args, input, env);
        let ours = self.run_with(
            Path::new(env!("CARGO_BIN_EXE_pgkeelctl")),
            keys,
            answer,
            args,
            input,
            env,
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

/// Hides the clock: `timestamp()` values and the prompts' "next hour" examples (switchover's
/// and restart's).
pub fn normalise(s: &str) -> String {
    let s = replace_pattern(s, "9999-99-99 99:99:99.99999", "<TS>");
    let s = replace_pattern(&s, "(e.g. 9999-99-99T99:99 )", "(e.g. <NEXT_HOUR> )");
    replace_pattern(&s, "(e.g. 9999-99-99T99:99) ", "(e.g. <NEXT_HOUR>) ")
}

/// Appends `extra` (`,"key":value...`) to the JSON of member `name` in `keys`.
pub fn extend_member(keys: &mut [(String, String)], name: &str, extra: &str) {
    let key = format!("members/{name}");
    let (_, value) = keys.iter_mut().find(|(k, _)| *k == key).unwrap();
    value.truncate(value.len() - 1);
    value.push_str(extra);
    value.push('}');
}

pub fn member(api_port: u16, pg_port: u16, role: &str, state: &str, tags: &str) -> String {
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
pub fn batman(api_port: u16, config: &str) -> Vec<(String, String)> {
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
