//! `pgkeelctl flush`: patronictl 4.1's `flush`. `restart`: `DELETE /restart` on the chosen
//! members that have a scheduled restart. `switchover`: `DELETE /switchover` on the members,
//! leader first, until one answers 200 or 404; when none does, the `failover` key is emptied
//! (compare-and-set on its revision).

use super::super::request::request_patroni;
use super::super::{Connect, Context, CtlError, FlushArgs};
use super::members::{
    Selection, check_response, get_members, group_scope, has_scheduled_restart, member_request,
    members_leader_first, read_group_cluster,
};
use super::timestamp_micros;
use pgkeel_ha::keys::KeyLayout;
use std::io::{BufRead, Write};

/// Runs `flush`.
pub async fn run(
    ctx: &Context,
    args: &FlushArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let Some((target, member_names)) = args.members_and_target.split_last() else {
        return Err(CtlError::Usage(
            "Missing argument '{restart|switchover}'".into(),
        ));
    };
    if target != "restart" && target != "switchover" {
        return Err(CtlError::Usage(format!(
            "Invalid value for '{{restart|switchover}}': '{target}' is not one of 'restart', 'switchover'."
        )));
    }
    let (dcs, cluster) = read_group_cluster(ctx, &args.cluster, args.group, connect).await?;
    if target == "restart" {
        let sel = Selection::for_role_option(
            &args.cluster,
            member_names,
            args.role,
            args.group,
            args.force,
            "flush",
        );
        for m in get_members(&cluster, &sel, input, out)? {
            if has_scheduled_restart(m) {
                let r = member_request(ctx, m, reqwest::Method::DELETE, "restart", None).await?;
                check_response(out, &r, &m.name, "flush scheduled restart", false)?;
            } else {
                writeln!(out, "No scheduled restart for member {}", m.name)?;
            }
        }
        return Ok(());
    }

    let Some(failover) = cluster
        .failover
        .as_ref()
        .filter(|f| f.scheduled_at.as_deref().is_some_and(|s| !s.is_empty()))
    else {
        writeln!(out, "No pending scheduled switchover")?;
        return Ok(());
    };
    for (name, api_url) in members_leader_first(&cluster) {
        match request_patroni(
            ctx.rest_auth(),
            &name,
            Some(&api_url),
            reqwest::Method::DELETE,
            "switchover",
            None,
        )
        .await
        {
            Ok(r) if r.status == 200 || r.status == 404 => {
                let prefix = if r.status == 200 { "Success" } else { "Failed" };
                writeln!(out, "{prefix}: {}", r.body)?;
                return Ok(());
            }
            Ok(r) => writeln!(
                out,
                "Failed: member={name}, status_code={}, ({})",
                r.status, r.body
            )?,
            Err(e) => {
                eprintln!("WARNING - {e}");
                eprintln!("WARNING - Member {name} is not accessible");
            }
        }
    }
    eprintln!("WARNING - Failing over to DCS");
    writeln!(
        out,
        "{} Could not find any accessible member of cluster {}",
        timestamp_micros(),
        args.cluster
    )?;
    let layout = KeyLayout::new(
        &ctx.target.namespace,
        &group_scope(&args.cluster, args.group),
    );
    dcs.put_if_mod_revision(&layout.failover(), failover.mod_revision, b"{}")
        .await?;
    Ok(())
}
