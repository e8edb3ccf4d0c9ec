//! How numbers, sizes, times and peers' bytes read in text output: one format for every table and
//! line, and the escaping that keeps a peer from writing to the operator's terminal. No I/O.

use std::time::Duration;

/// `n` and a noun, plural unless `n` is 1: "1 client", "25,498 messages".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{} {noun}s", grouped(n)) }
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

/// A timeout as a person would say it, in the units the tables use: "500 ms", "2 s", "2.5 s".
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{} ms", d.as_millis());
    }
    let tenths = format!("{:.1}", d.as_secs_f64());
    format!("{} s", tenths.strip_suffix(".0").unwrap_or(&tenths))
}

/// Appends bytes a peer sent to a line of text so that they cannot act on a terminal: printable text
/// and tab as they are; a backslash as `\\`; `\n`, `\r`, `\e` (ESC), `\xNN` for any other C0
/// control, DEL or byte that is not UTF-8; `\u{NN}` for a C1 control in UTF-8 text. Unambiguous: the
/// escapes can be read back to the exact bytes (`--json` gives them exactly anyway).
#[inline]
pub fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    // Nearly every message is plain printable ASCII: a check the compiler vectorizes says so, and
    // the copy is then all there is to do (inlined into the caller, the rest kept out of its way).
    if is_plain(bytes) {
        return out.extend_from_slice(bytes);
    }
    push_escaped_slowly(out, bytes);
}

/// [`push_escaped`] character by character.
#[cold]
#[inline(never)]
fn push_escaped_slowly(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.push(b'\t'),
                '\u{1b}' => out.extend_from_slice(b"\\e"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => push_hex(out, c as u8),
                c if c.is_control() => out.extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes()),
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        for &byte in chunk.invalid() {
            push_hex(out, byte);
        }
    }
}

/// True when every byte is printable ASCII other than the backslash (a tab takes the slow path):
/// bytes [`push_escaped`] copies as they are.
pub fn is_plain(bytes: &[u8]) -> bool {
    // 16 bytes at a time, so the loop becomes vector compares; the last 16 overlap the ones before
    // rather than go byte by byte (the 15-byte tail of a 63-byte message cost more than the rest).
    let plain16 = |chunk: &[u8; 16]| chunk.iter().fold(0, |any, &b| any | bad(b)) == 0;
    if let Some(last) = bytes.last_chunk::<16>() {
        return bytes.as_chunks::<16>().0.iter().all(plain16) && plain16(last);
    }
    match (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (Some(&first), Some(&last)) => plain8(first) && plain8(last),
        _ => bytes.iter().all(|&b| bad(b) == 0),
    }
}

/// 1 for a byte outside 0x20..0x7f, or a backslash: one [`is_plain`] refuses.
fn bad(b: u8) -> u8 {
    u8::from(b.wrapping_sub(0x20) >= 0x5f) | u8::from(b == b'\\')
}

/// [`is_plain`] on 8 bytes as one word (a peer's name is often 8 to 15 bytes long).
fn plain8(bytes: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = u64::from_ne_bytes(bytes);
    // The classic word tests for a zero byte and for a byte below n (exact as a yes or no, n <= 128).
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let has_below = |n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    x & HIGH == 0 && !has_below(0x20) && !has_zero(x ^ (ONES * 0x7f)) && !has_zero(x ^ (ONES * u64::from(b'\\')))
}

/// [`push_escaped`] into a new string.
pub fn escaped(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    push_escaped(&mut out, bytes);
    // Every byte pushed is ASCII or part of a whole UTF-8 character.
    String::from_utf8(out).unwrap_or_default()
}

fn push_hex(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_control_byte_and_keeps_text() {
        assert_eq!(escaped(b"Hello TechBeamers"), "Hello TechBeamers");
        assert_eq!(escaped("straße\tok".as_bytes()), "straße\tok");
        assert_eq!(escaped(b"hi\x1bEConnection from: x"), "hi\\eEConnection from: x");
        assert_eq!(escaped(b"a\\nb\nc\rd"), "a\\\\nb\\nc\\rd");
        assert_eq!(escaped(b"\x00\x07\x08\x0b\x7f"), "\\x00\\x07\\x08\\x0b\\x7f");
        assert_eq!(escaped("\u{85}\u{9b}x".as_bytes()), "\\u{85}\\u{9b}x");
        assert_eq!(escaped(b"\xff\xc2"), "\\xff\\xc2");
        let all: Vec<u8> = (0..=255).collect();
        let shown = escaped(&all);
        assert!(shown.chars().all(|c| c == '\t' || !c.is_control()), "{shown:?}");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(nanos(23_456), "23.5 µs");
        assert_eq!(nanos(1_500_000), "1.500 ms");
        assert_eq!(count(1, "client"), "1 client");
        assert_eq!(count(2, "client"), "2 clients");
        assert_eq!(count(25_498, "message"), "25,498 messages");
        assert_eq!(human(Duration::from_millis(500)), "500 ms");
        assert_eq!(human(Duration::from_secs(2)), "2 s");
        assert_eq!(human(Duration::from_millis(2_540)), "2.5 s");
        assert_eq!(ms(None), "-");
    }
}
