//! How numbers, sizes and times read in text output: one format for every table and line. No I/O.

use std::time::Duration;

/// `n` and a noun, plural unless `n` is 1: "1 client", "2 clients".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// 1234567 → "1,234,567".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time in nanoseconds, in the unit that reads best.
pub fn nanos(n: u64) -> String {
    match n {
        0..1_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3} ms", n as f64 / 1e6),
        _ => format!("{:.3} s", n as f64 / 1e9),
    }
}

/// A duration in milliseconds, as a number (JSON fields, summaries).
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A duration to the microsecond, in milliseconds: "0.045 ms"; "-" for none.
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.3} ms", millis(d)))
}

/// A timeout as a person would say it: "500ms", "2.0s".
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) { format!("{}ms", d.as_millis()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(nanos(23_456), "23.5 µs");
        assert_eq!(nanos(1_500_000), "1.500 ms");
        assert_eq!(count(1, "client"), "1 client");
        assert_eq!(count(2, "client"), "2 clients");
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(ms(None), "-");
    }
}
