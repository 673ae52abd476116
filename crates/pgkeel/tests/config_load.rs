//! Loading valid configurations: the seed tutorial config, env overrides, YAML 1.1 booleans,
//! initdb forms, warnings for unknown/unsupported keys, and secrets kept out of Debug output.

use std::path::{Path, PathBuf};

use pgkeel::config::{
    LoadedConfig, PrimaryRoleName, ShellCommand, load_config, load_config_from_env_only,
    load_config_from_str, validate_filesystem,
};
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/config");

fn fixture(name: &str) -> (String, PathBuf) {
    let path = Path::new(FIXTURES).join(name);
    (
        std::fs::read_to_string(&path).expect("fixture readable"),
        path,
    )
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn load_str(text: &str, pairs: &[(&str, &str)]) -> LoadedConfig {
    load_config_from_str(text, Path::new("node.yml"), &env(pairs)).expect("config loads")
}

fn minimal() -> String {
    fixture("minimal.yml").0
}

fn warnings(l: &LoadedConfig) -> Vec<String> {
    l.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn seed_tutorial_config_loads() {
    let (text, path) = fixture("pgcluster1.yml");
    let l = load_config_from_str(&text, &path, &[]).unwrap();
    let c = &l.config;
    assert_eq!(c.scope, "postgresql");
    assert_eq!(c.namespace, "/service/");
    assert_eq!(c.name, "postgresql1");
    assert_eq!(c.restapi.listen, "10.0.2.21:8008");
    assert_eq!(c.restapi.connect_address, "10.0.2.21:8008");
    assert_eq!(c.restapi.authentication, None);
    assert_eq!(c.etcd.hosts, vec!["10.0.2.21:2379"]);
    assert_eq!(c.etcd.endpoints(), vec!["http://10.0.2.21:2379"]);
    assert_eq!(c.bootstrap.dcs["ttl"], json!(30));
    assert_eq!(c.bootstrap.dcs["loop_wait"], json!(10));
    assert_eq!(c.bootstrap.dcs["retry_timeout"], json!(10));
    assert_eq!(c.bootstrap.dcs["maximum_lag_on_failover"], json!(1048576));
    assert_eq!(c.bootstrap.dcs["postgresql"]["use_pg_rewind"], json!(true));
    assert_eq!(c.bootstrap.initdb, vec!["--encoding=UTF8"]);
    assert_eq!(c.bootstrap.pg_hba.len(), 5);
    assert_eq!(c.bootstrap.pg_hba[4], "host all all 0.0.0.0/0 md5");
    assert_eq!(c.bootstrap.users.len(), 1);
    assert_eq!(c.bootstrap.users[0].name, "admin");
    assert_eq!(c.bootstrap.users[0].password.as_deref(), Some("postgres"));
    assert_eq!(c.bootstrap.users[0].options, vec!["createrole", "createdb"]);
    let pg = &c.postgresql;
    assert_eq!(pg.listen, "0.0.0.0:15432");
    assert_eq!(pg.connect_address, "10.0.2.21:15432");
    assert_eq!(pg.bin_dir, Some(PathBuf::from("/usr/pgsql-11/bin")));
    assert_eq!(pg.data_dir, PathBuf::from("/var/lib/pgsql/11/data"));
    assert_eq!(pg.pgpass, PathBuf::from("/tmp/pgpass1"));
    assert_eq!(pg.authentication.replication.username, "repuser");
    assert_eq!(
        pg.authentication.replication.password.as_deref(),
        Some("reppass")
    );
    assert_eq!(pg.authentication.superuser.username, "postgres");
    assert_eq!(pg.authentication.rewind, None);
    assert_eq!(pg.parameters["unix_socket_directories"], json!("."));
    assert_eq!(
        pg.callbacks.on_start.as_ref().map(ShellCommand::raw),
        Some("/var/lib/pgsql/patroni_callback.sh")
    );
    assert_eq!(
        pg.callbacks.on_role_change.as_ref().map(ShellCommand::raw),
        Some("/var/lib/pgsql/patroni_callback.sh")
    );
    assert_eq!(pg.callbacks.on_restart, None);
    assert!(
        !pg.use_pg_rewind,
        "local use_pg_rewind is unset; the dynamic one is in bootstrap.dcs"
    );
    assert_eq!(pg.pg_ctl_timeout, 60);
    assert!(!c.tags.nofailover && !c.tags.noloadbalance && !c.tags.clonefrom && !c.tags.nosync);
    assert!(
        c.tags.published.is_empty(),
        "false bool tags are not published"
    );
    assert_eq!(c.log_level, "INFO");

    let w = warnings(&l);
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w.iter()
            .any(|m| m.contains("pgcluster1.yml") && m.contains("`etcd`") && m.contains("etcd v3")),
        "{w:#?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("`bootstrap.users`") && m.contains("deprecated")),
        "{w:#?}"
    );
    assert!(w.iter().all(|m| !m.contains('\n')));
}

#[test]
fn defaults() {
    let l = load_str(&minimal(), &[]);
    let c = &l.config;
    assert_eq!(c.namespace, "/service");
    assert_eq!(
        c.restapi.connect_address, "127.0.0.1:8008",
        "defaults to listen"
    );
    assert_eq!(c.etcd.protocol, "http");
    assert_eq!(c.postgresql.pg_ctl_timeout, 60);
    assert_eq!(c.postgresql.pgpass, PathBuf::from("/tmp/pgpass-node1"));
    assert!(!c.postgresql.use_unix_socket);
    assert_eq!(c.log_level, "INFO");
    let with_home = load_str(&minimal(), &[("HOME", "/home/pg")]);
    assert_eq!(
        with_home.config.postgresql.pgpass,
        PathBuf::from("/home/pg/pgpass")
    );
}

#[test]
fn every_env_override_applies() {
    let l = load_str(
        &minimal(),
        &[
            ("PATRONI_NAME", "n2"),
            ("PATRONI_SCOPE", "s2"),
            ("PATRONI_NAMESPACE", "/ns"),
            ("PATRONI_LOG_LEVEL", "debug"),
            ("PATRONI_RESTAPI_LISTEN", "0.0.0.0:9008"),
            ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.0.0.2:9008"),
            ("PATRONI_RESTAPI_USERNAME", "api"),
            ("PATRONI_RESTAPI_PASSWORD", "apipw"),
            ("PATRONI_CTL_USERNAME", "ctl"),
            ("PATRONI_CTL_PASSWORD", "ctlpw"),
            ("PATRONI_POSTGRESQL_LISTEN", "0.0.0.0:6432"),
            ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "10.0.0.2:6432"),
            ("PATRONI_POSTGRESQL_DATA_DIR", "/data2"),
            ("PATRONI_POSTGRESQL_PGPASS", "/tmp/pp"),
            ("PATRONI_POSTGRESQL_BIN_DIR", "/usr/lib/postgresql/16/bin"),
            ("PATRONI_SUPERUSER_USERNAME", "su"),
            ("PATRONI_SUPERUSER_PASSWORD", "12345"),
            ("PATRONI_REPLICATION_USERNAME", "rep"),
            ("PATRONI_REPLICATION_PASSWORD", "reppw"),
            ("PATRONI_REWIND_USERNAME", "rw"),
            ("PATRONI_REWIND_PASSWORD", "rwpw"),
            ("PATRONI_ETCD3_HOSTS", "[\"a:2379\",\"b:2379\"]"),
            ("PATRONI_ETCD3_PROTOCOL", "http"),
            ("PATRONI_ETCD3_USERNAME", "eu"),
            ("PATRONI_ETCD3_PASSWORD", "epw"),
            ("PATRONI_UNKNOWN_THING", "ignored"),
        ],
    );
    let c = &l.config;
    assert_eq!(
        (c.name.as_str(), c.scope.as_str(), c.namespace.as_str()),
        ("n2", "s2", "/ns")
    );
    assert_eq!(c.log_level, "DEBUG");
    assert_eq!(c.restapi.listen, "0.0.0.0:9008");
    assert_eq!(c.restapi.connect_address, "10.0.0.2:9008");
    let a = c.restapi.authentication.as_ref().unwrap();
    assert_eq!((a.username.as_str(), a.password.as_str()), ("api", "apipw"));
    let a = c.ctl.authentication.as_ref().unwrap();
    assert_eq!((a.username.as_str(), a.password.as_str()), ("ctl", "ctlpw"));
    let pg = &c.postgresql;
    assert_eq!(pg.listen, "0.0.0.0:6432");
    assert_eq!(pg.connect_address, "10.0.0.2:6432");
    assert_eq!(pg.data_dir, PathBuf::from("/data2"));
    assert_eq!(pg.pgpass, PathBuf::from("/tmp/pp"));
    assert_eq!(
        pg.bin_dir,
        Some(PathBuf::from("/usr/lib/postgresql/16/bin"))
    );
    assert_eq!(pg.authentication.superuser.username, "su");
    assert_eq!(
        pg.authentication.superuser.password.as_deref(),
        Some("12345")
    );
    assert_eq!(pg.authentication.replication.username, "rep");
    assert_eq!(
        pg.authentication.replication.password.as_deref(),
        Some("reppw")
    );
    let rw = pg.authentication.rewind.as_ref().unwrap();
    assert_eq!(
        (rw.username.as_str(), rw.password.as_deref()),
        ("rw", Some("rwpw"))
    );
    let e = &c.etcd;
    assert_eq!(e.hosts, vec!["a:2379", "b:2379"]);
    assert_eq!(e.endpoints(), vec!["http://a:2379", "http://b:2379"]);
    assert_eq!(e.username.as_deref(), Some("eu"));
    assert_eq!(e.password.as_deref(), Some("epw"));
}

#[test]
fn etcd_hosts_forms_and_host_and_url() {
    let base = minimal().replace("  hosts: 127.0.0.1:2379\n", "");
    let l = load_str(&base, &[("PATRONI_ETCD3_HOSTS", "a:2379,b:2379")]);
    assert_eq!(l.config.etcd.hosts, vec!["a:2379", "b:2379"]);
    let l = load_str(&base, &[("PATRONI_ETCD3_HOST", "c")]);
    assert_eq!(
        l.config.etcd.hosts,
        vec!["c:2379"],
        "port defaults to 2379 like Patroni"
    );
    let l = load_str(&base, &[("PATRONI_ETCD3_URL", "http://d:2380")]);
    assert_eq!(l.config.etcd.endpoints(), vec!["http://d:2380"]);
    // Patroni's precedence: proxy, then url, then hosts, then host.
    let l = load_str(
        &minimal(),
        &[
            ("PATRONI_ETCD3_URL", "http://u:2379"),
            ("PATRONI_ETCD3_PROXY", "http://p:23790"),
        ],
    );
    assert_eq!(l.config.etcd.hosts, vec!["p:23790"]);
    let l = load_str(&minimal(), &[("PATRONI_ETCD3_URL", "http://u:2379")]);
    assert_eq!(l.config.etcd.hosts, vec!["u:2379"]);
    let l = load_str(
        &minimal().replace("hosts: 127.0.0.1:2379", "hosts:\n  - x:1\n  - y:2"),
        &[],
    );
    assert_eq!(l.config.etcd.hosts, vec!["x:1", "y:2"]);
}

#[test]
fn legacy_etcd_env_reads_as_v3_with_warning() {
    let text = minimal().replace("etcd3:\n  hosts: 127.0.0.1:2379\n", "");
    let l = load_str(&text, &[("PATRONI_ETCD_HOST", "e:2379")]);
    assert_eq!(l.config.etcd.hosts, vec!["e:2379"]);
    let w = warnings(&l);
    assert!(
        w.iter()
            .any(|m| m.starts_with("<env PATRONI_ETCD_HOST>:") && m.contains("etcd v3")),
        "{w:#?}"
    );
}

#[test]
fn yaml11_booleans() {
    let text = format!(
        "{}  use_pg_rewind: yes\n  use_unix_socket: on\n  remove_data_directory_on_rewind_failure: True\n  remove_data_directory_on_diverged_timelines: 'off'\ntags:\n  nofailover: on\n  nosync: no\n  clonefrom: Yes\n  noloadbalance: 'true'\n",
        minimal()
    );
    let l = load_str(&text, &[]);
    let pg = &l.config.postgresql;
    assert!(pg.use_pg_rewind && pg.use_unix_socket && pg.remove_data_directory_on_rewind_failure);
    assert!(!pg.remove_data_directory_on_diverged_timelines);
    let t = &l.config.tags;
    assert!(t.nofailover && !t.nosync && t.clonefrom && t.noloadbalance);
    assert_eq!(
        serde_json::to_value(&t.published).unwrap(),
        json!({"nofailover": true, "clonefrom": true, "noloadbalance": true})
    );
}

#[test]
fn tags_published_like_patroni() {
    let text = format!(
        "{}tags:\n  nofailover: true\n  failover_priority: 1\n  replicatefrom: node3\n  zone: eu-1\n  weight: 3\n",
        minimal()
    );
    let l = load_str(&text, &[]);
    let t = &l.config.tags;
    assert!(t.nofailover);
    assert_eq!(t.failover_priority, Some(1));
    assert_eq!(t.replicatefrom.as_deref(), Some("node3"));
    assert_eq!(
        serde_json::to_value(&t.published).unwrap(),
        json!({"nofailover": true, "failover_priority": 1, "replicatefrom": "node3", "zone": "eu-1", "weight": 3})
    );
    let w = warnings(&l);
    assert!(
        w.iter().any(|m| m.contains(
            "Conflicting configuration between nofailover: True and failover_priority: 1. Defaulting to nofailover: True"
        )),
        "{w:#?}"
    );
    let l = load_str(
        &format!("{}tags:\n  failover_priority: 0\n", minimal()),
        &[],
    );
    assert!(l.config.tags.nofailover, "priority <= 0 means nofailover");
    assert!(!warnings(&l).iter().any(|m| m.contains("Conflicting")));
}

#[test]
fn initdb_list_and_map_forms() {
    let list = format!(
        "{}bootstrap:\n  initdb:\n  - encoding: UTF8\n  - data-checksums\n  - locale: en_US.UTF-8\n",
        minimal()
    );
    assert_eq!(
        load_str(&list, &[]).config.bootstrap.initdb,
        vec![
            "--encoding=UTF8",
            "--data-checksums",
            "--locale=en_US.UTF-8"
        ]
    );
    let map = format!(
        "{}bootstrap:\n  initdb:\n    encoding: UTF8\n    data-checksums: true\n",
        minimal()
    );
    assert_eq!(
        load_str(&map, &[]).config.bootstrap.initdb,
        vec!["--encoding=UTF8", "--data-checksums"]
    );
    let bb = format!(
        "{}  basebackup:\n    max-rate: 100M\n    checkpoint: fast\n",
        minimal()
    );
    assert_eq!(
        load_str(&bb, &[]).config.postgresql.basebackup,
        vec!["--max-rate=100M", "--checkpoint=fast"]
    );
    let post = format!(
        "{}bootstrap:\n  post_init: /usr/local/bin/setup.sh\n",
        minimal()
    );
    assert_eq!(
        load_str(&post, &[])
            .config
            .bootstrap
            .post_bootstrap
            .as_ref()
            .map(ShellCommand::argv),
        Some(&["/usr/local/bin/setup.sh".to_string()][..])
    );
}

#[test]
fn unknown_and_unsupported_keys_are_warnings_naming_the_path() {
    let text = format!(
        "{}  foo: 1\n  data_dr: /x\nwatchdog:\n  mode: required\nlog:\n  level: warning\n  format: '%(message)s'\nrestapi_typo: 1\n",
        minimal()
    )
    .replace("restapi:\n", "restapi:\n  request_queue_size: 5\n");
    let l = load_str(&text, &[]);
    assert_eq!(l.config.log_level, "WARNING");
    let w = warnings(&l);
    let has = |needle: &str| w.iter().any(|m| m.contains(needle));
    assert!(
        has("node.yml: key `postgresql.foo` is unknown; ignored"),
        "{w:#?}"
    );
    assert!(
        has("key `postgresql.data_dr` is unknown; ignored (did you mean `postgresql.data_dir`?)"),
        "{w:#?}"
    );
    assert!(
        has("node.yml: key `watchdog` is not supported by pgkeel yet; ignored"),
        "{w:#?}"
    );
    assert!(
        has("node.yml: key `restapi.request_queue_size` is not supported by pgkeel yet; ignored"),
        "{w:#?}"
    );
    assert!(
        has("node.yml: key `log.format` is not supported by pgkeel yet; ignored"),
        "{w:#?}"
    );
    assert!(has("key `restapi_typo` is unknown"), "{w:#?}");
    let line_of = |key: &str| {
        l.warnings
            .iter()
            .find(|x| x.key.as_deref() == Some(key))
            .and_then(|x| x.line)
    };
    assert_eq!(line_of("postgresql.foo"), Some(19));
    assert_eq!(line_of("restapi.request_queue_size"), Some(4));
}

#[test]
fn passwords_never_in_debug_output_or_warnings() {
    let text = format!(
        "{}bootstrap:\n  users:\n    admin:\n      password: usersecret\n",
        minimal().replace("etcd3:\n", "etcd3:\n  password: etcdsecret\n")
    );
    let l = load_str(
        &text,
        &[
            ("PATRONI_RESTAPI_USERNAME", "api"),
            ("PATRONI_RESTAPI_PASSWORD", "apisecret"),
            ("PATRONI_CTL_USERNAME", "ctl"),
            ("PATRONI_CTL_PASSWORD", "ctlsecret"),
            ("PATRONI_REWIND_USERNAME", "rw"),
            ("PATRONI_REWIND_PASSWORD", "rewindsecret"),
        ],
    );
    let dbg = format!("{l:?}");
    for secret in [
        "supersecret",
        "replsecret",
        "etcdsecret",
        "usersecret",
        "apisecret",
        "ctlsecret",
        "rewindsecret",
    ] {
        assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        assert!(!warnings(&l).join("\n").contains(secret));
    }
    assert!(dbg.contains("<redacted>"));
}

#[test]
fn duplicate_keys_last_wins_and_octal() {
    let text = format!(
        "{}  parameters:\n    max_connections: 100\n    max_connections: 200\n    unix_socket_permissions: 0750\n    archive_mode: on\n",
        minimal()
    );
    let l = load_str(&text, &[]);
    assert_eq!(
        l.config.postgresql.parameters["max_connections"],
        json!(200)
    );
    assert_eq!(
        l.config.postgresql.parameters["unix_socket_permissions"],
        json!(488)
    );
    assert_eq!(l.config.postgresql.parameters["archive_mode"], json!(true));
}

#[test]
fn env_only_and_patroni_configuration() {
    let l = load_config_from_env_only(&env(&[
        ("PATRONI_CONFIGURATION", &minimal()),
        ("PATRONI_NAME", "from-env"),
    ]))
    .unwrap();
    assert_eq!(l.config.name, "from-env");
    assert_eq!(l.config.scope, "demo");
    let l = load_config_from_env_only(&env(&[
        ("PATRONI_SCOPE", "s"),
        ("PATRONI_NAME", "n"),
        ("PATRONI_RESTAPI_LISTEN", "127.0.0.1:8008"),
        ("PATRONI_ETCD3_HOSTS", "127.0.0.1:2379"),
        ("PATRONI_POSTGRESQL_LISTEN", "127.0.0.1:5432"),
        ("PATRONI_POSTGRESQL_CONNECT_ADDRESS", "127.0.0.1:5432"),
        ("PATRONI_POSTGRESQL_DATA_DIR", "/d"),
        ("PATRONI_REPLICATION_USERNAME", "rep"),
    ]))
    .unwrap();
    assert_eq!(l.config.source, PathBuf::from("<env>"));
    assert_eq!(
        l.config.postgresql.authentication.superuser.username,
        "postgres"
    );
    let e = load_config_from_env_only(&env(&[("PATRONI_NAME", "n")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<env>: scope: missing required key (expected the cluster name)"
    );
    let e =
        load_config_from_env_only(&env(&[("PATRONI_CONFIGURATION", "scope: [x\n")])).unwrap_err();
    assert!(
        e.to_string().starts_with("<env PATRONI_CONFIGURATION>:1:"),
        "{e}"
    );
}

#[test]
fn directory_is_merged_in_sorted_order_and_filesystem_checked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let pg_ctl = bin.join("pg_ctl");
    std::fs::write(&pg_ctl, "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pg_ctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("10-base.yml"), minimal()).unwrap();
    std::fs::write(
        dir.path().join("20-local.yaml"),
        format!(
            "name: node9\npostgresql:\n  data_dir: {}\n  bin_dir: {}\n",
            data.display(),
            bin.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "not: yaml: at all").unwrap();
    let l = load_config(dir.path()).unwrap();
    assert_eq!(l.config.name, "node9");
    assert_eq!(l.config.scope, "demo");
    assert_eq!(l.config.postgresql.data_dir, data);
    assert_eq!(
        l.config.postgresql.authentication.replication.username,
        "replicator"
    );
    validate_filesystem(&l.config).unwrap();

    std::fs::write(
        dir.path().join("30-bad.yml"),
        "postgresql:\n  listen: nope\n",
    )
    .unwrap();
    let e = load_config(dir.path()).unwrap_err().to_string();
    assert!(e.contains("30-bad.yml:2: postgresql.listen"), "{e}");
    let mut broken = l.config.clone();
    broken.postgresql.bin_dir = Some(dir.path().join("missing"));
    let e = validate_filesystem(&broken).unwrap_err().to_string();
    assert!(e.contains("postgresql.bin_dir: does not exist"), "{e}");
}

// Issue 6, point 4: `post_bootstrap: psql -w -c "SELECT 1"` runs psql with `SELECT 1` as one
// argument, as Patroni's `shlex.split` gives it; callbacks are split the same way.
#[test]
fn commands_are_split_like_patroni_shlex() {
    let text = format!(
        "{}  callbacks:\n    on_role_change: /usr/local/bin/cb --note 'role changed'\nbootstrap:\n  post_bootstrap: psql -w -c \"SELECT 1\"\n",
        minimal()
    );
    let c = load_str(&text, &[]).config;
    let post = c.bootstrap.post_bootstrap.expect("post_bootstrap");
    assert_eq!(post.argv(), ["psql", "-w", "-c", "SELECT 1"]);
    assert_eq!(post.raw(), "psql -w -c \"SELECT 1\"");
    let cb = c
        .postgresql
        .callbacks
        .on_role_change
        .expect("on_role_change");
    assert_eq!(cb.program(), "/usr/local/bin/cb");
    assert_eq!(cb.args(), ["--note", "role changed"]);
}

// A VIP script written for Patroni 3 or older tests `$role == 'master'`: an opt-in gives it
// that word (pgkeel's own key; Patroni 4's `primary` by default).
#[test]
fn callbacks_primary_role_name_is_primary_unless_master_is_asked_for() {
    let with = |extra: &str| {
        let text = format!(
            "{}  callbacks:\n    on_role_change: /bin/cb\n{extra}",
            minimal()
        );
        let l = load_str(&text, &[]);
        assert!(
            !warnings(&l).iter().any(|w| w.contains("primary_role_name")),
            "{:?}",
            warnings(&l)
        );
        l.config.postgresql.callbacks.primary_role_name
    };
    assert_eq!(with(""), PrimaryRoleName::Primary);
    assert_eq!(
        with("    primary_role_name: primary\n"),
        PrimaryRoleName::Primary
    );
    assert_eq!(
        with("    primary_role_name: master\n"),
        PrimaryRoleName::Master
    );
}

#[test]
fn restapi_allowlist_is_read_and_no_longer_warned_about() {
    let text = minimal().replacen(
        "restapi:\n",
        "restapi:\n  allowlist: [10.0.0.0/8, 'db1.example']\n  allowlist_include_members: true\n",
        1,
    );
    let l = load_str(&text, &[]);
    assert_eq!(l.config.restapi.allowlist, ["10.0.0.0/8", "db1.example"]);
    assert!(l.config.restapi.allowlist_include_members);
    assert!(
        !warnings(&l).iter().any(|w| w.contains("allowlist")),
        "{:?}",
        warnings(&l)
    );
    let bad = minimal().replacen("restapi:\n", "restapi:\n  allowlist: 10.0.0.1\n", 1);
    let err = match load_config_from_str(&bad, Path::new("node.yml"), &[]) {
        Ok(_) => panic!("a scalar allowlist is refused"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("restapi.allowlist"), "{err}");
}
