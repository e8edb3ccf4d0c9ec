//! The uppercaser on any bytes: Unicode uppercase for UTF-8; otherwise only ASCII lowercase letters
//! change, every other byte stays as and where it was; never more than `MAX_GROWTH` times longer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpair::upper::{MAX_GROWTH, upper};

fuzz_target!(|data: &[u8]| {
    let got = upper(data);
    assert!(got.len() <= MAX_GROWTH * data.len(), "{} bytes grew to {}", data.len(), got.len());
    match std::str::from_utf8(data) {
        Ok(text) => assert_eq!(got, text.to_uppercase().into_bytes()),
        Err(_) => {
            assert_eq!(got.len(), data.len());
            for (i, (&b, &u)) in data.iter().zip(&got).enumerate() {
                assert_eq!(u, b.to_ascii_uppercase(), "byte {i}");
            }
        }
    }
});
