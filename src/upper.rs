//! The server's transformation: Unicode uppercase for UTF-8, ASCII-only for any other bytes.

/// Uppercases a message as Python's `str.upper()` would when it is valid UTF-8
/// ("straße" → "STRASSE"); otherwise uppercases ASCII letters only and leaves every other byte as it is.
pub fn upper(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    upper_into(message, &mut out);
    out
}

/// Appends [`upper`] of `message` to `out`; allocates nothing more when the message is ASCII.
pub fn upper_into(message: &[u8], out: &mut Vec<u8>) {
    if !message.is_ascii()
        && let Ok(text) = std::str::from_utf8(message)
    {
        out.extend_from_slice(text.to_uppercase().as_bytes());
        return;
    }
    // Copied, then changed in place: a loop the compiler vectorizes, where a byte-by-byte `extend` is not.
    let start = out.len();
    out.extend_from_slice(message);
    out[start..].make_ascii_uppercase();
}

/// The most bytes uppercasing can produce per input byte (e.g. "ΐ", 2 bytes, becomes 6).
pub const MAX_GROWTH: usize = 3;

#[cfg(test)]
mod tests {
    use super::upper;

    #[test]
    fn unicode_and_bytes() {
        assert_eq!(upper(b"Hello TechBeamers"), b"HELLO TECHBEAMERS");
        assert_eq!(upper("straße".as_bytes()), "STRASSE".as_bytes());
        assert_eq!(upper("\u{390}".as_bytes()), "\u{399}\u{308}\u{301}".as_bytes());
        assert_eq!(upper(b"a\xffb\x00"), b"A\xffB\x00");
        assert_eq!(upper(b""), b"");
    }
}
