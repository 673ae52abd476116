//! `pgkeelctl pause`, and the steps it shares with `resume`: patronictl 4.1's `toggle_pause`
//! and `wait_until_pause_is_applied`. `PATCH /config` with `{"pause": true}` (or `null`) goes
//! to the leader first, then to the other members, until one answers.

use super::super::output::json;
use super::super::request::request_patroni;
use super::super::{Connect, Context, CtlError, PauseArgs};
use super::members::members_leader_first;
use super::read_cluster;
use super::switchover::cluster_name;
use crate::dcs::Dcs;
use pgkeel_ha::cluster::{Cluster, bool_value};
use pgkeel_ha::keys::KeyLayout;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;

/// Runs `pause`.
pub async fn run(
    ctx: &Context,
    args: &PauseArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    toggle_pause(ctx, &name, true, args.wait, connect, out).await
}

/// `paused and 'x' or 'y'`.
fn word(paused: bool, yes: &'static str, no: &'static str) -> &'static str {
    if paused { yes } else { no }
}

/// patronictl's `toggle_pause`.
pub async fn toggle_pause(
    ctx: &Context,
    cluster_name: &str,
    paused: bool,
    wait: bool,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let dcs = connect(&ctx.target).await?;
    let cluster = read_cluster(dcs.as_ref(), &ctx.target.namespace, cluster_name).await?;
    let config = cluster
        .config
        .as_ref()
        .map(|c| c.data.clone())
        .unwrap_or_default();
    let is_paused = config.get("pause").and_then(bool_value).unwrap_or(false);
    if is_paused == paused {
        return Err(CtlError::Failed(format!(
            "Cluster is {} paused",
            word(paused, "already", "not")
        )));
    }
    let body = json::dumps(
        &serde_json::json!({"pause": if paused { Value::Bool(true) } else { Value::Null }}),
    );
    for (name, api_url) in members_leader_first(&cluster) {
        let r = match request_patroni(
            ctx.rest_auth(),
            &name,
            Some(&api_url),
            reqwest::Method::PATCH,
            "config",
            Some(body.clone()),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("WARNING - {e}");
                eprintln!("WARNING - Member {name} is not accessible");
                continue;
            }
        };
        if r.status == 200 {
            if wait {
                let loop_wait = config
                    .get("loop_wait")
                    .and_then(Value::as_f64)
                    .filter(|w| *w != 0.0)
                    .unwrap_or(10.0);
                wait_until_applied(
                    dcs.as_ref(),
                    ctx,
                    cluster_name,
                    paused,
                    &cluster,
                    loop_wait,
                    out,
                )
                .await?;
            } else {
                writeln!(
                    out,
                    "Success: cluster management is {}",
                    word(paused, "paused", "resumed")
                )?;
            }
        } else {
            writeln!(
                out,
                "Failed: {} cluster management status code={}, ({})",
                word(paused, "pause", "resume"),
                r.status,
                r.body
            )?;
        }
        return Ok(());
    }
    Err(CtlError::Failed(
        "Can not find accessible cluster member".into(),
    ))
}

/// Each member key's `pause` field (`m.data.get('pause', False)`) and mod_revision.
async fn member_pause_states(
    dcs: &dyn Dcs,
    layout: &KeyLayout,
) -> Result<BTreeMap<String, (bool, i64)>, CtlError> {
    let prefix = layout.members_prefix();
    let snap = dcs.get_prefix(&prefix).await?;
    Ok(snap
        .kvs
        .iter()
        .filter_map(|kv| {
            let name = kv
                .key
                .strip_prefix(&prefix)?
                .trim_start_matches('/')
                .to_string();
            let pause = serde_json::from_slice::<Value>(&kv.value)
                .ok()
                .and_then(|v| {
                    v.get("pause")
                        .map(|p| matches!(p, Value::Bool(true)) || p.as_i64() == Some(1))
                })
                .unwrap_or(false);
            Some((name, (pause, kv.mod_revision)))
        })
        .collect())
}

/// patronictl's `wait_until_pause_is_applied`: polls the member keys every second for
/// `loop_wait + 1` seconds until every member that had an `api_url` reports the new state.
async fn wait_until_applied(
    dcs: &dyn Dcs,
    ctx: &Context,
    cluster_name: &str,
    paused: bool,
    old_cluster: &Cluster,
    loop_wait: f64,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    writeln!(
        out,
        "'{}' request sent, waiting until it is recognized by all nodes",
        word(paused, "pause", "resume")
    )?;
    out.flush()?;
    let old: BTreeMap<&str, i64> = old_cluster
        .members
        .iter()
        .filter(|m| m.api_url.is_some())
        .map(|m| (m.name.as_str(), m.mod_revision))
        .collect();
    let layout = KeyLayout::new(&ctx.target.namespace, cluster_name);
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs_f64(loop_wait + 1.0);
    let mut states = BTreeMap::new();
    while tokio::time::Instant::now() < deadline {
        states = member_pause_states(dcs, &layout).await?;
        if states
            .iter()
            .filter(|(n, _)| old.contains_key(n.as_str()))
            .all(|(_, (p, _))| *p == paused)
        {
            writeln!(
                out,
                "Success: cluster management is {}",
                word(paused, "paused", "resumed")
            )?;
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let remaining: Vec<&str> = states
        .iter()
        .filter(|(n, (p, rev))| *p != paused && old.get(n.as_str()).is_some_and(|o| o != rev))
        .map(|(n, _)| n.as_str())
        .collect();
    if remaining.is_empty() {
        writeln!(
            out,
            "Success: cluster management is {}",
            word(paused, "paused", "resumed")
        )?;
    } else {
        writeln!(
            out,
            "{} members didn't recognized pause state after {} seconds",
            remaining.join(", "),
            python_number(loop_wait)
        )?;
    }
    Ok(())
}

/// `str()` of the `loop_wait` value as patronictl prints it (integers without `.0`).
fn python_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}
