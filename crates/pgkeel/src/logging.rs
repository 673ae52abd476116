//! Log lines in Patroni's shape: `2026-11-23 21:10:37,123 INFO: message`, so that tools and
//! habits built on Patroni's logs keep working.
//!
//! Structured fields are printed as plain `key=value` unless stderr (where the lines go) is a
//! terminal and `NO_COLOR` is not set: a log file or a pipe never receives ANSI escape codes.

use std::ffi::OsStr;
use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The tracing target that marks an ERROR event as Patroni's CRITICAL (`logger.fatal` /
/// `logger.critical`), a level tracing does not have. Use the [`critical!`](crate::critical)
/// macro rather than this constant.
pub const CRITICAL_TARGET: &str = "pgkeel::critical";

/// Logs at Patroni's CRITICAL level: an ERROR event on [`CRITICAL_TARGET`], rendered
/// `CRITICAL:` by [`PatroniFormat`]. Same arguments as `tracing::error!`.
#[macro_export]
macro_rules! critical {
    ($($arg:tt)+) => {
        ::tracing::error!(target: $crate::logging::CRITICAL_TARGET, $($arg)+)
    };
}

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
            tracing::Level::ERROR if event.metadata().target() == CRITICAL_TARGET => "CRITICAL",
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

/// Whether log lines may carry ANSI colours: only when they go to a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>: an empty value does not count).
///
/// Exists as a pure function so the rule is tested without a terminal.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the global subscriber at `level` (Patroni's names: DEBUG, INFO, WARNING, ERROR,
/// CRITICAL). `RUST_LOG` overrides it for debugging. Colours follow [`use_colour`].
pub fn init(level: &str) {
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let env_overrides = from_env.is_some();
    let filter =
        from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(filter_directives(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Before `event_format`: the flag lives on the layer and is kept by it.
        .with_ansi(use_colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .event_format(PatroniFormat)
        .with_writer(std::io::stderr)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    if builder.try_init().is_ok() && !env_overrides {
        let _ = SET_LEVEL.set(Box::new(move |level: &str| {
            handle
                .reload(tracing_subscriber::EnvFilter::new(filter_directives(level)))
                .is_ok()
        }));
    }
}

/// Changes the level of the subscriber [`init`] installed (`log.level` reloaded). Does
/// nothing, and says so with `false`, when `RUST_LOG` chose the filter or [`init`] did not
/// install one (tests, library use).
pub fn set_level(level: &str) -> bool {
    SET_LEVEL.get().is_some_and(|set| set(level))
}

/// How [`set_level`] reaches the subscriber [`init`] installed.
type LevelSetter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Set once by [`init`].
static SET_LEVEL: std::sync::OnceLock<LevelSetter> = std::sync::OnceLock::new();

/// The `EnvFilter` directives for a Patroni log level. CRITICAL shows only [`critical!`] events.
fn filter_directives(level: &str) -> String {
    let level = match level.to_ascii_uppercase().as_str() {
        "DEBUG" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" => "error",
        "CRITICAL" | "FATAL" => return format!("off,{CRITICAL_TARGET}=error"),
        _ => "info",
    };
    format!("{level},h2=warn,tower=warn,hyper=warn")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_at(level: &str, log: impl FnOnce()) -> Vec<String> {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter_directives(level)))
            .event_format(PatroniFormat)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        // Drop the timestamp (`YYYY-MM-DD HH:MM:SS,mmm `, 24 characters, as Patroni's tests do).
        text.lines().map(|l| l[24..].to_string()).collect()
    }

    #[test]
    fn critical_events_render_as_critical() {
        let lines = lines_at("INFO", || {
            crate::critical!(
                "Can't start; there is already a node named '{}' running",
                "n1"
            );
            tracing::error!("plain error");
            tracing::warn!("a warning");
        });
        assert_eq!(
            lines,
            [
                "CRITICAL: Can't start; there is already a node named 'n1' running",
                "ERROR: plain error",
                "WARNING: a warning",
            ]
        );
    }

    #[test]
    fn level_critical_hides_errors() {
        let lines = lines_at("CRITICAL", || {
            crate::critical!("fatal");
            tracing::error!("plain error");
        });
        assert_eq!(lines, ["CRITICAL: fatal"]);
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(
            use_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR does not count"
        );
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(
            !use_colour(true, Some(OsStr::new("0"))),
            "any non-empty value disables"
        );
        assert!(
            !use_colour(false, None),
            "a file or a pipe never gets colours"
        );
        assert!(!use_colour(false, Some(OsStr::new(""))));
    }
}
