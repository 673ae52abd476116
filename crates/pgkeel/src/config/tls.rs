//! Refuses configurations that ask for TLS, which pgkeel does not implement yet.
//!
//! A Patroni configuration with `restapi.certfile` expects an HTTPS REST API; with
//! `etcd3.cacert` or `protocol: https`, a verified connection to etcd; with `sslmode:
//! verify-full`, verified PostgreSQL connections. Accepting such a key and then running without
//! TLS would downgrade security silently, so each one is a load-time error naming the key (and
//! the `PATRONI_*` variable when it came from one). Keys that only *allow* TLS or turn it off
//! (`sslmode: prefer`, `verify_client: none`, `ctl.insecure`) are not refused; they stay
//! "not supported yet; ignored" warnings.
//!
//! PostgreSQL's own server-side TLS (`postgresql.parameters.ssl`, `ssl_cert_file`, ...) is not
//! refused: PostgreSQL serves it itself, and pgkeel's replication connections use
//! `sslmode=prefer`, so they use it too. Nothing pgkeel does is weakened by it.

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::origin::{Ctx, index, join};

type R<T> = Result<T, ConfigError>;

/// `restapi` keys that configure Patroni's HTTPS server.
pub(crate) const RESTAPI_TLS_KEYS: &[&str] = &[
    "certfile",
    "keyfile",
    "keyfile_password",
    "cafile",
    "ciphers",
    "verify_client",
];
/// `ctl` keys that configure patronictl's TLS client (for the REST API).
pub(crate) const CTL_TLS_KEYS: &[&str] = &["cacert", "certfile", "keyfile", "keyfile_password"];
/// `etcd3` / `etcd` keys that configure the etcd client's TLS.
pub(crate) const ETCD_TLS_KEYS: &[&str] = &["cacert", "cert", "key"];
/// libpq TLS settings of `postgresql.authentication.<role>` that configure TLS whatever their
/// value (certificates, keys, CRLs).
const PG_TLS_FILE_KEYS: &[&str] = &[
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
];
/// libpq settings of `postgresql.authentication.<role>` and the values that *require*
/// encryption or TLS (other values only allow it or turn it off).
const PG_REQUIRING_VALUES: &[(&str, &[&str])] = &[
    ("sslmode", &["require", "verify-ca", "verify-full"]),
    ("sslnegotiation", &["direct"]),
    ("gssencmode", &["require"]),
    ("channel_binding", &["require"]),
];

/// The error for a key asking for TLS: what pgkeel would otherwise have done without it.
fn refused(ctx: &Ctx<'_>, path: &str, value: &Value, instead: &str) -> ConfigError {
    ctx.invalid(
        path,
        format!("TLS is not supported by pgkeel yet; refusing to start rather than {instead}"),
        Some(value),
        "the key removed, to run without TLS",
    )
}

fn present<'v>(m: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    m.get(key)
        .filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
}

/// `restapi.certfile` and friends (`verify_client: none` asks for nothing and passes).
pub(crate) fn refuse_restapi(ctx: &Ctx<'_>, m: &Map<String, Value>) -> R<()> {
    for key in RESTAPI_TLS_KEYS {
        let Some(v) = present(m, key) else { continue };
        if *key == "verify_client" && v.as_str().is_some_and(|s| s.trim() == "none") {
            continue;
        }
        let instead = "serve the REST API over plain HTTP without client certificates";
        return Err(refused(ctx, &join("restapi", key), v, instead));
    }
    Ok(())
}

/// `ctl.cacert`, `ctl.certfile`, ... (`ctl.insecure` asks for nothing and passes).
pub(crate) fn refuse_ctl(ctx: &Ctx<'_>, m: &Map<String, Value>) -> R<()> {
    for key in CTL_TLS_KEYS {
        if let Some(v) = present(m, key) {
            let instead = "let pgkeelctl talk to the REST API without TLS";
            return Err(refused(ctx, &join("ctl", key), v, instead));
        }
    }
    Ok(())
}

/// The etcd section at `path`: TLS files, `protocol: https`, or `https://` in `hosts`,
/// `host`, `url` or `proxy`.
pub(crate) fn refuse_etcd(ctx: &Ctx<'_>, m: &Map<String, Value>, path: &str) -> R<()> {
    const INSTEAD: &str = "talk to etcd without TLS";
    for key in ETCD_TLS_KEYS {
        if let Some(v) = present(m, key) {
            return Err(refused(ctx, &join(path, key), v, INSTEAD));
        }
    }
    let https = |v: &Value| {
        v.as_str().is_some_and(|s| {
            s.split(',')
                .any(|h| h.trim().to_ascii_lowercase().starts_with("https://"))
        })
    };
    if let Some(v) = present(m, "protocol")
        && v.as_str()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("https"))
    {
        return Err(refused(ctx, &join(path, "protocol"), v, INSTEAD));
    }
    for key in ["hosts", "host", "url", "proxy"] {
        match present(m, key) {
            Some(Value::Array(items)) => {
                let hp = join(path, key);
                if let Some((i, v)) = items.iter().enumerate().find(|(_, v)| https(v)) {
                    return Err(refused(ctx, &index(&hp, i), v, INSTEAD));
                }
            }
            Some(v) if https(v) => return Err(refused(ctx, &join(path, key), v, INSTEAD)),
            _ => {}
        }
    }
    Ok(())
}

/// One `postgresql.authentication.<role>` section at `path`.
pub(crate) fn refuse_pg_user(ctx: &Ctx<'_>, m: &Map<String, Value>, path: &str) -> R<()> {
    let instead = "connect to PostgreSQL as this role without TLS";
    for key in PG_TLS_FILE_KEYS {
        if let Some(v) = present(m, key) {
            return Err(refused(ctx, &join(path, key), v, instead));
        }
    }
    for (key, requiring) in PG_REQUIRING_VALUES {
        if let Some(v) = present(m, key)
            && v.as_str()
                .is_some_and(|s| requiring.contains(&s.trim().to_ascii_lowercase().as_str()))
        {
            return Err(refused(ctx, &join(path, key), v, instead));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::origin::Origins;
    use serde_json::json;

    fn check(f: fn(&Ctx<'_>, &Map<String, Value>) -> R<()>, v: Value) -> Result<(), String> {
        let o = Origins {
            primary: "t.yml".into(),
            ..Origins::default()
        };
        f(&Ctx::new(&o), v.as_object().expect("object")).map_err(|e| e.to_string())
    }

    fn etcd(ctx: &Ctx<'_>, m: &Map<String, Value>) -> R<()> {
        refuse_etcd(ctx, m, "etcd3")
    }

    fn superuser(ctx: &Ctx<'_>, m: &Map<String, Value>) -> R<()> {
        refuse_pg_user(ctx, m, "postgresql.authentication.superuser")
    }

    #[test]
    fn keys_asking_for_tls_are_refused_by_name() {
        let e = check(refuse_restapi, json!({"certfile": "/c.pem"})).unwrap_err();
        assert_eq!(
            e,
            "t.yml: restapi.certfile: TLS is not supported by pgkeel yet; refusing to start rather than serve the REST API over plain HTTP without client certificates (got \"/c.pem\", expected the key removed, to run without TLS)"
        );
        let e = check(refuse_restapi, json!({"keyfile_password": "s3cret"})).unwrap_err();
        assert!(
            e.contains("restapi.keyfile_password") && !e.contains("s3cret"),
            "{e}"
        );
        assert!(check(refuse_restapi, json!({"verify_client": "required"})).is_err());
        assert!(check(refuse_ctl, json!({"certfile": "/c.pem"})).is_err());
        for bad in [
            json!({"cacert": "/ca.pem"}),
            json!({"protocol": "HTTPS"}),
            json!({"hosts": ["a:2379", "https://b:2379"]}),
            json!({"hosts": "a:2379,https://b:2379"}),
            json!({"url": "https://a:2379"}),
            json!({"proxy": "https://p:2379"}),
        ] {
            let e = check(etcd, bad.clone()).expect_err(&bad.to_string());
            assert!(e.contains("etcd3."), "{e}");
        }
        assert!(
            check(etcd, json!({"hosts": ["a:2379", "https://b:2379"]}))
                .unwrap_err()
                .contains("etcd3.hosts[1]")
        );
        for bad in [
            json!({"sslmode": "verify-full"}),
            json!({"sslmode": "require"}),
            json!({"sslrootcert": "/root.crt"}),
            json!({"gssencmode": "require"}),
            json!({"channel_binding": "require"}),
            json!({"sslnegotiation": "direct"}),
        ] {
            let e = check(superuser, bad.clone()).expect_err(&bad.to_string());
            assert!(
                e.contains("postgresql.authentication.superuser.ssl")
                    || e.contains("superuser.gss")
                    || e.contains("superuser.channel"),
                "{e}"
            );
        }
    }

    #[test]
    fn keys_that_do_not_ask_for_tls_pass() {
        assert!(
            check(
                refuse_restapi,
                json!({"verify_client": "none", "listen": "x:1"})
            )
            .is_ok()
        );
        assert!(check(refuse_ctl, json!({"insecure": true})).is_ok());
        assert!(
            check(
                etcd,
                json!({"protocol": "http", "hosts": ["http://a:2379"]})
            )
            .is_ok()
        );
        for ok in [
            json!({"sslmode": "prefer"}),
            json!({"sslmode": "disable"}),
            json!({"gssencmode": "prefer"}),
            json!({"channel_binding": "prefer"}),
            json!({"sslnegotiation": "postgres"}),
        ] {
            assert!(check(superuser, ok.clone()).is_ok(), "{ok}");
        }
    }
}
