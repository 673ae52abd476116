//! Member selection and confirmation shared by `restart`, `reload`, `reinit` and `flush`:
//! patronictl 4.1's `get_all_members`, `get_members`, `confirm_members_action`,
//! `check_response` and `get_all_members_leader_first`.

use super::super::prompt::{confirm, prompt};
use super::super::request::{Response, request_patroni};
use super::super::{Connect, Context, CtlError, Role};
use super::list::render_list_group;
use super::read_cluster;
use crate::ctl::OutputFormat;
use crate::dcs::Dcs;
use pgkeel_ha::cluster::{Cluster, Member};
use std::io::{BufRead, Write};
use std::sync::Arc;

/// The scope of `--group N`'s keys: `<name>/<N>`, else `name`.
pub(crate) fn group_scope(name: &str, group: Option<i64>) -> String {
    match group {
        Some(g) => format!("{name}/{g}"),
        None => name.to_string(),
    }
}

/// Connects and reads `name` (with `--group N`, the Citus group's keys under `<name>/<N>/`).
pub(crate) async fn read_group_cluster(
    ctx: &Context,
    name: &str,
    group: Option<i64>,
    connect: Connect<'_>,
) -> Result<(Arc<dyn Dcs>, Cluster), CtlError> {
    let scope = group_scope(name, group);
    let dcs = connect(&ctx.target).await?;
    let cluster = read_cluster(dcs.as_ref(), &ctx.target.namespace, &scope).await?;
    Ok((dcs, cluster))
}

/// patronictl's `get_all_members`: the members that have `role`, in the cluster's order.
pub fn all_members(cluster: &Cluster, role: Role) -> Vec<&Member> {
    let leader = cluster.leader_member();
    match role {
        Role::Leader | Role::Primary | Role::StandbyLeader => leader
            .filter(|l| {
                let primary = l.role == "primary" || l.role == "master";
                match role {
                    Role::Leader => true,
                    Role::StandbyLeader => !primary,
                    _ => l.role != "standby_leader",
                }
            })
            .into_iter()
            .collect(),
        Role::Any => cluster.members.iter().collect(),
        Role::Replica | Role::Standby => cluster
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != cluster.leader_name())
            .collect(),
    }
}

/// patronictl's `get_all_members_leader_first`: members with an `api_url`, the leader first.
pub fn members_leader_first(cluster: &Cluster) -> Vec<(String, String)> {
    let leader = cluster
        .leader_member()
        .and_then(|m| m.api_url.clone().map(|u| (m.name.clone(), u)));
    let mut out: Vec<(String, String)> = leader.iter().cloned().collect();
    for m in &cluster.members {
        if let Some(u) = &m.api_url
            && leader.as_ref().is_none_or(|(l, _)| *l != m.name)
        {
            out.push((m.name.clone(), u.clone()));
        }
    }
    out
}

/// What [`get_members`] is asked for.
pub struct Selection<'a> {
    /// The cluster's name (for the table and messages).
    pub cluster_name: &'a str,
    /// The members named on the command line.
    pub member_names: &'a [String],
    /// `--role` (`replica` for `reinit`).
    pub role: Role,
    /// `repr(role)` as patronictl prints it: `'any'` for a `--role` option (a string),
    /// `replica` for `reinit` (the enum).
    pub role_repr: String,
    /// `--group`: the table is titled as a Citus group's.
    pub group: Option<i64>,
    /// `--force`.
    pub force: bool,
    /// `restart`, `reload`, `reinitialize` or `flush`.
    pub action: &'a str,
    /// Ask the final confirmation (`confirm_members_action`) before returning.
    pub ask_confirmation: bool,
}

impl<'a> Selection<'a> {
    /// The selection of a command with a `--role` option (its `repr` quoted, as patronictl
    /// prints a string option) that confirms before acting.
    pub fn for_role_option(
        cluster_name: &'a str,
        member_names: &'a [String],
        role: Role,
        group: Option<i64>,
        force: bool,
        action: &'a str,
    ) -> Selection<'a> {
        Selection {
            cluster_name,
            member_names,
            role,
            role_repr: format!("'{}'", role.as_str()),
            group,
            force,
            action,
            ask_confirmation: true,
        }
    }
}

/// patronictl's `get_members`: prints the members table, checks the names, asks for a member
/// (`reinitialize` without names) and, when asked, confirms the action.
pub fn get_members<'c>(
    cluster: &'c Cluster,
    sel: &Selection<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<Vec<&'c Member>, CtlError> {
    let members = all_members(cluster, sel.role);
    let candidates: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    if sel.member_names.is_empty() && candidates.is_empty() {
        return Err(CtlError::Failed(format!(
            "{} cluster doesn't have any members",
            sel.cluster_name
        )));
    }
    write!(
        out,
        "{}",
        render_list_group(
            cluster,
            sel.cluster_name,
            OutputFormat::Pretty,
            false,
            false,
            sel.group
        )
    )?;
    let mut names: Vec<String> = if !sel.member_names.is_empty() {
        let wanted: Vec<String> = candidates
            .iter()
            .filter(|c| sel.member_names.iter().any(|n| n == *c))
            .map(|c| c.to_string())
            .collect();
        if wanted.is_empty() {
            return Err(CtlError::Failed(format!(
                "No {} among provided members",
                sel.role_repr
            )));
        }
        wanted
    } else if sel.action != "reinitialize" {
        candidates.iter().map(|c| c.to_string()).collect()
    } else {
        Vec::new()
    };
    if names.is_empty() && !sel.force {
        let text = format!(
            "Which member do you want to {} [{}]?",
            sel.action,
            candidates.join(", ")
        );
        names = vec![prompt(input, out, &text, Some(""))?];
    }
    if let Some(n) = names.iter().find(|n| !candidates.contains(&n.as_str())) {
        return Err(CtlError::Failed(format!("{n} is not a member of cluster")));
    }
    let chosen: Vec<&Member> = members
        .into_iter()
        .filter(|m| names.contains(&m.name))
        .collect();
    if sel.ask_confirmation {
        confirm_members_action(&chosen, sel.force, sel.action, None, false, input, out)?;
    }
    Ok(chosen)
}

/// patronictl's `confirm_members_action`; `scheduled_at` is the time as Python's `str()`
/// prints it.
pub fn confirm_members_action(
    members: &[&Member],
    force: bool,
    action: &str,
    scheduled_at: Option<&str>,
    pending: bool,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    if force {
        return Ok(());
    }
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let names = names.join(", ");
    match scheduled_at {
        Some(at) => {
            let text = if pending {
                "The nodes needing a restart will be identified at the scheduled time, and might be different from the ones showing pending restart right now. Is this fine?".to_string()
            } else {
                format!("Are you sure you want to schedule {action} of members {names} at {at}?")
            };
            if !confirm(input, out, &text)? {
                return Err(CtlError::Failed(format!("Aborted scheduled {action}")));
            }
        }
        None => {
            let text = format!("Are you sure you want to {action} members {names}?");
            if !confirm(input, out, &text)? {
                return Err(CtlError::Failed(format!("Aborted {action}")));
            }
        }
    }
    Ok(())
}

/// patronictl's `check_response`: prints `Failed: ...` for a status >= 400 (and returns
/// false), else `Success: ...` unless `silent_success`.
pub fn check_response(
    out: &mut (dyn Write + Send),
    r: &Response,
    member: &str,
    action: &str,
    silent_success: bool,
) -> Result<bool, CtlError> {
    if r.status >= 400 {
        writeln!(
            out,
            "Failed: {action} for member {member}, status code={}, ({})",
            r.status, r.body
        )?;
        return Ok(false);
    }
    if !silent_success {
        writeln!(out, "Success: {action} for member {member}")?;
    }
    Ok(true)
}

/// `member.data.get('scheduled_restart')` is truthy: a non-empty `scheduled_restart`.
pub fn has_scheduled_restart(m: &Member) -> bool {
    m.scheduled_restart.as_ref().is_some_and(|s| !s.is_empty())
}

/// `request_patroni(member, method, endpoint, body)`; no answer ends the command (patronictl
/// lets the exception end it).
pub async fn member_request(
    ctx: &Context,
    m: &Member,
    method: reqwest::Method,
    endpoint: &str,
    body: Option<String>,
) -> Result<Response, CtlError> {
    request_patroni(
        ctx.rest_auth(),
        &m.name,
        m.api_url.as_deref(),
        method,
        endpoint,
        body,
    )
    .await
    .map_err(|e| CtlError::Failed(e.to_string()))
}
