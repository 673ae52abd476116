//! Output formats shared by pgkeelctl commands: PrettyTable-style tables, patronictl's JSON and
//! PyYAML-style YAML. Pure text functions; commands decide what to print.

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
