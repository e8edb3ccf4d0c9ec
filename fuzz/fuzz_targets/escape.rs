//! The transcript escaper on any bytes: no control character but tab reaches the terminal, and the
//! text reads back to exactly the bytes (`shared::check_escaped`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = netpair_fuzz::check_escaped(data) {
        panic!("{e}");
    }
});
