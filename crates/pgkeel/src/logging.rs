//! Log lines in Patroni's shape: `2026-11-23 21:10:37,123 INFO: message`, so that tools and
//! habits built on Patroni's logs keep working.

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as Patroni does (local time, comma before milliseconds, level, colon).
pub struct PatroniFormat;

impl<S, N> FormatEvent<S, N> for PatroniFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = jiff::ZonedDateTime::now();
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::TRACE => "DEBUG",
        };
        write!(
            w,
            "{},{:03} {level}: ",
            now.strftime("%Y-%m-%d %H:%M:%S"),
            now.millisecond()
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the global subscriber at `level` (Patroni's names: DEBUG, INFO, WARNING, ERROR).
/// `RUST_LOG` overrides it for debugging.
pub fn init(level: &str) {
    let level = match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},h2=warn,tower=warn,hyper=warn"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(PatroniFormat)
        .with_writer(std::io::stderr)
        .try_init();
}
