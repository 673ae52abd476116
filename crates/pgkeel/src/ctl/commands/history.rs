//! `pgkeelctl history`: the `history` key as patronictl's `history` prints it (`print_output`
//! with columns TL, LSN, Reason, Timestamp, New Leader; TL and LSN right-aligned; short entries
//! padded with empty cells). In JSON and YAML every column is kept, empty ones too, because
//! patronictl passes no header to `print_output`.

use super::super::output::{OutputFormat, records, table};
use super::super::{Connect, Context, CtlError, HistoryArgs};
use super::read_named_cluster;
use pgkeel_ha::cluster::HistoryEntry;
use serde_json::Value;
use std::io::Write;

const COLUMNS: [&str; 5] = ["TL", "LSN", "Reason", "Timestamp", "New Leader"];

/// Runs `history`.
pub async fn run(
    ctx: &Context,
    args: &HistoryArgs,
    connect: Connect<'_>,
    out: &mut (dyn Write + Send),
) -> Result<(), CtlError> {
    let cluster = read_named_cluster(ctx, args.cluster.as_deref(), connect).await?;
    let entries = cluster.history.as_deref().unwrap_or_default();
    write!(out, "{}", render_history(entries, args.format))?;
    Ok(())
}

/// The output for `entries` in `fmt`, with the final newline.
pub fn render_history(entries: &[HistoryEntry], fmt: OutputFormat) -> String {
    let rows: Vec<Vec<Value>> = entries
        .iter()
        .map(|e| {
            vec![
                Value::from(e.timeline),
                Value::from(e.lsn),
                Value::from(e.reason.clone()),
                Value::from(e.timestamp.clone().unwrap_or_default()),
                Value::from(e.new_leader.clone().unwrap_or_default()),
            ]
        })
        .collect();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match fmt {
        OutputFormat::Json | OutputFormat::Yaml => records(&COLUMNS, rows, fmt, |_| false),
        OutputFormat::Tsv => {
            let mut out = COLUMNS.join("\t");
            out.push('\n');
            for r in &rows {
                let cells: Vec<String> = r.iter().map(text).collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
            out
        }
        OutputFormat::Pretty => {
            let headers: Vec<String> = COLUMNS.iter().map(|c| (*c).to_string()).collect();
            let aligns = [table::Align::Right, table::Align::Right];
            let cells: Vec<Vec<String>> =
                rows.iter().map(|r| r.iter().map(text).collect()).collect();
            format!("{}\n", table::render(None, &headers, &aligns, &cells))
        }
    }
}
