//! The services' logs: `tracing` events on stderr, one line each, as text
//! or JSON, filtered by `--log` (`CNAME_GUARD_LOG`). Stdout carries only the
//! `listening on ADDR` lines tests and scripts read.

use clap::{Args, ValueEnum};
use std::fmt::{self, Write as _};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::EnvFilter;

/// Our events at `info`, other crates' (sqlx, hyper, hickory...) at `warn`.
pub const DEFAULT_FILTER: &str = "warn,cname_guard_lookup=info";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL TARGET: message key=value ...`
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `message` and the event's fields.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Which events are logged, `RUST_LOG`-style: a level (`debug`) or per-module directives
    /// (`warn,cname_guard_lookup=info,cname_guard_lookup::verifier=debug`).
    #[arg(long = "log", env = "CNAME_GUARD_LOG", default_value = DEFAULT_FILTER,
          value_parser = parse_filter, value_name = "FILTER")]
    pub filter: String,
    /// How each line on stderr is written.
    #[arg(long = "log-format", env = "CNAME_GUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub format: LogFormat,
}

/// Checked at parse time so a bad filter is a flag error (exit 2), not a
/// silently ignored directive.
fn parse_filter(s: &str) -> Result<String, String> {
    EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{s:?} is not a log filter like info or warn,cname_guard_lookup=debug: {e}"))
}

/// Installs the process's subscriber; a second call (tests that start
/// services in one process) leaves the first in place.
pub fn init(args: &LogArgs) {
    // Parsed once already by clap; the default is the fallback for a
    // `LogArgs` built in code.
    let filter = EnvFilter::builder().parse(&args.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    let _ = match args.format {
        LogFormat::Text => builder.fmt_fields(one_line_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
    };
}

/// The text format's fields, `message key=value ...`, with every control
/// character escaped (`\r`, `\n`, `\u{1b}`): whatever a value holds, an event is one line.
fn one_line_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    format::debug_fn(|w, field, value| {
        let mut out = OneLine(w);
        if field.name() == "message" {
            write!(out, "{value:?}")
        } else {
            write!(out, "{field}={value:?}")
        }
    })
    .delimited(" ")
}

struct OneLine<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for OneLine<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "{}", c.escape_default())?;
            } else {
                self.0.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// A client-supplied value made safe and short for a log field: printable
/// ASCII only, at most 128 characters.
pub fn clean(value: &[u8]) -> String {
    value.iter().take(128).map(|&b| if (0x21..0x7f).contains(&b) { b as char } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_values() {
        assert_eq!(clean(b"req-1\r\nx: y"), "req-1??x:?y");
        assert_eq!(clean(&[b'a'; 500]).len(), 128);
    }

    #[test]
    fn filters_are_checked() {
        assert!(parse_filter("info").is_ok());
        assert!(parse_filter(DEFAULT_FILTER).is_ok());
        assert!(parse_filter("cname_guard_lookup::verifier=debug").is_ok());
        assert!(parse_filter("cname_guard_lookup=loud").is_err());
    }

    #[test]
    fn control_characters_never_leave_one_line() {
        let mut s = String::new();
        let mut w = Writer::new(&mut s);
        write!(OneLine(&mut w), "a\r\nb\u{1b}[31m\tc\u{0}").expect("write");
        assert_eq!(s, "a\\r\\nb\\u{1b}[31m\\tc\\u{0}");
    }
}
