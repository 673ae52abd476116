//! `pgkeelctl version [CLUSTER [MEMBER...]]`: this tool's version, then, for each member with
//! a REST API (all, or those named), the agent and PostgreSQL versions its `/patroni` reports,
//! in patronictl's format (`node1: Patroni 4.1.4 PostgreSQL 15.4`).

use super::super::request::request_patroni;
use super::super::{Connect, Context, CtlError, VersionArgs};
use super::read_cluster;
use serde_json::Value;
use std::io::Write;

/// Runs `version`.
pub async fn run(
    ctx: &Context,
    args: &VersionArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    writeln!(out, "pgkeelctl version {}", env!("CARGO_PKG_VERSION"))?;
    let Some(name) = &args.cluster else {
        return Ok(());
    };
    writeln!(out)?;
    let dcs = connect(&ctx.target).await?;
    let cluster = read_cluster(dcs.as_ref(), &ctx.target.namespace, name).await?;
    for m in &cluster.members {
        let Some(api_url) = m.api_url.as_deref() else {
            continue;
        };
        if !args.members.is_empty() && !args.members.contains(&m.name) {
            continue;
        }
        let answer = request_patroni(
            ctx.rest_auth(),
            &m.name,
            Some(api_url),
            reqwest::Method::GET,
            "patroni",
            None,
        )
        .await;
        let line = match answer
            .map_err(|e| e.to_string())
            .and_then(|r| serde_json::from_str::<Value>(&r.body).map_err(|e| e.to_string()))
        {
            Ok(status) => {
                let agent = status["patroni"]["version"].as_str().unwrap_or("None");
                match status["server_version"].as_u64().filter(|v| *v > 0) {
                    Some(v) => format!(
                        "{}: Patroni {agent} PostgreSQL {}",
                        m.name,
                        format_pg_version(v)
                    ),
                    None => format!("{}: Patroni {agent}", m.name),
                }
            }
            Err(e) => format!("{}: failed to get version: {e}", m.name),
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// Patroni's `format_pg_version`: 150004 -> `15.4`, 90603 -> `9.6.3`.
fn format_pg_version(version: u64) -> String {
    if version < 100_000 {
        format!(
            "{}.{}.{}",
            version / 10_000,
            version / 100 % 100,
            version % 100
        )
    } else {
        format!("{}.{}", version / 10_000, version % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_print_as_patroni_prints_them() {
        assert_eq!(format_pg_version(150004), "15.4");
        assert_eq!(format_pg_version(90603), "9.6.3");
        assert_eq!(format_pg_version(170000), "17.0");
    }
}
