//! `pgkeelctl remove CLUSTER`: every key of the cluster deleted from the DCS, after patronictl's
//! three confirmations (the cluster's name, the phrase `Yes I am aware`, and, while a leader
//! holds the key, the leader's name). The member list is shown first, as patronictl does.

use super::super::prompt::prompt;
use super::super::{Connect, Context, CtlError, RemoveArgs};
use super::list::render_list;
use super::read_cluster;
use pgkeel_ha::keys::KeyLayout;
use std::io::{BufRead, Write};

/// The phrase patronictl asks to be typed.
const AWARE: &str = "Yes I am aware";

/// Runs `remove`.
pub async fn run(
    ctx: &Context,
    args: &RemoveArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let name = &args.cluster;
    let dcs = connect(&ctx.target).await?;
    let cluster = read_cluster(dcs.as_ref(), &ctx.target.namespace, name).await?;
    write!(
        out,
        "{}",
        render_list(&cluster, name, args.format, false, false)
    )?;
    if prompt(
        input,
        out,
        "Please confirm the cluster name to remove",
        None,
    )? != *name
    {
        return Err(CtlError::Failed(
            "Cluster names specified do not match".into(),
        ));
    }
    let text = format!(
        "You are about to remove all information in DCS for {name}, please type: \"{AWARE}\""
    );
    if prompt(input, out, &text, None)? != AWARE {
        return Err(CtlError::Failed(format!(
            "You did not exactly type \"{AWARE}\""
        )));
    }
    if let Some(leader) = cluster.leader_name().filter(|l| !l.is_empty()) {
        let given = prompt(
            input,
            out,
            "This cluster currently is healthy. Please specify the leader name to continue",
            None,
        )?;
        if given != leader {
            return Err(CtlError::Failed(
                "You did not specify the current leader of the cluster".into(),
            ));
        }
    }
    let layout = KeyLayout::new(&ctx.target.namespace, name);
    dcs.delete_prefix(layout.prefix()).await?;
    Ok(())
}
