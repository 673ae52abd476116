//! End-to-end: the local configuration file read again on a real cluster (3 etcd + 3
//! PostgreSQL + 3 agents on 127.0.0.1). `POST /reload` (what `patronictl reload` sends) and
//! SIGHUP apply new tags to the member key at once (a `nofailover` node drops out of the
//! candidates); a file that does not load is reported and the running configuration is kept.

use std::time::Duration;

use pgkeel_testkit::{ClusterOptions, PgkeelCluster, eventually, require_tools};

fn options(scope: &str) -> ClusterOptions {
    pgkeel_testkit::fast_options!(scope)
}

/// Replaces the `tags:` line of node `i`'s configuration file.
fn set_tags_line(c: &PgkeelCluster, i: usize, line: &str) {
    let path = &c.node(i).config_path;
    let text = std::fs::read_to_string(path).expect("read the config file");
    let replaced: Vec<&str> = text
        .lines()
        .map(|l| if l.starts_with("tags:") { line } else { l })
        .collect();
    assert!(
        replaced.contains(&line),
        "no tags line in {}",
        path.display()
    );
    std::fs::write(path, replaced.join("\n") + "\n").expect("write the config file");
}

/// The tags node `i` publishes in its member key.
fn published_tags(c: &PgkeelCluster, i: usize) -> Result<serde_json::Value, String> {
    let name = &c.node(i).name;
    let value = c
        .etcd_get(&format!("members/{name}"))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no member key of {name}"))?;
    let member: serde_json::Value = serde_json::from_str(&value).map_err(|e| e.to_string())?;
    Ok(member.get("tags").cloned().unwrap_or_default())
}

#[test]
fn e2e_reload_and_sighup_apply_new_tags_and_keep_the_config_on_a_bad_file() {
    require_tools();
    let c = PgkeelCluster::start(options("e2e-reload")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let replica = (0..c.len()).find(|&i| i != leader).expect("a replica");

    // POST /reload: the new tags reach the member key and /patroni.
    set_tags_line(&c, replica, r#"tags: {"nofailover": true, "zone": "b"}"#);
    let (code, body) = c
        .api_request(replica, "POST", "/reload", "")
        .expect("POST /reload");
    assert_eq!((code, body.as_str()), (202, "reload scheduled"));
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match published_tags(&c, replica)? {
            t if t == serde_json::json!({"nofailover": true, "zone": "b"}) => Ok(()),
            t => Err(format!("member key tags: {t}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    let (_, status) = c.api_get(replica, "/patroni").expect("GET /patroni");
    assert!(status.contains(r#""nofailover":true"#), "{status}");
    // The core goes by it too: the node is no switchover candidate any more.
    let (code, body) = c
        .api_request(
            leader,
            "POST",
            "/switchover",
            &format!(
                r#"{{"leader":"{}","candidate":"{}"}}"#,
                c.node(leader).name,
                c.node(replica).name
            ),
        )
        .expect("POST /switchover");
    assert_eq!(code, 412, "{body}");

    // SIGHUP with a file that does not load: reported, the running tags stay.
    let path = c.node(replica).config_path.clone();
    let good = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, format!("{good}\nloop_wait: [unclosed\n")).expect("write");
    let pid = c.agent_pid(replica).expect("agent pid");
    let hup = |pid: u32| {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -HUP {pid}");
    };
    hup(pid);
    eventually(Duration::from_secs(20), Duration::from_millis(100), || {
        if c.logs(replica)
            .contains("reload failed, the running configuration is kept")
        {
            Ok(())
        } else {
            Err("no reload failure logged".to_string())
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
    assert_eq!(c.agent_pid(replica), Some(pid), "the agent did not survive");
    assert_eq!(
        published_tags(&c, replica),
        Ok(serde_json::json!({"nofailover": true, "zone": "b"}))
    );

    // SIGHUP with a good file: its tags are applied.
    std::fs::write(&path, good).expect("write");
    set_tags_line(&c, replica, r#"tags: {"zone": "c"}"#);
    hup(pid);
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || match published_tags(&c, replica)? {
            t if t == serde_json::json!({"zone": "c"}) => Ok(()),
            t => Err(format!("member key tags: {t}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(20)));
}
