//! End-to-end: the local configuration file read again on a real cluster (3 etcd + 3
//! PostgreSQL + 3 agents on 127.0.0.1). `POST /reload` (what `patronictl reload` sends) and
//! SIGHUP apply new tags to the member key at once (a `nofailover` node drops out of the
//! candidates); a file that does not load is reported and the running configuration is kept.
//! SIGHUP applies parameters, `pg_hba`, REST credentials, and moves the REST API to a new
//! `restapi.listen` (staying put when the new address cannot be bound).

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

/// Replaces `from` (which must be there) by `to` in node `i`'s configuration file.
fn edit_config(c: &PgkeelCluster, i: usize, from: &str, to: &str) {
    let path = &c.node(i).config_path;
    let text = std::fs::read_to_string(path).expect("read the config file");
    assert!(text.contains(from), "no {from:?} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write the config file");
}

/// `POST /reload` on node `i` with these basic-auth credentials (none when `None`): the status.
fn reload_as(c: &PgkeelCluster, i: usize, auth: Option<(&str, &str)>) -> Result<u16, String> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = http.post(format!("{}/reload", c.node(i).api_url));
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    req.send()
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

fn sighup(c: &PgkeelCluster, i: usize) {
    let pid = c.agent_pid(i).expect("agent pid");
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP {pid}");
}

/// Patroni's `reload_config` applies the local file at run time: a reloadable parameter is in
/// effect without a restart, a restart-only one is reported as pending, `pg_hba` is rewritten,
/// the REST API checks the new credentials, and a key that needs an agent restart is named.
#[test]
fn e2e_sighup_applies_parameters_pg_hba_and_restapi_credentials() {
    require_tools();
    let c = PgkeelCluster::start(options("e2e-reload-apply")).expect("start the cluster");
    let leader = c.wait_healthy(Duration::from_secs(60)).expect("healthy");
    let r = (0..c.len()).find(|&i| i != leader).expect("a replica");
    let wait = Duration::from_secs(30);
    let poll = Duration::from_millis(200);
    let show = |sql: &str| c.psql(r, sql).map_err(|e| e.to_string());
    assert_eq!(show("SHOW work_mem").as_deref(), Ok("4MB"));

    edit_config(
        &c,
        r,
        "    shared_buffers: 16MB\n",
        "    shared_buffers: 24MB\n    work_mem: 7MB\n",
    );
    edit_config(
        &c,
        r,
        // The `postgresql` section's `pg_hba` (`bootstrap` has one too, before it).
        "127.0.0.1/32 md5\n  use_unix_socket",
        "127.0.0.1/32 md5\n    - host all all 127.0.0.2/32 md5\n  use_unix_socket",
    );
    edit_config(
        &c,
        r,
        "restapi:\n",
        "restapi:\n  authentication:\n    username: admin\n    password: old-pass\n",
    );
    // restapi.listen moved to an address in use (the leader's API): the bind fails, the API
    // stays where it was.
    let listen = format!("listen: {}", &c.node(r).api_url["http://".len()..]);
    let taken = format!("listen: {}", &c.node(leader).api_url["http://".len()..]);
    edit_config(&c, r, &listen, &taken);
    sighup(&c, r);

    // Reloadable: in effect at once, no restart.
    let started = show("SELECT pg_postmaster_start_time()").expect("start time");
    eventually(wait, poll, || match show("SHOW work_mem")? {
        v if v == "7MB" => Ok(()),
        v => Err(format!("work_mem = {v}")),
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
    assert_eq!(
        show("SELECT pg_postmaster_start_time()").as_deref(),
        Ok(started.as_str()),
        "not restarted"
    );
    // Restart-only: pending, with its old and new values, in /patroni.
    eventually(wait, poll, || {
        let (_, body) = c.api_get(r, "/patroni").map_err(|e| e.to_string())?;
        let doc: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let reason = &doc["pending_restart_reason"]["shared_buffers"];
        if doc["pending_restart"] == true && reason["new_value"] == "24MB" {
            Ok(())
        } else {
            Err(format!("/patroni: {body}"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
    // pg_hba.conf rewritten.
    assert_eq!(
        show("SELECT count(*) FROM pg_hba_file_rules WHERE address = '127.0.0.2'").as_deref(),
        Ok("1")
    );
    // restapi.authentication: required now.
    assert_eq!(reload_as(&c, r, None), Ok(401));
    assert_eq!(reload_as(&c, r, Some(("admin", "old-pass"))), Ok(202));
    // The address that could not be bound is named, and the API still answers here.
    assert!(
        c.logs(r).contains(&format!(
            "cannot start the REST API on {}",
            &taken["listen: ".len()..]
        )),
        "{}",
        c.log_tails(30)
    );
    edit_config(&c, r, &taken, &listen);

    // New credentials: the old password is refused, the new one accepted.
    edit_config(&c, r, "password: old-pass", "password: new-pass");
    sighup(&c, r);
    eventually(wait, poll, || {
        match reload_as(&c, r, Some(("admin", "old-pass")))? {
            401 => Ok(()),
            code => Err(format!("old password: {code}")),
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
    assert_eq!(reload_as(&c, r, Some(("admin", "new-pass"))), Ok(202));
    assert!(
        !c.logs(r).contains("new-pass") && !c.logs(r).contains("old-pass"),
        "a password reached the log"
    );

    // restapi.listen moved to a free address: the API answers there, no longer here.
    let port = pgkeel_testkit::ports::free_port();
    edit_config(&c, r, &listen, &format!("listen: 127.0.0.1:{port}"));
    sighup(&c, r);
    let at_new = || {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(1),
        )
        .and_then(|mut s| {
            use std::io::{Read, Write};
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer)
        })
        .map_err(|e| e.to_string())
    };
    eventually(wait, poll, || match at_new()? {
        a if a.starts_with("HTTP/1.1 200") => Ok(()),
        a => Err(a),
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
    eventually(wait, poll, || match c.api_get(r, "/liveness") {
        Err(_) => Ok(()),
        Ok(answer) => Err(format!("the old address still answers: {answer:?}")),
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.log_tails(30)));
}
