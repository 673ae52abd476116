//! One file per pgkeelctl subcommand, plus helpers they share.

pub mod dsn;
pub mod edit_config;
pub mod failover;
pub mod flush;
pub mod history;
pub mod list;
pub mod members;
pub mod pause;
pub mod query;
pub mod reinit;
pub mod reload;
pub mod remove;
pub mod restart;
pub mod resume;
pub mod show_config;
pub mod switchover;
pub mod topology;
pub mod version;

use super::{Connect, Context, CtlError, WatchArgs};
use crate::dcs::Dcs;
use pgkeel_ha::cluster::Cluster;
use pgkeel_ha::keys::KeyLayout;
use std::io::Write;
use std::sync::Arc;

/// Reads one cluster's keys from the DCS.
pub async fn read_cluster(
    dcs: &dyn Dcs,
    namespace: &str,
    scope: &str,
) -> Result<Cluster, CtlError> {
    Ok(crate::api::read_cluster(dcs, &KeyLayout::new(namespace, scope)).await?)
}

/// The cluster a single-cluster command names (default: the configuration's `scope`), read
/// from the DCS.
pub(crate) async fn read_named_cluster(
    ctx: &Context,
    cluster: Option<&str>,
    connect: Connect<'_>,
) -> Result<Cluster, CtlError> {
    let name = switchover::cluster_name(ctx, cluster)?;
    let dcs = connect(&ctx.target).await?;
    read_cluster(dcs.as_ref(), &ctx.target.namespace, &name).await
}

/// `patronictl`'s `timestamp(0)`: local time `2024-01-01 12:00:00`.
pub fn timestamp() -> String {
    jiff::ZonedDateTime::now()
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `patronictl`'s `timestamp()` (precision 6): `2024-01-01 12:00:00.12345`, the microseconds
/// cut to five digits as its `[:-1]` slice does.
pub fn timestamp_micros() -> String {
    let mut s = jiff::ZonedDateTime::now()
        .strftime("%Y-%m-%d %H:%M:%S.%6f")
        .to_string();
    s.pop();
    s
}

/// Prints `render(cluster, name)` for every cluster, repeating under `-W`/`-w` (the screen is
/// cleared before each round, like click.clear()).
pub(crate) async fn print_clusters(
    ctx: &Context,
    names: &[String],
    watch: &WatchArgs,
    with_timestamp: bool,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
    render: &(dyn Fn(&Cluster, &str) -> String + Sync),
) -> Result<(), CtlError> {
    let dcs: Arc<dyn Dcs> = connect(&ctx.target).await?;
    let interval = watch.interval();
    loop {
        let started = tokio::time::Instant::now();
        if interval.is_some() {
            write!(out, "\x1b[2J\x1b[1;1H")?;
        }
        if with_timestamp {
            writeln!(out, "{}", timestamp())?;
        }
        for name in names {
            let cluster = read_cluster(dcs.as_ref(), &ctx.target.namespace, name).await?;
            write!(out, "{}", render(&cluster, name))?;
        }
        out.flush()?;
        match interval {
            Some(i) => tokio::time::sleep_until(started + i).await,
            None => return Ok(()),
        }
    }
}
