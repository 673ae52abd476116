//! Output formats shared by pgkeelctl commands: PrettyTable-style tables, patronictl's JSON and
//! PyYAML-style YAML. Pure text functions; commands decide what to print.

pub mod diff;
pub mod json;
pub mod table;
pub mod yaml;

/// `-f/--format` of commands that print tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// ASCII table with the cluster title in the top border.
    Pretty,
    /// Tab-separated values with a header row.
    Tsv,
    /// A JSON list of objects (empty values omitted).
    Json,
    /// A YAML list of objects (keys sorted, empty values omitted).
    #[value(alias = "yml")]
    Yaml,
}

/// patronictl's `print_output` for `-f json` and `-f yaml`: one object per row, the columns as
/// keys in order, cells for which `omit` holds left out (patronictl drops empty cells when it
/// prints a cluster, keeps them otherwise); with the final newline.
pub fn records<C: AsRef<str>>(
    columns: &[C],
    rows: Vec<Vec<serde_json::Value>>,
    fmt: OutputFormat,
    omit: impl Fn(&serde_json::Value) -> bool,
) -> String {
    use serde_json::{Map, Value};
    let list: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let obj: Map<String, Value> = columns
                .iter()
                .zip(r)
                .filter(|(_, v)| !omit(v))
                .map(|(c, v)| (c.as_ref().to_string(), v))
                .collect();
            Value::Object(obj)
        })
        .collect();
    if fmt == OutputFormat::Yaml {
        format!("{}\n", yaml::dump_block(&Value::Array(list)))
    } else {
        format!("{}\n", json::dumps(&Value::Array(list)))
    }
}
