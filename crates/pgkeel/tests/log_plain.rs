//! With stderr redirected to a file, the real `pgkeel` binary writes plain `key=value` fields and no
//! ANSI escape codes (issue: log files read `started postgres \x1b[3mpid\x1b[0m\x1b[2m=\x1b[0m13826`).
//!
//! The agent is pointed at an etcd port nothing listens on, with `log.level: DEBUG`, so it logs the
//! structured `etcd range failed; switching endpoint endpoint=... error=...` line within a second,
//! without PostgreSQL or etcd.

use std::process::{Command, Stdio};
use std::time::Duration;

use pgkeel_testkit::eventually;
use pgkeel_testkit::ports::free_ports;

/// Kills the agent (by its PID, through the child handle) even when an assertion fails.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn log_fields_are_plain_key_value_when_stderr_is_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3).expect("free ports");
    let (api, etcd, pg) = (ports[0], ports[1], ports[2]);
    let config = dir.path().join("pgkeel.yml");
    std::fs::write(
        &config,
        format!(
            "scope: logtest\nname: node1\nlog:\n  level: DEBUG\n\
             restapi:\n  listen: 127.0.0.1:{api}\n  connect_address: 127.0.0.1:{api}\n\
             etcd3:\n  hosts: 127.0.0.1:{etcd}\n\
             postgresql:\n  listen: 127.0.0.1:{pg}\n  connect_address: 127.0.0.1:{pg}\n  data_dir: {data}\n\
             \x20 authentication:\n    superuser:\n      username: postgres\n      password: s\n\
             \x20   replication:\n      username: replicator\n      password: r\n",
            data = dir.path().join("data").display(),
        ),
    )
    .expect("write config");
    let log = dir.path().join("pgkeel.log");
    let stderr = std::fs::File::create(&log).expect("create log file");
    let child = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg(&config)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start pgkeel");
    let _agent = Agent(child);
    let wanted = format!("endpoint=http://127.0.0.1:{etcd}");
    let bytes = eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        let bytes = std::fs::read(&log).map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&bytes).contains("etcd range failed") {
            Ok(bytes)
        } else {
            Err(format!(
                "no etcd failure logged yet:\n{}",
                String::from_utf8_lossy(&bytes)
            ))
        }
    })
    .expect("the agent logs the unreachable etcd");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !bytes.contains(&0x1b),
        "ANSI escape codes in a log file:\n{text:?}"
    );
    assert!(text.contains(&wanted), "no plain `{wanted}` field:\n{text}");
}
