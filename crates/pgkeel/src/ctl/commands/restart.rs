//! `pgkeelctl restart`: patronictl 4.1's `restart`. Asks when (unless `--scheduled` or
//! `--force`), confirms, asks for a version bound, then `POST /restart` on every chosen member
//! with `{"restart_pending", "postgres_version", "schedule", "timeout"}` as given.

use super::super::output::json;
use super::super::prompt::prompt;
use super::super::{Connect, Context, CtlError, RestartArgs};
use super::members::{
    Selection, check_response, confirm_members_action, get_members, has_scheduled_restart,
    member_request, read_group_cluster,
};
use super::switchover::{check_mode, isoformat, next_hour, parse_scheduled};
use serde_json::{Map, Value};
use std::io::{BufRead, Write};

/// Runs `restart`.
pub async fn run(
    ctx: &Context,
    args: &RestartArgs,
    connect: Connect<'_>,
    input: &mut (dyn BufRead + Send),
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let (_dcs, cluster) = read_group_cluster(ctx, &args.cluster, args.group, connect).await?;
    let sel = Selection {
        // restart confirms after its own prompts (the schedule and the version).
        ask_confirmation: false,
        ..Selection::for_role_option(
            &args.cluster,
            &args.members,
            args.role,
            args.group,
            args.force,
            "restart",
        )
    };
    let mut members = get_members(&cluster, &sel, input, out)?;

    let scheduled = match &args.scheduled {
        Some(s) => Some(s.clone()),
        None if args.force => None,
        None => {
            let text = format!("When should the restart take place (e.g. {}) ", next_hour());
            Some(prompt(input, out, &text, Some("now"))?)
        }
    };
    let scheduled_at = parse_scheduled(scheduled.as_deref())?;

    let mut content = Map::new();
    if args.pending {
        content.insert("restart_pending".into(), Value::Bool(true));
        // A scheduled restart finds the members needing it at its time.
        if scheduled_at.is_none() {
            members.retain(|m| m.pending_restart);
        }
    }
    if args.any && !members.is_empty() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let pick = members.swap_remove(nanos as usize % members.len());
        members = vec![pick];
    }

    // Python's str(datetime): isoformat with a space.
    let shown = scheduled_at
        .as_ref()
        .map(|t| isoformat(t).replacen('T', " ", 1));
    confirm_members_action(
        &members,
        args.force,
        "restart",
        shown.as_deref(),
        args.pending,
        input,
        out,
    )?;

    let version = match &args.pg_version {
        Some(v) => Some(v.clone()),
        None if args.force => None,
        None => Some(prompt(
            input,
            out,
            "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2) ",
            Some(""),
        )?),
    };
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        check_version(&v)?;
        content.insert("postgres_version".into(), Value::from(v));
    }
    if let Some(at) = &scheduled_at {
        let config = cluster
            .config
            .as_ref()
            .map(|c| c.data.clone())
            .unwrap_or_default();
        if check_mode(&config, "pause") {
            return Err(CtlError::Failed(
                "Can't schedule restart in the paused state".into(),
            ));
        }
        content.insert("schedule".into(), Value::from(isoformat(at)));
    }
    if let Some(t) = &args.timeout {
        content.insert("timeout".into(), Value::from(t.clone()));
    }
    let body = json::dumps(&Value::Object(content.clone()));

    for m in members {
        if content.contains_key("schedule") && args.force && has_scheduled_restart(m) {
            let r = member_request(ctx, m, reqwest::Method::DELETE, "restart", None).await?;
            check_response(out, &r, &m.name, "flush scheduled restart", true)?;
        }
        let r =
            member_request(ctx, m, reqwest::Method::POST, "restart", Some(body.clone())).await?;
        match r.status {
            200 => writeln!(out, "Success: restart on member {}", m.name)?,
            202 => writeln!(out, "Success: restart scheduled on member {}", m.name)?,
            409 => writeln!(
                out,
                "Failed: another restart is already scheduled on member {}",
                m.name
            )?,
            s => writeln!(
                out,
                "Failed: restart for member {}, status code={s}, ({})",
                m.name, r.body
            )?,
        }
    }
    Ok(())
}

/// patronictl's check of `--pg-version` (Patroni's `postgres_version_to_int`): `X.Y` from 10
/// on, `X.Y.Z` before, integers only.
fn check_version(v: &str) -> Result<(), CtlError> {
    let parts: Option<Vec<i64>> = v.split('.').map(|p| p.trim().parse().ok()).collect();
    let Some(parts) = parts else {
        return Err(CtlError::Failed(format!("Invalid PostgreSQL version: {v}")));
    };
    if parts.len() < 2 || (parts.len() == 2 && parts[0] < 10) || parts.len() > 3 {
        return Err(CtlError::Failed(format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {v}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked_like_patroni() {
        assert!(check_version("9.5.2").is_ok());
        assert!(check_version("15.2").is_ok());
        assert_eq!(
            check_version("9.6").unwrap_err().to_string(),
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6"
        );
        assert_eq!(
            check_version("a.b").unwrap_err().to_string(),
            "Invalid PostgreSQL version: a.b"
        );
    }
}
