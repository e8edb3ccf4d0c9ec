//! The bench's messages as bytes: writing message `seq` of a client, reading the tag back from a
//! reply, and checking that a reply is exactly its message uppercased. Pure; no I/O.

use crate::config::Expect;

/// The text of message `seq` from `client`: a tag that names both, then lowercase letters, `size`
/// bytes in all, so its uppercase reply can only be the answer to this one message.
pub fn write_message(out: &mut Vec<u8>, client: u64, seq: u64, size: usize) {
    let start = out.len();
    out.push(b'c');
    push_decimal(out, client);
    out.push(b's');
    push_decimal(out, seq);
    out.push(b'.');
    let tag = out.len() - start;
    // The letters shift with `seq`, so that two messages of one client differ past the tag too;
    // reduced first, so that the largest sequence number does not overflow. Byte `i` is letter
    // (i + seq) % 26: every 26 bytes start again at the same letter.
    let first = ((tag as u64 + seq % 26) % 26) as usize;
    let mut left = size.saturating_sub(tag);
    while left > 0 {
        let n = left.min(26);
        out.extend_from_slice(&LETTERS[first..first + n]);
        left -= n;
    }
    // A size shorter than the tag cuts the tag; `cli` refuses such sizes (see `tag_len`).
    out.truncate(start + size);
}

/// The alphabet twice, so that 26 letters from any one of them are one slice.
const LETTERS: &[u8; 52] = b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";

/// Appends `n` in decimal (what `write!` does, without the formatting machinery: a message is
/// written twice per round trip, once to send it and once to check its reply).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The longest tag [`write_message`] writes for `clients` clients that send fewer than 10^12
/// messages each: `--size` must be at least this, or replies could not be told apart.
pub fn tag_len(clients: usize) -> usize {
    format!("c{}s{}.", clients.saturating_sub(1), 999_999_999_999u64).len()
}

/// Reads the client and sequence number back from a message or its reply (either case); `None`
/// when the reply does not start with a whole tag.
pub fn parse_tag(reply: &[u8]) -> Option<(u64, u64)> {
    let rest = reply.strip_prefix(b"C").or_else(|| reply.strip_prefix(b"c"))?;
    let (client, rest) = number(rest)?;
    let rest = rest.strip_prefix(b"S").or_else(|| rest.strip_prefix(b"s"))?;
    let (seq, rest) = number(rest)?;
    rest.starts_with(b".").then_some((client, seq))
}

/// A decimal number at the start of `text` and what follows it; `None` when there are no digits
/// or the number does not fit a `u64` (so no reply can alias another by overflowing).
fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    // u64::MAX has 20 digits; more cannot fit, and stopping here bounds the work on garbage.
    if digits == 0 || digits > 20 {
        return None;
    }
    let value = text[..digits].iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    Some((value, &text[digits..]))
}

/// The sequence number of the message `reply` answers, when it names `client`: a reply to another
/// client's message (or no tag at all) is `None`, uppercased or not.
pub fn reply_seq(reply: &[u8], client: u64) -> Option<u64> {
    parse_tag(reply).filter(|&(from, _)| from == client).map(|(_, seq)| seq)
}

/// Whether `reply` is message `seq` of `client` uppercased (or with `Expect::Echo` unchanged), byte
/// for byte and of the same length. `scratch` is left holding the message, kept by the caller so
/// that no check allocates.
pub fn is_reply_to(reply: &[u8], client: u64, seq: u64, size: usize, scratch: &mut Vec<u8>, expect: Expect) -> bool {
    scratch.clear();
    write_message(scratch, client, seq, size);
    reply.len() == scratch.len()
        && match expect {
            Expect::Upper => reply.iter().zip(scratch.iter()).all(|(r, e)| *r == e.to_ascii_uppercase()),
            Expect::Echo => reply == scratch.as_slice(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(client: u64, seq: u64, size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_message(&mut out, client, seq, size);
        out
    }

    #[test]
    fn a_message_is_its_tag_then_lowercase_letters() {
        let m = message(12, 345, 40);
        assert_eq!(m.len(), 40);
        assert!(m.starts_with(b"c12s345."));
        assert!(m[8..].iter().all(u8::is_ascii_lowercase));
        // Appending keeps what was there.
        let mut out = b"x".to_vec();
        write_message(&mut out, 1, 2, 10);
        assert_eq!(&out[..], b"xc1s2.hijkl");
    }

    #[test]
    fn a_message_is_byte_for_byte_what_its_definition_says() {
        for (client, seq) in [(0, 0), (7, 25), (12, 345), (9_999, 26 * 1_000 + 3), (u64::MAX, u64::MAX)] {
            for size in [0, 3, 10, 26, 40, 64, 65, 200] {
                let tag = format!("c{client}s{seq}.").into_bytes();
                let mut want: Vec<u8> = tag.clone();
                want.extend((tag.len()..size).map(|i| b'a' + ((i as u64 + seq % 26) % 26) as u8));
                want.truncate(size);
                assert_eq!(message(client, seq, size), want, "client {client}, seq {seq}, size {size}");
            }
        }
    }

    #[test]
    fn messages_differ_by_client_and_by_sequence() {
        let a = message(12, 345, 40);
        assert_ne!(a, message(1, 2345, 40), "same digits, other split");
        assert_ne!(a, message(12, 346, 40));
        assert_ne!(a[8..], message(12, 346, 40)[8..], "the letters shift with the sequence number");
    }

    #[test]
    fn tags_read_back_in_either_case() {
        let m = message(12, 345, 40);
        assert_eq!(parse_tag(&m), Some((12, 345)));
        assert_eq!(parse_tag(&m.to_ascii_uppercase()), Some((12, 345)));
        assert_eq!(parse_tag(b"C1s2."), Some((1, 2)), "mixed case");
        assert_eq!(parse_tag(b"c0s0."), Some((0, 0)));
    }

    #[test]
    fn the_largest_numbers_round_trip_and_larger_ones_do_not_wrap() {
        let m = message(u64::MAX, u64::MAX, 60);
        assert_eq!(parse_tag(&m), Some((u64::MAX, u64::MAX)));
        // One past u64::MAX must not wrap around to a small, valid-looking number.
        assert_eq!(parse_tag(b"c18446744073709551616s1."), None);
        assert_eq!(parse_tag(b"c1s99999999999999999999."), None);
        assert_eq!(parse_tag(b"c1s123456789012345678901."), None, "21 digits");
    }

    #[test]
    fn truncated_or_malformed_tags_are_not_read() {
        for bad in [&b""[..], b"c", b"C1", b"C1S", b"c1s2", b"c1s2x", b"cs2.", b"c1.2.", b"x1s2.", b"c-1s2.", b"hello"]
        {
            assert_eq!(parse_tag(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        // What follows the tag's dot is not the tag's business.
        assert_eq!(parse_tag(b"c1s2.anything"), Some((1, 2)));
    }

    #[test]
    fn tag_len_covers_the_longest_tag() {
        assert_eq!(tag_len(1), "c0s999999999999.".len());
        assert_eq!(tag_len(10_000), "c9999s999999999999.".len());
        assert_eq!(tag_len(0), tag_len(1), "no clients is not a panic");
        // The last client's largest sequence number fits a message of tag_len bytes whole.
        let m = message(9_999, 999_999_999_999, tag_len(10_000));
        assert_eq!(parse_tag(&m), Some((9_999, 999_999_999_999)));
    }

    #[test]
    fn a_reply_names_its_client() {
        let reply = message(7, 3, 32).to_ascii_uppercase();
        assert_eq!(reply_seq(&reply, 7), Some(3));
        assert_eq!(reply_seq(&reply, 8), None, "another client's reply");
        assert_eq!(reply_seq(b"OK", 7), None);
    }

    #[test]
    fn only_the_uppercased_message_itself_is_its_reply() {
        let mut scratch = Vec::new();
        let m = message(7, 3, 32);
        let reply = m.to_ascii_uppercase();
        assert!(is_reply_to(&reply, 7, 3, 32, &mut scratch, Expect::Upper));
        assert!(!is_reply_to(&m, 7, 3, 32, &mut scratch, Expect::Upper), "an echo is not uppercased");
        assert!(is_reply_to(&m, 7, 3, 32, &mut scratch, Expect::Echo), "unless an echo is expected");
        assert!(!is_reply_to(&reply, 7, 3, 32, &mut scratch, Expect::Echo));
        assert!(!is_reply_to(&reply, 7, 4, 32, &mut scratch, Expect::Upper), "the reply to another message");
        assert!(!is_reply_to(&reply, 8, 3, 32, &mut scratch, Expect::Upper), "another client's");
        assert!(!is_reply_to(&reply[..31], 7, 3, 32, &mut scratch, Expect::Upper), "cut short");
        let mut longer = reply.clone();
        longer.push(b'A');
        assert!(!is_reply_to(&longer, 7, 3, 32, &mut scratch, Expect::Upper), "one byte more");
        let mut flipped = reply.clone();
        flipped[20] ^= 0x01;
        assert!(!is_reply_to(&flipped, 7, 3, 32, &mut scratch, Expect::Upper), "one byte changed");
    }
}
