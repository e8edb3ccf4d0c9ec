//! How values are spelled on the command line: durations, a port to connect to, and the value
//! enums with the help `--help` shows for each value.

use std::time::Duration;

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::config::Reply;
use crate::framing::Framing;
use crate::proto::Proto;

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `1h`, or a bare number of seconds; at most a year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (try 500ms, 2s or 1m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    // Long enough for any timeout, short enough that adding it to the clock cannot overflow.
    const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);
    match Duration::try_from_secs_f64(value * scale) {
        Ok(duration) if duration <= LONGEST => Ok(duration),
        _ => Err(format!("{text:?} is too long (at most a year)")),
    }
}

/// Parses a port a client connects to: any but 0, which only a server can be given (for a free port).
pub(super) fn port_to_connect(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) => Err("a client cannot connect to port 0 (only a server's --port 0 picks a free port)".into()),
        Ok(port) => Ok(port),
        Err(err) => Err(err.to_string()),
    }
}

/// When to print the ` ? ` prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Prompt {
    Auto,
    Always,
    Never,
}

impl Prompt {
    /// Whether to prompt, given whether stdin is a terminal.
    pub(super) fn enabled(self) -> bool {
        match self {
            Prompt::Always => true,
            Prompt::Never => false,
            Prompt::Auto => std::io::IsTerminal::is_terminal(&std::io::stdin()),
        }
    }
}

// The enums below belong to layers that know nothing of clap, so their spellings are given here by
// hand rather than derived. A kind's name comes from `Proto::name`, the one the output uses too.

impl ValueEnum for Proto {
    fn value_variants<'a>() -> &'a [Self] {
        &Proto::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

impl ValueEnum for Framing {
    fn value_variants<'a>() -> &'a [Self] {
        &[Framing::Line, Framing::Raw]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Framing::Line => PossibleValue::new("line")
                .help(r"One line is one message; `\n` or `\r\n` ends it and is not part of it"),
            Framing::Raw => PossibleValue::new("raw")
                .help("One read is one message, as in the tutorial: TCP may merge or split them"),
        })
    }
}

impl ValueEnum for Reply {
    fn value_variants<'a>() -> &'a [Self] {
        &[Reply::Upper, Reply::Echo, Reply::Stdin]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Reply::Upper => PossibleValue::new("upper").help("Reply with the message uppercased"),
            Reply::Echo => PossibleValue::new("echo").help("Reply with the message unchanged"),
            Reply::Stdin => {
                PossibleValue::new("stdin").help("Reply with the next line read from stdin (the tutorial's server)")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("18000000000000000000").is_err());
    }

    #[test]
    fn ports_to_connect() {
        assert_eq!(port_to_connect("5001"), Ok(5001));
        assert!(port_to_connect("0").is_err());
        assert!(port_to_connect("65536").is_err());
        assert!(port_to_connect("http").is_err());
    }
}
