//! `pgkeelctl reload`: patronictl 4.1's `reload`, `POST /reload` on every chosen member.

use super::super::{Connect, Context, CtlError, ReloadArgs};
use super::members::{Selection, get_members, member_request, read_group_cluster};
use serde_json::Value;
use std::io::{BufRead, Write};

/// Runs `reload`.
pub async fn run(
    ctx: &Context,
    args: &ReloadArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let (_dcs, cluster) = read_group_cluster(ctx, &args.cluster, args.group, connect).await?;
    let sel = Selection::for_role_option(
        &args.cluster,
        &args.members,
        args.role,
        args.group,
        args.force,
        "reload",
    );
    let members = get_members(&cluster, &sel, input, out)?;
    for m in members {
        let r = member_request(ctx, m, reqwest::Method::POST, "reload", None).await?;
        match r.status {
            200 => writeln!(out, "No changes to apply on member {}", m.name)?,
            202 => writeln!(
                out,
                "Reload request received for member {} and will be processed within {} seconds",
                m.name,
                loop_wait(&cluster)
            )?,
            s => writeln!(
                out,
                "Failed: reload for member {}, status code={s}, ({})",
                m.name, r.body
            )?,
        }
    }
    Ok(())
}

/// `config.get('loop_wait') or dcs.loop_wait`, as Python's `str()` prints it.
fn loop_wait(cluster: &pgkeel_ha::cluster::Cluster) -> String {
    let v = cluster
        .config
        .as_ref()
        .and_then(|c| c.data.get("loop_wait"));
    match v {
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f != 0.0) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => "10".into(),
    }
}
