//! The size parser on any text: never panics; a plain number is that many bytes, with K, M or G
//! that many times 1,024, 1,024² or 1,024³ (whenever it fits a usize), and what it accepts reads
//! back the same when written as a plain number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpair::cli::parse_size;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(bytes) = parse_size(text) {
        assert_eq!(parse_size(&bytes.to_string()), Ok(bytes), "{text:?}");
    }
    let n = data.iter().fold(0u64, |n, &b| (n * 31 + u64::from(b)) % 10_000_000);
    for (unit, shift) in [("", 0), ("B", 0), ("K", 10), ("KiB", 10), ("m", 20), ("G", 30), ("GiB", 30)] {
        let want = usize::try_from(n).ok().and_then(|n| n.checked_mul(1 << shift));
        assert_eq!(parse_size(&format!("{n}{unit}")).ok(), want, "{n}{unit}");
    }
});
