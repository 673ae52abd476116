//! `pgkeelctl failover`: patronictl's unplanned failover to a named candidate (the steps are
//! shared with `switchover`, see [`super::switchover::do_failover_or_switchover`]).

use super::super::{Connect, Context, CtlError, FailoverArgs};
use super::switchover::{Action, Request, cluster_name, do_failover_or_switchover};
use std::io::{BufRead, Write};

/// Runs `failover`.
pub async fn run(
    ctx: &Context,
    args: &FailoverArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let req = Request {
        candidate: args.candidate.clone(),
        force: args.force,
        ..Request::default()
    };
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    do_failover_or_switchover(ctx, Action::Failover, &name, req, connect, input, out).await
}
