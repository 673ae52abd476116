//! Cross-field and semantic checks: addresses, the `bootstrap.dcs` timing rule, initdb and
//! pg_basebackup options, and (separately, so unit tests stay hermetic) the filesystem.

use std::path::Path;

use serde_json::{Map, Value};

use super::Config;
use super::error::ConfigError;
use super::origin::{Ctx, Origins, index, join};
use super::read::{scalar_string, value_i64};
use pgkeel_ha::cluster::{GlobalConfig, Timeouts};

type R<T> = Result<T, ConfigError>;

/// initdb options pgkeel sets itself (Patroni's list).
const INITDB_FORBIDDEN: &[&str] = &["pgdata", "nosync", "pwfile", "sync-only", "version"];
/// pg_basebackup options pgkeel sets itself (Patroni's list; `compress` is handled separately).
const BASEBACKUP_FORBIDDEN: &[&str] = &[
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "dbname",
    "host",
    "port",
    "username",
    "password",
];

/// Checks that need more than one key or more than a type: addresses and `bootstrap.dcs`.
pub(crate) fn validate(config: &Config, ctx: &mut Ctx<'_>) -> R<()> {
    check_address(ctx, "restapi.listen", &config.restapi.listen, true)?;
    check_address(
        ctx,
        "restapi.connect_address",
        &config.restapi.connect_address,
        true,
    )?;
    check_address(ctx, "postgresql.listen", &config.postgresql.listen, true)?;
    check_address(
        ctx,
        "postgresql.connect_address",
        &config.postgresql.connect_address,
        false,
    )?;
    check_dcs(ctx, &config.bootstrap.dcs)
}

/// Splits `host:port` (or `[v6]:port`) at the last colon; `None` when there is no colon.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, port)) = rest.split_once("]:")
    {
        return Some((host, port));
    }
    s.rsplit_once(':')
}

/// A TCP port between 1 and 65535.
pub(crate) fn parse_port(p: &str) -> Option<u16> {
    p.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

fn check_address(ctx: &Ctx<'_>, path: &str, addr: &str, empty_host_ok: bool) -> R<()> {
    const EXPECTED: &str = "host:port with a port between 1 and 65535";
    let Some((host, port)) = split_host_port(addr.trim()) else {
        return Err(ctx.invalid_text(path, "missing port", addr, EXPECTED));
    };
    if port.trim().parse::<u64>().is_err() {
        return Err(ctx.invalid_text(path, "port is not a number", addr, EXPECTED));
    }
    if parse_port(port).is_none() {
        return Err(ctx.invalid_text(path, "port out of range", addr, EXPECTED));
    }
    if host.trim().is_empty() && !empty_host_ok {
        return Err(ctx.invalid_text(path, "missing host", addr, EXPECTED));
    }
    Ok(())
}

/// The dynamic keys pgkeel reads from `bootstrap.dcs`: types and minimums are errors (as in
/// Patroni's validator); the timing rule `loop_wait + 2 * retry_timeout <= ttl` is the HA core's
/// [`Timeouts::adjusted`]: a violation is a warning naming the values used, as Patroni logs it.
fn check_dcs(ctx: &mut Ctx<'_>, dcs: &Map<String, Value>) -> R<()> {
    let p = "bootstrap.dcs";
    // Types and ranges are the core's (the same check `PATCH /config` runs), so a file cannot
    // hold a value the agents would refuse or that overflows their arithmetic.
    if let Err(rejected) = GlobalConfig::check(dcs) {
        return Err(ctx.invalid(
            &join(p, &rejected.key),
            rejected.problem,
            lookup(dcs, &rejected.key),
            rejected.expected,
        ));
    }
    let defaults = GlobalConfig::default();
    // Within range now, so each reads as its integer.
    let int = |key: &str, default: u64| {
        dcs.get(key)
            .and_then(value_i64)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(default)
    };
    let given = Timeouts {
        loop_wait: int("loop_wait", defaults.loop_wait),
        retry_timeout: int("retry_timeout", defaults.retry_timeout),
        ttl: int("ttl", defaults.ttl),
    };
    if let (_, Some(warning)) = given.adjusted() {
        let key = ["ttl", "loop_wait", "retry_timeout"]
            .into_iter()
            .find(|k| dcs.get(*k).is_some_and(|v| !v.is_null()))
            .unwrap_or("ttl");
        ctx.warn(&join(p, key), warning);
    }
    // Read by synchronous replication (later); Patroni's validator wants an integer.
    if let Some(v) = dcs.get("maximum_lag_on_syncnode").filter(|v| !v.is_null())
        && value_i64(v).is_none()
    {
        return Err(ctx.invalid(
            &join(p, "maximum_lag_on_syncnode"),
            "not an integer",
            Some(v),
            "an integer",
        ));
    }
    Ok(())
}

/// The value at a dotted path (`postgresql.use_slots`) of a mapping.
fn lookup<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let v = m.get(head)?;
    match rest {
        None => Some(v),
        Some(rest) => lookup(v.as_object()?, rest),
    }
}

/// Renders `bootstrap.initdb` / `postgresql.basebackup` (a list of `flag` / `{key: value}` items,
/// or a mapping) as `--flag` / `--key=value` arguments, rejecting options pgkeel sets itself.
pub(crate) fn render_tool_options(
    ctx: &Ctx<'_>,
    path: &str,
    v: &Value,
    tool: &str,
) -> R<Vec<String>> {
    let mut out = Vec::new();
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let ip = index(path, i);
                match item {
                    Value::String(s) => {
                        let flag = s.trim().trim_start_matches('-');
                        let name = flag.split('=').next().unwrap_or(flag);
                        check_option(ctx, &ip, tool, name, None)?;
                        out.push(format!("--{flag}"));
                    }
                    Value::Object(m) if m.len() == 1 => {
                        if let Some((k, val)) = m.iter().next() {
                            push_pair(ctx, &join(&ip, k), tool, k, val, &mut out)?;
                        }
                    }
                    other => {
                        return Err(ctx.invalid(
                            &ip,
                            "invalid option",
                            Some(other),
                            "an option name or a single `name: value` pair",
                        ));
                    }
                }
            }
        }
        Value::Object(m) => {
            for (k, val) in m {
                push_pair(ctx, &join(path, k), tool, k, val, &mut out)?;
            }
        }
        other => {
            return Err(ctx.invalid(
                path,
                "wrong type",
                Some(other),
                "a list of options or a mapping of option: value",
            ));
        }
    }
    Ok(out)
}

fn push_pair(
    ctx: &Ctx<'_>,
    path: &str,
    tool: &str,
    key: &str,
    val: &Value,
    out: &mut Vec<String>,
) -> R<()> {
    let name = key.trim().trim_start_matches('-');
    let text = match val {
        Value::Null | Value::Bool(false) => None,
        Value::Bool(true) => Some(None),
        other => match scalar_string(other) {
            Some(s) => Some(Some(s)),
            None => {
                return Err(ctx.invalid(
                    path,
                    "invalid option value",
                    Some(other),
                    "a string or number",
                ));
            }
        },
    };
    check_option(
        ctx,
        path,
        tool,
        name,
        text.as_ref().and_then(|t| t.as_deref()),
    )?;
    match text {
        None => {}
        Some(None) => out.push(format!("--{name}")),
        Some(Some(s)) => out.push(format!("--{name}={s}")),
    }
    Ok(())
}

fn check_option(ctx: &Ctx<'_>, path: &str, tool: &str, name: &str, value: Option<&str>) -> R<()> {
    let forbidden = if tool == "initdb" {
        INITDB_FORBIDDEN
    } else {
        BASEBACKUP_FORBIDDEN
    };
    if forbidden.contains(&name) {
        return Err(ctx.invalid_text(
            path,
            format!("option `{name}` is not allowed for {tool} (pgkeel sets it itself)"),
            name,
            format!("an option other than {}", forbidden.join(", ")),
        ));
    }
    if tool != "initdb" && name == "compress" && !value.is_some_and(|v| v.starts_with("server-")) {
        return Err(ctx.invalid_text(
            path,
            "only server-side compression is allowed for pg_basebackup",
            value.unwrap_or(name),
            "compress: server-<method> (PostgreSQL 15+)",
        ));
    }
    Ok(())
}

/// Filesystem checks, separate from loading so that parsing stays pure: `postgresql.data_dir`
/// must be a readable directory if it exists, and `postgresql.bin_dir` (when set) must exist and
/// contain `pg_ctl`. Errors name the key but no line (use `load_config` for lines).
pub fn validate_filesystem(config: &Config) -> Result<(), ConfigError> {
    let origins = Origins {
        primary: config.source.display().to_string(),
        ..Origins::default()
    };
    validate_filesystem_with(config, &Ctx::new(&origins))
}

/// [`validate_filesystem`] with value origins, so that errors carry the file and line.
pub(crate) fn validate_filesystem_with(config: &Config, ctx: &Ctx<'_>) -> R<()> {
    let data_dir = &config.postgresql.data_dir;
    let dd = data_dir.display().to_string();
    match std::fs::metadata(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ctx.invalid_text(
                "postgresql.data_dir",
                format!("cannot be inspected: {e}"),
                &dd,
                "a readable directory, or a path that does not exist yet",
            ));
        }
        Ok(m) if !m.is_dir() => {
            return Err(ctx.invalid_text(
                "postgresql.data_dir",
                "exists but is not a directory",
                &dd,
                "a directory, or a path that does not exist yet",
            ));
        }
        Ok(_) => {
            if let Err(e) = std::fs::read_dir(data_dir) {
                return Err(ctx.invalid_text(
                    "postgresql.data_dir",
                    format!("is not readable: {e}"),
                    &dd,
                    "a directory readable by pgkeel",
                ));
            }
        }
    }
    if let Some(bin_dir) = &config.postgresql.bin_dir {
        check_bin_dir(ctx, bin_dir)?;
    }
    Ok(())
}

fn check_bin_dir(ctx: &Ctx<'_>, bin_dir: &Path) -> R<()> {
    use std::os::unix::fs::PermissionsExt;
    let bd = bin_dir.display().to_string();
    const EXPECTED: &str = "the directory holding pg_ctl, initdb, postgres...";
    match std::fs::metadata(bin_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ctx.invalid_text("postgresql.bin_dir", "does not exist", &bd, EXPECTED))
        }
        Err(e) => Err(ctx.invalid_text(
            "postgresql.bin_dir",
            format!("cannot be inspected: {e}"),
            &bd,
            EXPECTED,
        )),
        Ok(m) if !m.is_dir() => {
            Err(ctx.invalid_text("postgresql.bin_dir", "is not a directory", &bd, EXPECTED))
        }
        Ok(_) => {
            let pg_ctl = bin_dir.join("pg_ctl");
            match std::fs::metadata(&pg_ctl) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
                Ok(_) => Err(ctx.invalid_text(
                    "postgresql.bin_dir",
                    "pg_ctl in this directory is not an executable file",
                    &bd,
                    EXPECTED,
                )),
                Err(_) => Err(ctx.invalid_text(
                    "postgresql.bin_dir",
                    "does not contain pg_ctl",
                    &bd,
                    EXPECTED,
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx_origins() -> Origins {
        Origins {
            primary: "t.yml".into(),
            ..Origins::default()
        }
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("[::1]:5432"), Some(("::1", "5432")));
        assert_eq!(split_host_port("a,b:5432"), Some(("a,b", "5432")));
        assert_eq!(split_host_port("localhost"), None);
        assert_eq!(parse_port("0"), None);
        assert_eq!(parse_port("65536"), None);
    }

    #[test]
    fn options_render_in_both_forms() {
        let o = ctx_origins();
        let ctx = Ctx::new(&o);
        let list = json!([{"encoding": "UTF8"}, "data-checksums", {"locale": "C"}]);
        assert_eq!(
            render_tool_options(&ctx, "bootstrap.initdb", &list, "initdb").unwrap(),
            vec!["--encoding=UTF8", "--data-checksums", "--locale=C"]
        );
        let map = json!({"encoding": "UTF8", "data-checksums": true, "x": false});
        assert_eq!(
            render_tool_options(&ctx, "bootstrap.initdb", &map, "initdb").unwrap(),
            vec!["--encoding=UTF8", "--data-checksums"]
        );
        let bad = json!(["pgdata"]);
        let e = render_tool_options(&ctx, "bootstrap.initdb", &bad, "initdb").unwrap_err();
        assert!(e.to_string().contains("bootstrap.initdb[0]"), "{e}");
        let bb = json!({"compress": "gzip"});
        assert!(render_tool_options(&ctx, "postgresql.basebackup", &bb, "pg_basebackup").is_err());
        let bb = json!({"compress": "server-lz4", "max-rate": "100M"});
        assert_eq!(
            render_tool_options(&ctx, "postgresql.basebackup", &bb, "pg_basebackup").unwrap(),
            vec!["--compress=server-lz4", "--max-rate=100M"]
        );
    }

    #[test]
    fn dcs_timing_rule_warns_and_does_not_refuse() {
        let o = ctx_origins();
        let mut ctx = Ctx::new(&o);
        let ok = json!({"ttl": 5, "loop_wait": 1, "retry_timeout": 2});
        assert!(check_dcs(&mut ctx, ok.as_object().unwrap()).is_ok());
        assert!(ctx.warnings.is_empty());
        let adjusted = json!({"ttl": 20});
        assert!(check_dcs(&mut ctx, adjusted.as_object().unwrap()).is_ok());
        let w: Vec<String> = ctx.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            w,
            [
                "t.yml: Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl=20. Adjusting loop_wait from 10 to 1 and retry_timeout from 10 to 9"
            ]
        );
        let low = json!({"ttl": 4});
        assert!(check_dcs(&mut ctx, low.as_object().unwrap()).is_err());
        let negative = json!({"loop_wait": -1});
        assert!(check_dcs(&mut ctx, negative.as_object().unwrap()).is_err());
    }
}
