//! `pgkeelctl reinit`: patronictl 4.1's `reinit`, `POST /reinitialize` on the chosen
//! replicas (a leader is refused), offering to force it when the member answers that an
//! action is already in progress, then with `--wait` polling `GET /patroni` until none is
//! `creating replica`.

use super::super::output::json;
use super::super::prompt::confirm;
use super::super::{Connect, Context, CtlError, ReinitArgs, Role};
use super::members::{Selection, check_response, get_members, member_request, read_group_cluster};
use pgkeel_ha::cluster::Member;
use reqwest::Method;
use serde_json::Value;
use std::io::{BufRead, Write};

/// Runs `reinit`.
pub async fn run(
    ctx: &Context,
    args: &ReinitArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let (_dcs, cluster) = read_group_cluster(ctx, &args.cluster, args.group, connect).await?;
    let sel = Selection {
        // patronictl passes the enum here, whose repr is unquoted.
        role_repr: Role::Replica.as_str().to_string(),
        ..Selection::for_role_option(
            &args.cluster,
            &args.members,
            Role::Replica,
            args.group,
            args.force,
            "reinitialize",
        )
    };
    let members = get_members(&cluster, &sel, input, out)?;
    let mut waiting: Vec<&Member> = Vec::new();
    for m in members {
        let mut force = args.force;
        let started = loop {
            let body = json::dumps(&serde_json::json!({
                "force": force,
                "from_leader": args.from_leader,
            }));
            let r = member_request(ctx, m, Method::POST, "reinitialize", Some(body)).await?;
            let started = check_response(out, &r, &m.name, "reinitialize", false)?;
            if !started
                && r.body.ends_with(" already in progress")
                && !args.force
                && confirm(
                    input,
                    out,
                    "Do you want to cancel it and reinitialize anyway?",
                )?
            {
                force = true;
                continue;
            }
            break started;
        };
        if started && args.wait {
            waiting.push(m);
        }
    }

    let mut last_display: Vec<String> = Vec::new();
    while !waiting.is_empty() {
        let names: Vec<String> = waiting.iter().map(|m| m.name.clone()).collect();
        if names != last_display {
            writeln!(
                out,
                "Waiting for reinitialize to complete on: {}",
                names.join(", ")
            )?;
            out.flush()?;
            last_display = names;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        // patronictl removes finished members while iterating over the list, so the member
        // after a finished one is only looked at in the next round; kept for equal output.
        let mut i = 0;
        while i < waiting.len() {
            let m = waiting[i];
            let r = member_request(ctx, m, Method::GET, "patroni", None).await?;
            let state: Value = serde_json::from_str(&r.body)
                .map_err(|e| CtlError::Failed(format!("{}: bad /patroni answer: {e}", m.name)))?;
            if state.get("state").and_then(Value::as_str) != Some("creating replica") {
                writeln!(out, "Reinitialize is completed on: {}", m.name)?;
                waiting.remove(i);
            }
            i += 1;
        }
    }
    Ok(())
}
