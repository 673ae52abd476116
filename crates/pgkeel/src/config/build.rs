//! Turns the merged YAML tree (files + environment) into the typed [`Config`]: checks the top
//! level, calls each section's builder ([`super::sections`]) and the cross-field checks
//! ([`super::validate`]). Key tables are in [`super::keys`], value readers in [`super::read`],
//! defaults in [`super::defaults`].

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::defaults::DEFAULT_NAMESPACE;
use super::error::ConfigError;
use super::keys::{TOP_KNOWN, TOP_UNSUPPORTED, check_keys};
use super::origin::Ctx;
use super::read::{opt_nonempty_str, req_str, section};
use super::sections::bootstrap::build_bootstrap;
use super::sections::ctl::{build_ctl, ctl_rest_auth};
use super::sections::etcd::{build_etcd, build_etcd_opt};
use super::sections::log::build_log;
use super::sections::postgresql::build_postgresql;
use super::sections::restapi::build_restapi;
use super::sections::tags::build_tags;
use super::{Config, CtlSettings, tls, validate};

type R<T> = Result<T, ConfigError>;

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
    let namespace = opt_nonempty_str(ctx, top, "", "namespace")?
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());

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
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        etcd: build_etcd_opt(ctx, top)?,
        rest_auth: ctl_rest_auth(ctx, top)?,
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
