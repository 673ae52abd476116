//! The `tags:` section: the typed tags the HA core reads, and every tag as Patroni publishes it
//! in the member key.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::Tags;
use crate::config::defaults::DEFAULT_FAILOVER_PRIORITY;
use crate::config::error::ConfigError;
use crate::config::keys::BOOL_TAGS;
use crate::config::origin::Ctx;
use crate::config::read::{opt_bool, opt_i64, opt_nonempty_str, section};

type R<T> = Result<T, ConfigError>;

/// Builds `tags` (optional). Unknown tags are not warned about: any tag is allowed and
/// published verbatim.
pub(crate) fn build_tags(ctx: &mut Ctx<'_>, top: &Map<String, Value>) -> R<Tags> {
    let Some(m) = section(ctx, top, "", "tags")? else {
        return Ok(Tags::default());
    };
    let p = "tags";
    let nofailover_tag = opt_bool(ctx, m, p, "nofailover")?;
    let failover_priority = opt_i64(ctx, m, p, "failover_priority")?;
    let noloadbalance = opt_bool(ctx, m, p, "noloadbalance")?.unwrap_or(false);
    let clonefrom = opt_bool(ctx, m, p, "clonefrom")?.unwrap_or(false);
    let nosync = opt_bool(ctx, m, p, "nosync")?.unwrap_or(false);
    let nostream = opt_bool(ctx, m, p, "nostream")?;
    let replicatefrom = opt_nonempty_str(ctx, m, p, "replicatefrom")?;

    // Patroni's `_validate_failover_tags`: nofailover wins over a contradicting priority.
    if let (Some(nf), Some(prio)) = (nofailover_tag, failover_priority)
        && ((nf && prio > 0) || (!nf && prio <= 0))
    {
        let py = if nf { "True" } else { "False" };
        ctx.warn(
            "tags.nofailover",
            format!(
                "Conflicting configuration between nofailover: {py} and failover_priority: {prio}. Defaulting to nofailover: {py}"
            ),
        );
    }
    let nofailover = match (nofailover_tag, failover_priority) {
        (Some(nf), _) => nf,
        (None, Some(prio)) => prio <= 0,
        (None, None) => false,
    };

    // Published like Patroni's `Tags._filter_tags`: boolean tags only when true (nofailover also
    // whenever failover_priority is set), every other tag verbatim.
    let mut published = BTreeMap::new();
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        let value = match k.as_str() {
            "nofailover" => Value::Bool(nofailover_tag.unwrap_or(false)),
            "noloadbalance" => Value::Bool(noloadbalance),
            "clonefrom" => Value::Bool(clonefrom),
            "nosync" => Value::Bool(nosync),
            "nostream" => Value::Bool(nostream.unwrap_or(false)),
            "failover_priority" => {
                Value::from(failover_priority.unwrap_or(DEFAULT_FAILOVER_PRIORITY))
            }
            _ => v.clone(),
        };
        let keep = !BOOL_TAGS.contains(&k.as_str())
            || value == Value::Bool(true)
            || (k == "nofailover" && failover_priority.is_some());
        if keep {
            published.insert(k.clone(), value);
        }
    }
    Ok(Tags {
        nofailover,
        failover_priority,
        noloadbalance,
        clonefrom,
        nosync,
        replicatefrom,
        nostream: nostream.unwrap_or(false),
        published,
    })
}
