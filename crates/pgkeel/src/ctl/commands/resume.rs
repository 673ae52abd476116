//! `pgkeelctl resume`: leaves maintenance mode (`PATCH /config` with `{"pause": null}`), see
//! [`super::pause::toggle_pause`].

use super::super::{Connect, Context, CtlError, PauseArgs};
use super::pause::toggle_pause;
use super::switchover::cluster_name;
use std::io::Write;

/// Runs `resume`.
pub async fn run(
    ctx: &Context,
    args: &PauseArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let name = cluster_name(ctx, args.cluster.as_deref())?;
    toggle_pause(ctx, &name, false, args.wait, connect, out).await
}
