//! `pgkeelctl topology`: `list` in topology form (leader first, replicas indented under the
//! member they stream from).

use super::super::{Connect, Context, CtlError, OutputFormat, TopologyArgs};
use super::list::render_list;
use std::io::Write;

/// Runs `topology`.
pub async fn run(
    ctx: &Context,
    args: &TopologyArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let names = ctx.cluster_names(&args.clusters)?;
    super::print_clusters(ctx, &names, &args.watch, false, connect, out, &|c, name| {
        render_list(c, name, OutputFormat::Pretty, false, true)
    })
    .await
}
