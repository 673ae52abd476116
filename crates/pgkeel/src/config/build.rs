//! Turns the merged YAML tree (files + environment) into the typed [`Config`], with key-path
//! errors, defaults, and warnings for unknown, unsupported and legacy keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::origin::{Ctx, index, join};
use super::{
    BasicAuth, BootstrapConfig, BootstrapUser, Callbacks, Config, CtlConfig, CtlSettings,
    EtcdConfig, PgAuthentication, PgUser, PostgresqlConfig, RestApiConfig, ShellCommand, Tags,
};
use super::{tls, validate};

type R<T> = Result<T, ConfigError>;

/// What a user may write for a boolean, as Patroni's `parse_bool` reads strings.
const BOOL_EXPECTED: &str = "a boolean: true/false, on/off, yes/no";

const TOP_KNOWN: &[&str] = &[
    "scope",
    "namespace",
    "name",
    "restapi",
    "ctl",
    "etcd",
    "etcd3",
    "bootstrap",
    "postgresql",
    "tags",
    "log",
];
const TOP_UNSUPPORTED: &[&str] = &[
    "watchdog",
    "consul",
    "zookeeper",
    "exhibitor",
    "kubernetes",
    "raft",
    "citus",
    "thread_pool_size",
    "thread_stack_size",
];
const RESTAPI_KNOWN: &[&str] = &["listen", "connect_address", "authentication"];
const RESTAPI_UNSUPPORTED: &[&str] = &[
    "certfile",
    "keyfile",
    "keyfile_password",
    "cafile",
    "ciphers",
    "verify_client",
    "allowlist",
    "allowlist_include_members",
    "http_extra_headers",
    "https_extra_headers",
    "request_queue_size",
    "server_tokens",
    "thread_pool_size",
];
const CTL_UNSUPPORTED: &[&str] = &[
    "insecure",
    "cacert",
    "certfile",
    "keyfile",
    "keyfile_password",
];
const ETCD_KNOWN: &[&str] = &[
    "host", "hosts", "url", "proxy", "protocol", "username", "password", "cacert", "cert", "key",
];
const ETCD_UNSUPPORTED: &[&str] = &["use_proxies", "srv", "srv_suffix", "port"];
const BOOTSTRAP_KNOWN: &[&str] = &[
    "dcs",
    "method",
    "initdb",
    "pg_hba",
    "users",
    "post_bootstrap",
    "post_init",
];
const PG_KNOWN: &[&str] = &[
    "listen",
    "connect_address",
    "data_dir",
    "bin_dir",
    "pgpass",
    "authentication",
    "parameters",
    "pg_hba",
    "use_pg_rewind",
    "use_unix_socket",
    "callbacks",
    "remove_data_directory_on_rewind_failure",
    "remove_data_directory_on_diverged_timelines",
    "pg_ctl_timeout",
    "basebackup",
    "create_replica_methods",
];
const PG_UNSUPPORTED: &[&str] = &[
    "proxy_address",
    "config_dir",
    "bin_name",
    "pg_ident",
    "recovery_conf",
    "custom_conf",
    "use_unix_socket_repl",
    "pre_promote",
    "before_stop",
    "config_base_name",
    "use_slots",
];
const PG_USER_KNOWN: &[&str] = &["username", "password"];
const PG_USER_UNSUPPORTED: &[&str] = &[
    "sslmode",
    "sslkey",
    "sslpassword",
    "sslcert",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslnegotiation",
    "gssencmode",
    "channel_binding",
];
const CALLBACKS_KNOWN: &[&str] = &[
    "on_start",
    "on_stop",
    "on_restart",
    "on_reload",
    "on_role_change",
];
const LOG_UNSUPPORTED: &[&str] = &[
    "type",
    "traceback_level",
    "format",
    "dateformat",
    "static_fields",
    "max_queue_size",
    "dir",
    "mode",
    "file_num",
    "file_size",
    "loggers",
    "deduplicate_heartbeat_logs",
];
/// Boolean tags Patroni only publishes when they are true.
const BOOL_TAGS: &[&str] = &[
    "clonefrom",
    "nofailover",
    "noloadbalance",
    "nosync",
    "nostream",
];

/// Builds the typed configuration from the merged tree.
pub(crate) fn build(
    root: &Value,
    ctx: &mut Ctx<'_>,
    env: &[(String, String)],
    source: PathBuf,
) -> R<Config> {
    let empty = Map::new();
    let top = match root {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => return Err(not_a_mapping(ctx, other)),
    };
    check_keys(ctx, top, "", TOP_KNOWN, TOP_UNSUPPORTED);

    let scope = req_str(ctx, top, "", "scope", "the cluster name")?;
    let name = req_str(
        ctx,
        top,
        "",
        "name",
        "this member's name, unique in the cluster",
    )?;
    let namespace =
        opt_nonempty_str(ctx, top, "", "namespace")?.unwrap_or_else(|| "/service".to_string());

    let restapi = build_restapi(ctx, top)?;
    let ctl = build_ctl(ctx, top)?;
    let etcd = build_etcd(ctx, top)?;
    let bootstrap = build_bootstrap(ctx, top)?;
    let postgresql = build_postgresql(ctx, top, env, &name)?;
    let tags = build_tags(ctx, top)?;
    let log_level = build_log(ctx, top)?;

    let config = Config {
        source,
        scope,
        namespace,
        name,
        restapi,
        ctl,
        etcd,
        bootstrap,
        postgresql,
        tags,
        log_level,
    };
    validate::validate(&config, ctx)?;
    Ok(config)
}

/// Builds what pgkeelctl needs from the merged tree (see [`CtlSettings`]): nothing is required
/// and unknown keys are not reported, as patronictl does not validate its configuration.
pub(crate) fn build_ctl_settings(
    root: &Value,
    ctx: &mut Ctx<'_>,
    source: PathBuf,
) -> R<CtlSettings> {
    let empty = Map::new();
    let top = match root {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => return Err(not_a_mapping(ctx, other)),
    };
    if let Some(m) = section(ctx, top, "", "ctl")? {
        tls::refuse_ctl(ctx, m)?;
    }
    Ok(CtlSettings {
        source,
        scope: opt_nonempty_str(ctx, top, "", "scope")?,
        namespace: opt_nonempty_str(ctx, top, "", "namespace")?
            .unwrap_or_else(|| "/service".to_string()),
        etcd: build_etcd_opt(ctx, top)?,
    })
}

/// The error for a document whose top level is not a mapping.
pub(crate) fn not_a_mapping(ctx: &Ctx<'_>, v: &Value) -> ConfigError {
    let (file, line) = ctx.origins.locate("");
    ConfigError::invalid(
        file,
        line,
        "(top level)".to_string(),
        "the configuration is not a mapping".to_string(),
        Some(super::error::render_value("", v)),
        Some("a mapping of sections such as scope, name, postgresql".into()),
    )
}

// ---------------------------------------------------------------------------------------------
// Sections

fn build_restapi(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<RestApiConfig> {
    let Some(m) = section(ctx, top, "", "restapi")? else {
        return Err(ctx.missing("restapi.listen", "host:port for the REST API"));
    };
    tls::refuse_restapi(ctx, m)?;
    check_keys(ctx, m, "restapi", RESTAPI_KNOWN, RESTAPI_UNSUPPORTED);
    let listen = req_str(ctx, m, "restapi", "listen", "host:port for the REST API")?;
    let connect_address = match opt_nonempty_str(ctx, m, "restapi", "connect_address")? {
        Some(c) => c,
        None => {
            ctx.warn(
                "restapi.listen",
                format!(
                    "key `restapi.connect_address` is not set; using `restapi.listen` ({listen}) as the address other members and clients use"
                ),
            );
            listen.clone()
        }
    };
    let authentication = basic_auth(ctx, m, "restapi")?;
    Ok(RestApiConfig {
        listen,
        connect_address,
        authentication,
    })
}

fn build_ctl(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<CtlConfig> {
    let Some(m) = section(ctx, top, "", "ctl")? else {
        return Ok(CtlConfig::default());
    };
    tls::refuse_ctl(ctx, m)?;
    check_keys(ctx, m, "ctl", &["authentication"], CTL_UNSUPPORTED);
    Ok(CtlConfig {
        authentication: basic_auth(ctx, m, "ctl")?,
    })
}

fn basic_auth(ctx: &mut Ctx<'_>, parent: &Map<String, Value>, pp: &str) -> R<Option<BasicAuth>> {
    let Some(m) = section(ctx, parent, pp, "authentication")? else {
        return Ok(None);
    };
    let path = join(pp, "authentication");
    check_keys(ctx, m, &path, &["username", "password"], &[]);
    let username = req_str(ctx, m, &path, "username", "the basic-auth user name")?;
    let password = match opt_str(ctx, m, &path, "password")? {
        Some(p) => p,
        None => return Err(ctx.missing(&join(&path, "password"), "the basic-auth password")),
    };
    Ok(Some(BasicAuth { username, password }))
}

fn build_etcd(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<EtcdConfig> {
    build_etcd_opt(ctx, top)?.ok_or_else(|| {
        ctx.missing(
            "etcd3",
            "an etcd3 section with hosts, host, url or proxy (pgkeel only supports etcd v3)",
        )
    })
}

/// The etcd section (`etcd3`, else the legacy `etcd` read as v3), or `None` when there is none.
pub(crate) fn build_etcd_opt(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<Option<EtcdConfig>> {
    let v3 = section(ctx, top, "", "etcd3")?;
    let v2 = section(ctx, top, "", "etcd")?;
    let (m, path) = match (v3, v2) {
        (Some(m), Some(_)) => {
            ctx.warn(
                "etcd",
                "key `etcd` (the legacy etcd v2 section) is ignored because `etcd3` is also set",
            );
            (m, "etcd3")
        }
        (Some(m), None) => (m, "etcd3"),
        (None, Some(m)) => {
            ctx.warn(
                "etcd",
                "key `etcd` is Patroni's etcd v2 section; pgkeel only speaks etcd v3 (gRPC) and reads it as `etcd3` endpoints. Rename it to `etcd3` (the etcd servers must serve the v3 API)",
            );
            (m, "etcd")
        }
        (None, None) => return Ok(None),
    };
    tls::refuse_etcd(ctx, m, path)?;
    check_keys(ctx, m, path, ETCD_KNOWN, ETCD_UNSUPPORTED);
    let explicit_protocol = opt_nonempty_str(ctx, m, path, "protocol")?;
    let mut scheme_seen: Option<String> = None;
    let mut hosts = Vec::new();
    // Patroni's precedence (`AbstractEtcd.get_etcd_client`): proxy, then url, then hosts, then
    // host. pgkeel does no member discovery, so a proxy is simply the one endpoint.
    let url_key = if present(m, "proxy") { "proxy" } else { "url" };
    if let Some(u) = opt_nonempty_str(ctx, m, path, url_key)? {
        let up = join(path, url_key);
        let Some((scheme, rest)) = u.split_once("://") else {
            return Err(ctx.invalid_text(&up, "not a URL", &u, "http://host:port"));
        };
        scheme_seen = Some(scheme.to_ascii_lowercase());
        let hostport = rest.split('/').next().unwrap_or(rest);
        hosts.push(etcd_endpoint(ctx, &up, hostport, &mut None)?);
    } else if let Some(v) = m.get("hosts").filter(|v| !v.is_null()) {
        let hp = join(path, "hosts");
        let items: Vec<(String, String)> = match v {
            Value::String(s) => split_commas(s)
                .into_iter()
                .map(|h| (hp.clone(), h))
                .collect(),
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, item) in a.iter().enumerate() {
                    let ip = index(&hp, i);
                    match scalar_string(item) {
                        Some(s) => {
                            out.extend(split_commas(&s).into_iter().map(|h| (ip.clone(), h)))
                        }
                        None => {
                            return Err(ctx.invalid(
                                &ip,
                                "wrong type",
                                Some(item),
                                "a host:port string",
                            ));
                        }
                    }
                }
                out
            }
            other => {
                return Err(ctx.invalid(
                    &hp,
                    "wrong type",
                    Some(other),
                    "a list of host:port or a comma-separated string",
                ));
            }
        };
        for (ip, h) in items {
            hosts.push(etcd_endpoint(ctx, &ip, &h, &mut scheme_seen)?);
        }
        if hosts.is_empty() {
            return Err(ctx.invalid(&hp, "empty host list", Some(v), "at least one host:port"));
        }
    } else if let Some(h) = opt_nonempty_str(ctx, m, path, "host")? {
        let hp = join(path, "host");
        for h in split_commas(&h) {
            hosts.push(etcd_endpoint(ctx, &hp, &h, &mut scheme_seen)?);
        }
    } else {
        return Err(ctx.missing(
            &join(path, "hosts"),
            "etcd endpoints as hosts (list or comma string), host, url or proxy",
        ));
    }
    let protocol = explicit_protocol
        .or(scheme_seen)
        .unwrap_or_else(|| "http".to_string())
        .to_ascii_lowercase();
    if protocol != "http" {
        return Err(ctx.invalid_text(
            &join(path, "protocol"),
            "unsupported protocol",
            &protocol,
            "http (TLS to etcd is not supported yet)",
        ));
    }
    Ok(Some(EtcdConfig {
        hosts,
        protocol,
        username: opt_str(ctx, m, path, "username")?,
        password: opt_str(ctx, m, path, "password")?,
    }))
}

/// Whether `key` holds a non-null value.
fn present(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// One etcd endpoint: `[scheme://]host[:port]`, port defaulting to 2379 as in Patroni.
fn etcd_endpoint(ctx: &Ctx<'_>, path: &str, raw: &str, scheme: &mut Option<String>) -> R<String> {
    let mut s = raw.trim();
    if let Some((sch, rest)) = s.split_once("://") {
        *scheme = Some(sch.to_ascii_lowercase());
        s = rest.trim_end_matches('/');
    }
    if s.is_empty() {
        return Err(ctx.invalid_text(path, "empty etcd host", raw, "host:port"));
    }
    match validate::split_host_port(s) {
        Some((host, port)) => {
            validate::parse_port(port).ok_or_else(|| {
                ctx.invalid_text(
                    path,
                    "invalid port",
                    raw,
                    "host:port with a port between 1 and 65535",
                )
            })?;
            if host.is_empty() {
                return Err(ctx.invalid_text(path, "empty etcd host", raw, "host:port"));
            }
            Ok(s.to_string())
        }
        None => Ok(format!("{s}:2379")),
    }
}

fn build_bootstrap(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<BootstrapConfig> {
    let Some(m) = section(ctx, top, "", "bootstrap")? else {
        return Ok(BootstrapConfig::default());
    };
    let path = "bootstrap";
    // A custom bootstrap method names a sub-section; pgkeel only does initdb.
    let method = opt_nonempty_str(ctx, m, path, "method")?;
    let mut known: Vec<&str> = BOOTSTRAP_KNOWN.to_vec();
    if let Some(meth) = method.as_deref().filter(|m| *m != "initdb") {
        ctx.warn(
            "bootstrap.method",
            format!(
                "key `bootstrap.method` ({meth}) is not supported by pgkeel yet; ignored (pgkeel bootstraps with initdb)"
            ),
        );
        if m.contains_key(meth) {
            ctx.warn(
                &join(path, meth),
                format!("key `bootstrap.{meth}` is not supported by pgkeel yet; ignored"),
            );
            known.push(meth);
        }
    }
    check_keys(ctx, m, path, &known, &[]);

    let dcs = match section(ctx, m, path, "dcs")? {
        Some(d) => d.clone(),
        None => Map::new(),
    };
    let initdb = match m.get("initdb").filter(|v| !v.is_null()) {
        Some(v) => validate::render_tool_options(ctx, "bootstrap.initdb", v, "initdb")?,
        None => Vec::new(),
    };
    let pg_hba = str_list(ctx, m, path, "pg_hba")?;
    let post_bootstrap = match opt_command(ctx, m, path, "post_bootstrap")? {
        Some(c) => Some(c),
        None => opt_command(ctx, m, path, "post_init")?,
    };
    let mut users = Vec::new();
    if let Some(u) = section(ctx, m, path, "users")? {
        ctx.warn(
            "bootstrap.users",
            "key `bootstrap.users` is deprecated (Patroni 4 removed it); pgkeel still creates these roles once after initdb. Create roles in post_bootstrap instead",
        );
        for (uname, spec) in u {
            let up = join("bootstrap.users", uname);
            let (password, options) = match spec {
                Value::Null => (None, Vec::new()),
                Value::Object(sm) => {
                    check_keys(ctx, sm, &up, &["password", "options"], &[]);
                    (
                        opt_str(ctx, sm, &up, "password")?,
                        str_list(ctx, sm, &up, "options")?,
                    )
                }
                other => {
                    return Err(ctx.invalid(
                        &up,
                        "wrong type",
                        Some(other),
                        "a mapping with password and options",
                    ));
                }
            };
            users.push(BootstrapUser {
                name: uname.clone(),
                password,
                options,
            });
        }
    }
    Ok(BootstrapConfig {
        dcs,
        initdb,
        pg_hba,
        post_bootstrap,
        users,
    })
}

fn build_postgresql(
    ctx: &mut Ctx<'_>,
    top: &Map<String, Value>,
    env: &[(String, String)],
    name: &str,
) -> R<PostgresqlConfig> {
    let path = "postgresql";
    let Some(m) = section(ctx, top, "", path)? else {
        return Err(ctx.missing(
            "postgresql",
            "the postgresql section (listen, connect_address, data_dir, authentication)",
        ));
    };
    let mut known: Vec<String> = PG_KNOWN.iter().map(|s| s.to_string()).collect();
    // A replica method other than basebackup names a sub-section that pgkeel cannot run.
    if let Some(methods) = m.get("create_replica_methods").filter(|v| !v.is_null()) {
        let list = match methods {
            Value::Array(a) => a.iter().filter_map(scalar_string).collect::<Vec<_>>(),
            other => scalar_string(other).map(|s| vec![s]).unwrap_or_default(),
        };
        if list.iter().any(|x| x != "basebackup") {
            ctx.warn(
                "postgresql.create_replica_methods",
                "key `postgresql.create_replica_methods` is not supported by pgkeel yet; ignored (pgkeel clones replicas with pg_basebackup)",
            );
            for meth in list.iter().filter(|x| *x != "basebackup") {
                if m.contains_key(meth.as_str()) {
                    ctx.warn(
                        &join(path, meth),
                        format!("key `postgresql.{meth}` is not supported by pgkeel yet; ignored"),
                    );
                    known.push(meth.clone());
                }
            }
        }
    }
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    check_keys(ctx, m, path, &known_refs, PG_UNSUPPORTED);

    let listen = req_str(ctx, m, path, "listen", "host:port PostgreSQL listens on")?;
    let connect_address = req_str(
        ctx,
        m,
        path,
        "connect_address",
        "host:port other members use to reach this server",
    )?;
    let data_dir = PathBuf::from(req_str(
        ctx,
        m,
        path,
        "data_dir",
        "the PostgreSQL data directory (PGDATA)",
    )?);
    let bin_dir = opt_nonempty_str(ctx, m, path, "bin_dir")?.map(PathBuf::from);
    let pgpass = match opt_nonempty_str(ctx, m, path, "pgpass")? {
        Some(p) => PathBuf::from(p),
        None => default_pgpass(env, name),
    };
    let authentication = build_pg_auth(ctx, m)?;
    let parameters: BTreeMap<String, Value> = match section(ctx, m, path, "parameters")? {
        Some(p) => p.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        None => BTreeMap::new(),
    };
    let pg_hba = str_list(ctx, m, path, "pg_hba")?;
    let callbacks = match section(ctx, m, path, "callbacks")? {
        Some(c) => {
            let cp = "postgresql.callbacks";
            check_keys(ctx, c, cp, CALLBACKS_KNOWN, &[]);
            Callbacks {
                on_start: opt_command(ctx, c, cp, "on_start")?,
                on_stop: opt_command(ctx, c, cp, "on_stop")?,
                on_restart: opt_command(ctx, c, cp, "on_restart")?,
                on_reload: opt_command(ctx, c, cp, "on_reload")?,
                on_role_change: opt_command(ctx, c, cp, "on_role_change")?,
            }
        }
        None => Callbacks::default(),
    };
    let pg_ctl_timeout = match opt_i64(ctx, m, path, "pg_ctl_timeout")? {
        None => 60,
        Some(t) if t > 0 => t as u64,
        Some(t) => {
            return Err(ctx.invalid(
                "postgresql.pg_ctl_timeout",
                "must be positive",
                Some(&Value::from(t)),
                "a number of seconds >= 1",
            ));
        }
    };
    let basebackup = match m.get("basebackup").filter(|v| !v.is_null()) {
        Some(v) => validate::render_tool_options(ctx, "postgresql.basebackup", v, "pg_basebackup")?,
        None => Vec::new(),
    };
    Ok(PostgresqlConfig {
        listen,
        connect_address,
        data_dir,
        bin_dir,
        pgpass,
        authentication,
        parameters,
        pg_hba,
        use_pg_rewind: opt_bool(ctx, m, path, "use_pg_rewind")?.unwrap_or(false),
        use_unix_socket: opt_bool(ctx, m, path, "use_unix_socket")?.unwrap_or(false),
        callbacks,
        remove_data_directory_on_rewind_failure: opt_bool(
            ctx,
            m,
            path,
            "remove_data_directory_on_rewind_failure",
        )?
        .unwrap_or(false),
        remove_data_directory_on_diverged_timelines: opt_bool(
            ctx,
            m,
            path,
            "remove_data_directory_on_diverged_timelines",
        )?
        .unwrap_or(false),
        pg_ctl_timeout,
        basebackup,
    })
}

/// Patroni's default `~/pgpass`; `/tmp/pgpass-<name>` when `HOME` is unknown.
fn default_pgpass(env: &[(String, String)], name: &str) -> PathBuf {
    match env.iter().find(|(k, v)| k == "HOME" && !v.is_empty()) {
        Some((_, home)) => PathBuf::from(home).join("pgpass"),
        None => PathBuf::from(format!("/tmp/pgpass-{name}")),
    }
}

fn build_pg_auth(ctx: &mut Ctx<'_>, pg: &Map<String, Value>) -> R<PgAuthentication> {
    let path = "postgresql.authentication";
    let Some(m) = section(ctx, pg, "postgresql", "authentication")? else {
        return Err(ctx.missing(
            "postgresql.authentication.replication",
            "the replication role (username, password)",
        ));
    };
    check_keys(ctx, m, path, &["superuser", "replication", "rewind"], &[]);
    let superuser = match pg_user(ctx, m, path, "superuser")? {
        Some(u) => u,
        None => PgUser {
            username: "postgres".to_string(),
            password: None,
        },
    };
    let Some(replication) = pg_user(ctx, m, path, "replication")? else {
        return Err(ctx.missing(
            "postgresql.authentication.replication",
            "the replication role (username, password)",
        ));
    };
    let rewind = pg_user(ctx, m, path, "rewind")?;
    Ok(PgAuthentication {
        superuser,
        replication,
        rewind,
    })
}

fn pg_user(
    ctx: &mut Ctx<'_>,
    parent: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<PgUser>> {
    let Some(m) = section(ctx, parent, pp, key)? else {
        return Ok(None);
    };
    let path = join(pp, key);
    tls::refuse_pg_user(ctx, m, &path)?;
    check_keys(ctx, m, &path, PG_USER_KNOWN, PG_USER_UNSUPPORTED);
    let username = match opt_nonempty_str(ctx, m, &path, "username")? {
        Some(u) => u,
        None if key == "superuser" => "postgres".to_string(),
        None => return Err(ctx.missing(&join(&path, "username"), format!("the {key} role name"))),
    };
    Ok(Some(PgUser {
        username,
        password: opt_str(ctx, m, &path, "password")?,
    }))
}

fn build_tags(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<Tags> {
    let Some(m) = section(ctx, top, "", "tags")? else {
        return Ok(Tags::default());
    };
    let p = "tags";
    let nofailover_tag = opt_bool(ctx, m, p, "nofailover")?;
    let failover_priority = opt_i64(ctx, m, p, "failover_priority")?;
    let noloadbalance = opt_bool(ctx, m, p, "noloadbalance")?.unwrap_or(false);
    let clonefrom = opt_bool(ctx, m, p, "clonefrom")?.unwrap_or(false);
    let nosync = opt_bool(ctx, m, p, "nosync")?.unwrap_or(false);
    let nostream = opt_bool(ctx, m, p, "nostream")?;
    let replicatefrom = opt_nonempty_str(ctx, m, p, "replicatefrom")?;

    // Patroni's `_validate_failover_tags`: nofailover wins over a contradicting priority.
    if let (Some(nf), Some(prio)) = (nofailover_tag, failover_priority)
        && ((nf && prio > 0) || (!nf && prio <= 0))
    {
        let py = if nf { "True" } else { "False" };
        ctx.warn(
            "tags.nofailover",
            format!(
                "Conflicting configuration between nofailover: {py} and failover_priority: {prio}. Defaulting to nofailover: {py}"
            ),
        );
    }
    let nofailover = match (nofailover_tag, failover_priority) {
        (Some(nf), _) => nf,
        (None, Some(prio)) => prio <= 0,
        (None, None) => false,
    };

    // Published like Patroni's `Tags._filter_tags`: boolean tags only when true (nofailover also
    // whenever failover_priority is set), every other tag verbatim.
    let mut published = BTreeMap::new();
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        let value = match k.as_str() {
            "nofailover" => Value::Bool(nofailover_tag.unwrap_or(false)),
            "noloadbalance" => Value::Bool(noloadbalance),
            "clonefrom" => Value::Bool(clonefrom),
            "nosync" => Value::Bool(nosync),
            "nostream" => Value::Bool(nostream.unwrap_or(false)),
            "failover_priority" => Value::from(failover_priority.unwrap_or(1)),
            _ => v.clone(),
        };
        let keep = !BOOL_TAGS.contains(&k.as_str())
            || value == Value::Bool(true)
            || (k == "nofailover" && failover_priority.is_some());
        if keep {
            published.insert(k.clone(), value);
        }
    }
    Ok(Tags {
        nofailover,
        failover_priority,
        noloadbalance,
        clonefrom,
        nosync,
        replicatefrom,
        published,
    })
}

fn build_log(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<String> {
    let Some(m) = section(ctx, top, "", "log")? else {
        return Ok("INFO".to_string());
    };
    check_keys(ctx, m, "log", &["level"], LOG_UNSUPPORTED);
    let Some(level) = opt_nonempty_str(ctx, m, "log", "level")? else {
        return Ok("INFO".to_string());
    };
    let upper = level.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL" => upper,
        "WARN" => "WARNING".to_string(),
        "FATAL" => "CRITICAL".to_string(),
        _ => {
            return Err(ctx.invalid_text(
                "log.level",
                "unknown log level",
                &level,
                "DEBUG, INFO, WARNING, ERROR or CRITICAL",
            ));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Key checks

/// Warns about keys of `map` that pgkeel does not know (naming the full path) or knows but does
/// not support yet.
pub(crate) fn check_keys(
    ctx: &mut Ctx<'_>,
    map: &Map<String, Value>,
    path: &str,
    known: &[&str],
    unsupported: &[&str],
) {
    for key in map.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let full = join(path, key);
        if unsupported.contains(&key.as_str()) {
            ctx.warn(
                &full,
                format!("key `{full}` is not supported by pgkeel yet; ignored"),
            );
        } else {
            let hint = known
                .iter()
                .find(|k| edit_distance(k, key) <= 2)
                .map(|k| format!(" (did you mean `{}`?)", join(path, k)))
                .unwrap_or_default();
            ctx.warn(&full, format!("key `{full}` is unknown; ignored{hint}"));
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Typed getters. A null value counts as absent (Patroni drops null keys when merging).

fn get<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// A sub-mapping, or `None` when absent.
pub(crate) fn section<'v>(
    ctx: &Ctx<'_>,
    parent: &'v Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<&'v Map<String, Value>>> {
    match get(parent, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(ctx.invalid(&join(pp, key), "wrong type", Some(other), "a mapping")),
    }
}

/// Strings, and numbers as their text (a numeric password is common); `None` for collections/bools.
pub(crate) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn opt_str(ctx: &Ctx<'_>, m: &Map<String, Value>, pp: &str, key: &str) -> R<Option<String>> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => scalar_string(v)
            .map(Some)
            .ok_or_else(|| ctx.invalid(&join(pp, key), "wrong type", Some(v), "a string")),
    }
}

fn opt_nonempty_str(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<String>> {
    match opt_str(ctx, m, pp, key)? {
        Some(s) if s.trim().is_empty() => Err(ctx.invalid_text(
            &join(pp, key),
            "must not be empty",
            &s,
            "a non-empty string",
        )),
        other => Ok(other),
    }
}

/// A command string, split into words at load time like Patroni's `shlex.split` (see
/// [`ShellCommand`]), so a bad quote is reported here with its file, line and key.
fn opt_command(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<ShellCommand>> {
    let Some(raw) = opt_nonempty_str(ctx, m, pp, key)? else {
        return Ok(None);
    };
    ShellCommand::parse(&raw).map(Some).map_err(|e| {
        ctx.invalid_text(
            &join(pp, key),
            format!("cannot split the command into words like a POSIX shell: {e}"),
            &raw,
            r#"a command line with balanced quotes, such as psql -c "SELECT 1""#,
        )
    })
}

fn req_str(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
    expected: &str,
) -> R<String> {
    let path = join(pp, key);
    match m.get(key) {
        None => Err(ctx.missing(&path, expected)),
        Some(Value::Null) => Err(ctx.invalid(&path, "empty value", Some(&Value::Null), expected)),
        Some(v) => {
            let s = scalar_string(v)
                .ok_or_else(|| ctx.invalid(&path, "wrong type", Some(v), expected))?;
            if s.trim().is_empty() {
                return Err(ctx.invalid_text(&path, "must not be empty", &s, expected));
            }
            Ok(s)
        }
    }
}

/// Reads a boolean as Patroni does: YAML booleans, or `on/off/yes/no/true/false/1/0` strings.
pub(crate) fn value_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" | "1" => Some(true),
            "off" | "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn opt_bool(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<bool>> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => value_bool(v)
            .map(Some)
            .ok_or_else(|| ctx.invalid(&join(pp, key), "not a boolean", Some(v), BOOL_EXPECTED)),
    }
}

/// Reads an integer: a YAML integer, or a string holding one.
pub(crate) fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn opt_i64(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    pp: &str,
    key: &str,
) -> R<Option<i64>> {
    match get(m, key) {
        None => Ok(None),
        Some(v) => value_i64(v)
            .map(Some)
            .ok_or_else(|| ctx.invalid(&join(pp, key), "not an integer", Some(v), "an integer")),
    }
}

fn split_commas(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list of strings (`pg_hba`, role options).
fn str_list(ctx: &Ctx<'_>, m: &Map<String, Value>, pp: &str, key: &str) -> R<Vec<String>> {
    let path = join(pp, key);
    match get(m, key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_string(item).ok_or_else(|| {
                    ctx.invalid(&index(&path, i), "wrong type", Some(item), "a string")
                })
            })
            .collect(),
        Some(other) => Err(ctx.invalid(&path, "wrong type", Some(other), "a list of strings")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_like_patroni() {
        for (v, b) in [
            (Value::from("on"), Some(true)),
            (Value::from("No"), Some(false)),
            (Value::from(1), Some(true)),
            (Value::from("maybe"), None),
        ] {
            assert_eq!(value_bool(&v), b);
        }
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("data_dir", "data_dr"), 1);
        assert!(edit_distance("listen", "parameters") > 2);
    }
}
