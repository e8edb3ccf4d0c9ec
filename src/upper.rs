//! The server's transformation: Unicode uppercase for UTF-8, ASCII-only for any other bytes.

use crate::text::is_plain;

/// Uppercases a message as Python's `str.upper()` would when it is valid UTF-8
/// ("straße" → "STRASSE"); otherwise uppercases ASCII letters only and leaves every other byte as it is.
pub fn upper(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    upper_into(message, &mut out);
    out
}

/// A message and its [`upper`] form, as the server prints and answers them.
pub struct Uppercased<'a> {
    /// The message as it came.
    pub message: &'a [u8],
    /// Its uppercase form.
    pub upper: &'a [u8],
    /// Both are printable ASCII without a backslash: shown as they are, with nothing to escape.
    plain: bool,
}

impl<'a> Uppercased<'a> {
    /// `message` and its uppercase form, made in `buf` (cleared first, and reused from one message
    /// to the next: nothing is allocated for an ASCII message once `buf` is large enough).
    pub fn new(message: &'a [u8], buf: &'a mut Vec<u8>) -> Self {
        buf.clear();
        // The uppercase of plain text is plain text: one check answers for both lines.
        let plain = is_plain(message);
        if plain {
            ascii_upper_into(message, buf);
        } else {
            upper_into(message, buf);
        }
        Uppercased { message, upper: buf, plain }
    }

    /// Whether both forms are plain printable ASCII, that a transcript shows as they are.
    pub fn plain(&self) -> bool {
        self.plain
    }
}

/// Appends [`upper`] of `message` to `out`; allocates nothing more when the message is ASCII.
fn upper_into(message: &[u8], out: &mut Vec<u8>) {
    if !message.is_ascii()
        && let Ok(text) = std::str::from_utf8(message)
    {
        out.extend_from_slice(text.to_uppercase().as_bytes());
        return;
    }
    ascii_upper_into(message, out);
}

/// Appends `message` with its ASCII letters uppercased, every other byte as it is.
fn ascii_upper_into(message: &[u8], out: &mut Vec<u8>) {
    // Copied, then changed in place: a loop the compiler vectorizes, where a byte-by-byte `extend` is not.
    let start = out.len();
    out.extend_from_slice(message);
    out[start..].make_ascii_uppercase();
}

/// The most bytes uppercasing can produce per input byte (e.g. "ΐ", 2 bytes, becomes 6).
pub const MAX_GROWTH: usize = 3;

#[cfg(test)]
mod tests {
    use super::{Uppercased, upper};

    #[test]
    fn unicode_and_bytes() {
        assert_eq!(upper(b"Hello TechBeamers"), b"HELLO TECHBEAMERS");
        assert_eq!(upper("straße".as_bytes()), "STRASSE".as_bytes());
        assert_eq!(upper("\u{390}".as_bytes()), "\u{399}\u{308}\u{301}".as_bytes());
        assert_eq!(upper(b"a\xffb\x00"), b"A\xffB\x00");
        assert_eq!(upper(b""), b"");
    }

    #[test]
    fn a_pair_is_plain_only_when_nothing_needs_escaping() {
        let mut buf = b"left over".to_vec();
        for (message, plain) in
            [(&b"hi there"[..], true), (b"tab\there", false), (b"a\\b", false), ("straße".as_bytes(), false)]
        {
            let pair = Uppercased::new(message, &mut buf);
            assert_eq!((pair.message, pair.upper, pair.plain()), (message, &upper(message)[..], plain));
        }
    }
}
