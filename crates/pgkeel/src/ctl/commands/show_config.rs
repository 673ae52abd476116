//! `pgkeelctl show-config`: the `config` key as patronictl's `format_config_for_editing`
//! prints it (PyYAML `safe_dump`, block style, keys sorted), followed by click's newline.
//! Nothing is printed when the key is absent.

use super::super::output::yaml;
use super::super::{Connect, Context, CtlError, ShowConfigArgs};
use super::read_named_cluster;
use serde_json::Value;
use std::io::Write;

/// Runs `show-config`.
pub async fn run(
    ctx: &Context,
    args: &ShowConfigArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let cluster = read_named_cluster(ctx, args.cluster.as_deref(), connect).await?;
    if let Some(config) = &cluster.config {
        writeln!(
            out,
            "{}",
            yaml::dump_block(&Value::Object(config.data.clone()))
        )?;
    }
    Ok(())
}
