//! `pgkeelctl dsn [CLUSTER] [-r ROLE | -m MEMBER]`: `host=<h> port=<p>` of the leader (by
//! default), of the first member with a role, or of a named member, from its `conn_url`, as
//! patronictl's `dsn` prints it.

use super::super::{Connect, Context, CtlError, DsnArgs, Role};
use super::members::{all_members, read_group_cluster};
use super::switchover::cluster_name;
use std::io::Write;

/// Runs `dsn`.
pub async fn run(
    ctx: &Context,
    args: &DsnArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    // patronictl's `get_any_member`.
    let role = match (&args.member, args.role) {
        (Some(_), Some(_)) => {
            return Err(CtlError::Failed(
                "--role and --member are mutually exclusive options".into(),
            ));
        }
        (Some(_), None) => Role::Any,
        (None, role) => role.unwrap_or(Role::Leader),
    };
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    let (_, cluster) = read_group_cluster(ctx, &name, args.group, connect).await?;
    let member = all_members(&cluster, role)
        .into_iter()
        .find(|m| args.member.as_ref().is_none_or(|wanted| *wanted == m.name))
        .ok_or_else(|| CtlError::Failed("Can not find a suitable member".into()))?;
    let (host, port) = member.host_port().ok_or_else(|| {
        CtlError::Failed(format!("member {} has no usable conn_url", member.name))
    })?;
    // Python's `urlparse(...).hostname` is lower-case.
    writeln!(out, "host={} port={port}", host.to_lowercase())?;
    Ok(())
}
