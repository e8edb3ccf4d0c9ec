//! How values are spelled on the command line: durations, a port to connect to, and the value
//! enums with the help `--help` shows for each value.

use std::time::Duration;

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::config::{End, Expect, Firewall, Reply};
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

/// Parses a size in bytes as people type it: `65507`, `64K`, `1M`, `256MiB`, `1.5G`. K, M and G
/// (or KiB, MiB, GiB; any case; a space before them is fine) are powers of 1,024; a plain number,
/// or one with `B`, is bytes. The result must be a whole number of bytes that fits a `usize`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let hint = "a size in bytes, such as 65507, 64K or 1M";
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
        return Err(format!("{text:?} is not {hint}"));
    }
    let unit = unit.trim_start();
    let shift: u32 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "kb" | "mb" | "gb" => {
            return Err(format!("{text:?}: {unit} could mean 1,000 or 1,024; write K, M or G (powers of 1,024)"));
        }
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use K, M or G, powers of 1,024)")),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let too_big = || format!("{text:?} is too large");
    let not_whole = || format!("{text:?} is not a whole number of bytes");
    let whole: u128 = whole.parse().map_err(|_| too_big())?;
    // fraction / 10^d of 2^shift bytes is whole only if 5^d divides the fraction and d <= shift: it
    // is then (fraction / 5^d) * 2^(shift - d). A fraction of a byte is refused, not rounded.
    let fraction = fraction.trim_end_matches('0');
    let digits = fraction.len() as u32;
    if digits > shift {
        return Err(not_whole());
    }
    let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| not_whole())? };
    if !fraction.is_multiple_of(5u128.pow(digits)) {
        return Err(not_whole());
    }
    let scaled = (fraction / 5u128.pow(digits)) << (shift - digits);
    whole
        .checked_mul(1 << shift)
        .and_then(|bytes| bytes.checked_add(scaled))
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(too_big)
}

/// Parses a port a client connects to: any but 0, which only a server can be given (for a free port).
pub(super) fn port_to_connect(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(0) => Err("a client cannot connect to port 0 (only a server's --port 0 picks a free port)".into()),
        Ok(port) => Ok(port),
        Err(err) => Err(err.to_string()),
    }
}

/// A setting turned on or off (`--nodelay on`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum Switch {
    On,
    Off,
}

impl Switch {
    /// Whether it is on.
    pub(super) fn on(self) -> bool {
        self == Switch::On
    }
}

/// A reply timeout: a duration, or `none` to wait as long as it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Timeout(pub(super) Option<Duration>);

/// Parses `--timeout`: a duration more than 0 (see [`parse_duration`]), or `none`.
pub(super) fn parse_timeout(text: &str) -> Result<Timeout, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Timeout(None));
    }
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be more than 0 (--timeout none waits as long as it takes)".into()),
        d => Ok(Timeout(Some(d))),
    }
}

/// A percentage (`10%`, `0.5`, `2.25%`) in hundredths of a percent, from 0 to 100%.
pub(super) fn parse_percent(text: &str) -> Result<u32, String> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(fraction.is_empty() || digits(fraction)) || fraction.len() > 2 {
        return Err(format!("`{text}` is not a percentage with at most two decimals (10%, 0.5%)"));
    }
    let hundredths = whole.parse::<u32>().ok().and_then(|w| w.checked_mul(100)).unwrap_or(u32::MAX)
        + format!("{fraction:0<2}").parse::<u32>().unwrap_or(0);
    if hundredths > 10_000 {
        return Err(format!("`{text}` is over 100%"));
    }
    Ok(hundredths)
}

/// `--loss`: one percentage for both ways, or two (to the server, then back).
pub(super) fn parse_loss(text: &str) -> Result<(u32, u32), String> {
    match text.split_once(',') {
        Some((to_server, to_client)) => Ok((parse_percent(to_server)?, parse_percent(to_client)?)),
        None => parse_percent(text).map(|both| (both, both)),
    }
}

/// `--rate`: packets per second, `500/s` or `500`.
pub(super) fn parse_rate(text: &str) -> Result<u32, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.parse::<u32>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a number of packets per second over 0 (500/s)")),
        Ok(rate) => Ok(rate),
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

impl ValueEnum for End {
    fn value_variants<'a>() -> &'a [Self] {
        &[End::Wait, End::HalfClose, End::Close, End::Reset]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            End::Wait => {
                PossibleValue::new("wait").help("Wait for the replies awaited (each within --timeout), then close")
            }
            End::HalfClose => PossibleValue::new("half-close").help(
                "shutdown(SHUT_WR) at once (the server reads end of file), then read the replies owed until \
                 the server closes too",
            ),
            End::Close => PossibleValue::new("close")
                .help("close() at once: replies still owed meet a closed socket (the server's writes get RST, EPIPE)"),
            End::Reset => PossibleValue::new("reset")
                .help("SO_LINGER 0, then close() at once: the server is sent a reset (ECONNRESET); tcp only"),
        })
    }
}

impl ValueEnum for Firewall {
    fn value_variants<'a>() -> &'a [Self] {
        &[Firewall::Drop, Firewall::Reject]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Firewall::Drop => {
                PossibleValue::new("drop").help("Silence: a TCP connect waits, a UDP message gets no reply")
            }
            Firewall::Reject => PossibleValue::new("reject")
                .help("A TCP reset, or an ICMP \"port unreachable\" for UDP, comes back at once"),
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

impl ValueEnum for Expect {
    fn value_variants<'a>() -> &'a [Self] {
        &[Expect::Upper, Expect::Echo]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Expect::Upper => PossibleValue::new(self.name()).help("Each reply is its message uppercased"),
            Expect::Echo => {
                PossibleValue::new(self.name()).help("Each reply is its message unchanged (an echo server)")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("none"), Ok(Timeout(None)));
        assert_eq!(parse_timeout("2s"), Ok(Timeout(Some(Duration::from_secs(2)))));
        assert!(parse_timeout("0").unwrap_err().contains("--timeout none"));
    }

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
    fn sizes() {
        assert_eq!(parse_size("65507"), Ok(65_507));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("0.5M"), Ok(512 << 10));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size(" 32 "), Ok(32));
        for nonsense in ["", "K", "-1", "1.5", "1.1K", "1..2K", ".5K", "5.K", "1T", "12 parsecs", "1e3", "0x10"] {
            assert!(parse_size(nonsense).is_err(), "{nonsense:?}");
        }
        assert!(parse_size("1MB").unwrap_err().contains("write K, M or G"));
        assert!(parse_size("99999999999999999999999G").unwrap_err().contains("too large"));
        assert!(parse_size("1.0000000000000000000000000000000000001K").is_err());
        assert_eq!(parse_size("1.00000000000000000000000000000000000000K"), Ok(1024));
        assert_eq!(parse_size("0.0009765625M"), Ok(1024));
        assert!(parse_size("0.00048828125K").is_err());
    }

    #[test]
    fn ports_to_connect() {
        assert_eq!(port_to_connect("5001"), Ok(5001));
        assert!(port_to_connect("0").is_err());
        assert!(port_to_connect("65536").is_err());
        assert!(port_to_connect("http").is_err());
    }
}
