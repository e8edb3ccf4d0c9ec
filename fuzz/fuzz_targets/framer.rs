//! The line framer against a model: any bytes, any bound, cut into any reads. It must give exactly the
//! model's lines, stop with `TooLong` at the first line over the bound, hold at most `max + 1` bytes
//! and never allocate more than twice that at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpair::framing::LineFramer;
use netpair_fuzz::{allocation_bound, check_framed, unwatched, watched};

fuzz_target!(|data: &[u8]| {
    // Layout: [bound] [n] [n read sizes] [stream...]. Small bounds make over-long lines common.
    let Some((&bound, rest)) = data.split_first() else { return };
    let max = if bound == 0xff { usize::MAX } else { usize::from(bound & 0x3f) };
    let Some((&n, rest)) = rest.split_first() else { return };
    let (sizes, input) = rest.split_at(usize::from(n % 8).min(rest.len()));
    let sizes: Vec<usize> =
        if sizes.iter().any(|&s| s > 0) { sizes.iter().map(|&s| s.into()).collect() } else { vec![1] };

    let mut framer = LineFramer::new(max);
    let mut lines = Vec::new();
    let mut end = Ok(());
    let mut left = input;
    // A size of 0 pushes an empty read; some size is not 0, so this ends.
    for &size in sizes.iter().cycle() {
        if left.is_empty() {
            break;
        }
        let (piece, after) = left.split_at(size.min(left.len()));
        left = after;
        let (pushed, largest) = watched(|| framer.push(piece, |line| unwatched(|| lines.push(line.to_vec()))));
        assert!(largest <= allocation_bound(max), "pushing {} bytes allocated {largest} (bound {max})", piece.len());
        assert!(framer.pending() <= max.saturating_add(1), "holds {} bytes (bound {max})", framer.pending());
        if pushed.is_err() {
            assert_eq!(framer.pending(), 0, "an over-long line is dropped whole");
            end = pushed;
            break;
        }
    }
    if end.is_ok() {
        lines.extend(framer.finish());
    }

    if let Err(wrong) = check_framed(input, max, &lines, &end) {
        panic!("{wrong}");
    }
});
