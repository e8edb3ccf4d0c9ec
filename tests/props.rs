//! Property tests for the pure layers: the line framer, the uppercaser, stdin's bounded line reader,
//! the transcript escaper and the bytes of a JSON event. `fuzz/` drives the framer, the uppercaser
//! and the escaper with the same checks.

use std::io::{self, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use netpair::cli::parse_size;
use netpair::framing::{LineFramer, TooLong};
use netpair::proto::Proto;
use netpair::report::Report;
use netpair::stdin::read_line;
use netpair::text::escaped;
use netpair::upper::{MAX_GROWTH, Uppercased, upper};
use proptest::prelude::*;
use proptest::sample::Index;

// The framer must not allocate past its bound, whatever it is fed: the fuzz targets' allocator records
// the largest single request made on the test's thread while `watched` runs. That file, with the line
// model and its check, is shared rather than copied.
#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code, unsafe_code)] // What only the fuzz targets use; a global allocator is unsafe to write.
mod shared;

use shared::{allocation_bound, check_escaped, check_framed, model, unwatched, watched};

/// A bounded reader's lines: `Ok(line)`, or `Err(length)` for a line over the bound.
type Lines = Vec<Result<Vec<u8>, usize>>;

/// Cuts `input` at the given points (in any order, repeats giving empty pieces).
fn chunks<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in at.into_iter().chain([input.len()]) {
        pieces.push(&input[start..end]);
        start = end;
    }
    pieces
}

/// The lines a framer gave, and how it ended.
type Framed = (Vec<Vec<u8>>, Result<(), TooLong>);

/// Frames `pieces` with a bound of `max`: the lines given, then `finish`'s line or the first error.
/// Checks after every push that the framer holds at most `max + 1` bytes and allocated within bounds.
fn frame(pieces: &[&[u8]], max: usize) -> Result<Framed, TestCaseError> {
    let mut framer = LineFramer::new(max);
    let mut lines = Vec::new();
    for piece in pieces {
        let (pushed, largest) = watched(|| framer.push(piece, |line| unwatched(|| lines.push(line.to_vec()))));
        prop_assert!(
            largest <= allocation_bound(max),
            "pushing {} bytes allocated {largest} bytes at once (bound {max})",
            piece.len()
        );
        prop_assert!(framer.pending() <= max.saturating_add(1));
        if let Err(too_long) = pushed {
            prop_assert_eq!(framer.pending(), 0, "an over-long line is dropped whole");
            return Ok((lines, Err(too_long)));
        }
    }
    lines.extend(framer.finish());
    Ok((lines, Ok(())))
}

/// Bytes of `\n`-free lines, or any bytes, with line ends and carriage returns common.
fn byte(newlines: bool) -> BoxedStrategy<u8> {
    let any =
        if newlines { any::<u8>().boxed() } else { any::<u8>().prop_filter("no newline", |&b| b != b'\n').boxed() };
    let mut choices = vec![Just(b'a').boxed(), Just(b'\r').boxed(), any.clone(), any];
    if newlines {
        choices.push(Just(b'\n').boxed());
    }
    proptest::strategy::Union::new(choices).boxed()
}

/// Lines within `max` bytes, each with its own line end (`true`: `\r\n`), and whether the last is ended.
fn lines_within(max: usize) -> impl Strategy<Value = (Vec<(Vec<u8>, bool)>, bool)> {
    let line = (prop::collection::vec(byte(false), 0..=max), any::<bool>());
    (prop::collection::vec(line, 0..12), any::<bool>())
}

/// Joins lines with their line ends. A line ending in `\r` always gets `\r\n`: with `\n` alone
/// its `\r` would read as part of the line end. The last line is left open only when that is unambiguous.
fn join(lines: &[(Vec<u8>, bool)], end_last: bool) -> Vec<u8> {
    let mut input = Vec::new();
    for (i, (line, crlf)) in lines.iter().enumerate() {
        input.extend_from_slice(line);
        let last = i + 1 == lines.len();
        let open = last && !end_last && !line.is_empty() && line.last() != Some(&b'\r');
        if open {
            break;
        }
        let crlf = *crlf || line.last() == Some(&b'\r');
        input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    input
}

fn bound() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..24usize, 1 => Just(usize::MAX)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Failures found are kept below as plain tests instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn framing_lines_within_the_bound_is_lossless(
        (max, (lines, end_last)) in (0..24usize).prop_flat_map(|max| (Just(max), lines_within(max))),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let input = join(&lines, end_last);
        let (got, end) = frame(&chunks(&input, &cuts), max)?;
        prop_assert!(end.is_ok(), "{end:?}");
        let want: Vec<Vec<u8>> = lines.into_iter().map(|(line, _)| line).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn framing_any_bytes_matches_the_model(
        input in prop::collection::vec(byte(true), 0..200),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
        max in bound(),
    ) {
        let (got, end) = frame(&chunks(&input, &cuts), max)?;
        check_framed(&input, max, &got, &end).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn upper_of_utf8_is_unicode_uppercase(
        text in prop::collection::vec(
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['a', 'z', 'ß', 'ΐ', 'ΰ', 'ﬃ', 'ŉ', 'ς', 'ı', 'ǅ', 'ᾀ', 'և']),
            ],
            0..32,
        ).prop_map(String::from_iter),
    ) {
        let got = upper(text.as_bytes());
        prop_assert_eq!(&got, &text.to_uppercase().into_bytes());
        prop_assert!(got.len() <= MAX_GROWTH * text.len());
    }

    #[test]
    fn upper_of_other_bytes_changes_only_ascii_letters(
        mut bytes in prop::collection::vec(any::<u8>(), 0..64),
        bad in any::<Index>(),
        bad_byte in 0x80..=0xffu8,
    ) {
        // A lone continuation or lead byte (or 0xff) at the end makes any prefix invalid UTF-8.
        bytes.insert(bad.index(bytes.len() + 1), bad_byte);
        bytes.push(0xff);
        prop_assume!(std::str::from_utf8(&bytes).is_err());
        let got = upper(&bytes);
        prop_assert_eq!(got.len(), bytes.len());
        for (i, (&b, &u)) in bytes.iter().zip(&got).enumerate() {
            prop_assert_eq!(u, b.to_ascii_uppercase(), "byte {} of {:x?}", i, bytes);
        }
    }

    #[test]
    fn upper_grows_at_most_max_growth(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert!(upper(&bytes).len() <= MAX_GROWTH * bytes.len());
    }

    #[test]
    fn read_line_within_the_bound_is_lossless(
        (max, (lines, end_last)) in (0..24usize).prop_flat_map(|max| (Just(max), lines_within(max))),
        reads in prop::collection::vec(read_step(), 0..24),
        capacity in 1..16usize,
    ) {
        let input = join(&lines, end_last);
        let got = read_all(&input, &reads, capacity, max)?;
        let want: Vec<_> = lines.into_iter().map(|(line, _)| Ok(line)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn read_line_any_bytes_matches_the_model(
        input in prop::collection::vec(byte(true), 0..200),
        reads in prop::collection::vec(read_step(), 0..24),
        capacity in 1..16usize,
        max in bound(),
    ) {
        prop_assert_eq!(read_all(&input, &reads, capacity, max)?, model(&input, max));
    }

    #[test]
    fn json_message_keeps_the_exact_bytes(
        message in prop::collection::vec(byte(true), 0..48),
    ) {
        let out = Shared::default();
        let mut report = Report::to(Proto::Tcp, true, false, Box::new(out.clone()), Box::new(io::sink()));
        let upper = upper(&message);
        let mut buf = Vec::new();
        let text = Uppercased::new(&message, &mut buf);
        report.message("127.0.0.1:1", false, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The report writes a turn's lines when the event loop flushes it.
        report.flush().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = out.0.lock().map_err(|e| TestCaseError::fail(e.to_string()))?.clone();
        prop_assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 1, "one line per event");
        let event: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&text))))?;
        prop_assert_eq!(exact(&event, "message"), Some(message));
        prop_assert_eq!(exact(&event, "upper"), Some(upper));
    }
}

/// One read from the scripted reader: `Some(n)` gives up to `n` bytes, `None` is an `Interrupted` error.
fn read_step() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![6 => (1..8usize).prop_map(Some), 1 => Just(None)]
}

/// Reads `input` to its end with `read_line`, through a `BufReader` of `capacity` over a reader whose
/// reads follow `reads` (then give everything left, one byte at a time).
fn read_all(input: &[u8], reads: &[Option<usize>], capacity: usize, max: usize) -> Result<Lines, TestCaseError> {
    let scripted = Scripted { input, reads: reads.iter().copied() };
    let mut reader = BufReader::with_capacity(capacity, scripted);
    let mut got = Vec::new();
    // Each call consumes at least a byte, so this many calls must reach the end.
    for _ in 0..=input.len() {
        match read_line(&mut reader, max) {
            Ok(Some(line)) => got.push(line),
            Ok(None) => return Ok(got),
            Err(e) => return Err(TestCaseError::fail(format!("read_line failed: {e}"))),
        }
    }
    Err(TestCaseError::fail("read_line did not reach the end"))
}

struct Scripted<'a, I> {
    input: &'a [u8],
    reads: I,
}

impl<I: Iterator<Item = Option<usize>>> Read for Scripted<'_, I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.reads.next() {
            Some(None) => return Err(io::ErrorKind::Interrupted.into()),
            Some(Some(n)) => n,
            None => 1,
        };
        let n = n.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

/// A writer whose bytes the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut buf = self.0.lock().map_err(|e| io::Error::other(e.to_string()))?;
        buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The exact bytes of field `key`: from `KEY_hex` when present, else the text.
fn exact(event: &serde_json::Value, key: &str) -> Option<Vec<u8>> {
    if let Some(hex) = event.get(format!("{key}_hex")) {
        let hex = hex.as_str()?;
        return (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
    }
    Some(event.get(key)?.as_str()?.as_bytes().to_vec())
}

/// Every char's uppercase fits in `MAX_GROWTH` times its UTF-8 length, and some char needs all of it.
/// `str::to_uppercase` maps char by char, so this bounds any text.
#[test]
fn max_growth_holds_for_every_char_and_is_tight() {
    let mut tight = None;
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
        let grown: usize = c.to_uppercase().map(char::len_utf8).sum();
        assert!(
            grown <= MAX_GROWTH * c.len_utf8(),
            "{c:?} ({}) grows from {} to {grown} bytes",
            c.escape_unicode(),
            c.len_utf8()
        );
        if grown == MAX_GROWTH * c.len_utf8() && c.len_utf8() > 1 {
            tight.get_or_insert(c);
        }
    }
    assert!(tight.is_some(), "no char needs MAX_GROWTH: the bound could be lower");
}

/// Cases the properties found, kept as plain regressions.
#[test]
fn regressions() {
    // An unfinished line of max + 1 bytes was handed out whole by `finish` when the stream ended.
    let mut framer = LineFramer::new(5);
    assert_eq!(framer.push(b"123456", |_| {}), Err(TooLong { seen: 6 }));
    // The rest of a line begun in an earlier read was copied in whole before its length was checked.
    let mut framer = LineFramer::new(5);
    assert_eq!(framer.push(b"abc", |_| {}), Ok(()));
    let long = [&[b'x'; 4096][..], b"\n"].concat();
    let (pushed, largest) = watched(|| framer.push(&long, |_| {}));
    assert_eq!(pushed, Err(TooLong { seen: 4099 }));
    assert!(largest <= allocation_bound(5), "allocated {largest} bytes");
    // The largest bound overflowed `max + 1`.
    let mut lines = Vec::new();
    assert_eq!(LineFramer::new(usize::MAX).push(b"a\r\nb", |l| lines.push(l.to_vec())), Ok(()));
    assert_eq!(lines, [b"a"]);
    assert_eq!(read_line(&mut &b"a\r\n"[..], usize::MAX).ok(), Some(Some(Ok(b"a".to_vec()))));
    // A line split after a '\r' was reported one byte short once over the bound.
    let mut reader = BufReader::with_capacity(3, &b"ab\rxyz\nok\n"[..]);
    assert_eq!(read_line(&mut reader, 3).ok(), Some(Some(Err(6))));
    assert_eq!(read_line(&mut reader, 3).ok(), Some(Some(Ok(b"ok".to_vec()))));
    // An over-long line's own line end counted in its length as "\r\n" but not as "\n".
    let mut reader = &b"abcdef\r\n"[..];
    assert_eq!(read_line(&mut reader, 3).ok(), Some(Some(Err(6))));
}

proptest! {
    /// The transcript escaper: nothing raw reaches a terminal, and the text reads back exactly.
    #[test]
    fn escaping_is_terminal_safe_and_reads_back(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(check_escaped(&data), Ok(()));
    }

    /// The same on text (UTF-8 with controls, C1 included), where most bytes stay as they are.
    #[test]
    fn escaping_text_keeps_what_is_printable(text in "[a-z\\\\\\t\\n\\x00-\\x1f\\x7f-\\u{9f}ßΐ]{0,40}") {
        prop_assert_eq!(check_escaped(text.as_bytes()), Ok(()));
    }

    /// Mostly plain text, of every length around the escaper's 8- and 16-byte steps, with now and
    /// then any byte at any place: shown as the concatenation of its characters (and stray bytes)
    /// shown one at a time, so the fast path for plain text shows exactly what the slow one would.
    #[test]
    fn escaping_whole_is_escaping_each_character(
        data in prop::collection::vec(prop_oneof![12 => 0x20u8..0x7f, 1 => any::<u8>()], 0..100),
    ) {
        let mut each = String::new();
        for chunk in data.utf8_chunks() {
            for c in chunk.valid().chars() {
                each += &escaped(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            for &byte in chunk.invalid() {
                each += &escaped(&[byte]);
            }
        }
        prop_assert_eq!(escaped(&data), each);
    }

    /// The server's two transcript lines for a message, byte for byte, tagged with the peer or not.
    #[test]
    fn transcript_lines_are_exact(
        peer in prop::collection::vec(prop_oneof![12 => 0x20u8..0x7f, 1 => any::<u8>()], 0..24),
        message in prop::collection::vec(prop_oneof![12 => 0x20u8..0x7f, 1 => any::<u8>()], 0..80),
        tagged in any::<bool>(),
    ) {
        let peer = String::from_utf8_lossy(&peer);
        let out = Shared::default();
        let mut report = Report::to(Proto::Tcp, false, false, Box::new(out.clone()), Box::new(io::sink()));
        let upper = upper(&message);
        let mut buf = b"left from the message before".to_vec();
        let text = Uppercased::new(&message, &mut buf);
        prop_assert_eq!(text.upper, &upper[..]);
        report.message(&peer, tagged, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        report.flush().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = out.0.lock().map_err(|e| TestCaseError::fail(e.to_string()))?.clone();
        let tag = if tagged { format!("[{}] ", escaped(peer.as_bytes())) } else { String::new() };
        let want = format!(
            "{tag}from connected user: {}\n{tag}Received from User: {}\n",
            escaped(&message),
            escaped(&upper)
        );
        prop_assert_eq!(String::from_utf8_lossy(&text), want);
    }
}

/// Every byte on its own, shown as the escaper's documentation says.
#[test]
fn each_byte_is_shown_as_documented() {
    for byte in 0..=255u8 {
        let want = match byte {
            b'\\' => "\\\\".to_string(),
            b'\n' => "\\n".to_string(),
            b'\r' => "\\r".to_string(),
            b'\t' => "\t".to_string(),
            0x1b => "\\e".to_string(),
            0x20..0x7f => char::from(byte).to_string(),
            // The other C0 controls, DEL, and a lone byte of 0x80 or more (never UTF-8 on its own).
            _ => format!("\\x{byte:02x}"),
        };
        assert_eq!(escaped(&[byte]), want, "byte {byte:#04x}");
    }
}

proptest! {
    /// The size parser (`--max-message 1M`): what the fuzz target `size` checks, on sampled input.
    #[test]
    fn sizes_read_as_written(n in 0u64..10_000_000, unit in 0usize..7, text in "[0-9 .kKmMgGiIbB]{0,12}") {
        let (suffix, shift) = [("", 0), ("B", 0), ("K", 10), ("KiB", 10), ("m", 20), ("G", 30), ("GiB", 30)][unit];
        let want = usize::try_from(n).ok().and_then(|n| n.checked_mul(1 << shift));
        prop_assert_eq!(parse_size(&format!("{n}{suffix}")).ok(), want);
        if let Ok(bytes) = parse_size(&text) {
            prop_assert_eq!(parse_size(&bytes.to_string()), Ok(bytes));
        }
    }
}
