//! The JSON writer on any bytes: every object parses as JSON; a string field is the text exactly; a
//! message's bytes come back exactly, from `KEY_hex` when they are not UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netpair::json::Json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Any text as a key too, but never one of the fixed keys below (it would shadow them).
    let key = format!("key:{text}");
    let mut json = Json::default();
    json.str(&key, &text).bytes("message", data).int("n", data.len() as u64).num("x", data.len() as f64 / 7.0);
    let line = json.finish();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(value[key.as_str()].as_str(), Some(text.as_ref()), "{line}");
    let exact = match value.get("message_hex") {
        Some(hex) => {
            let hex = hex.as_str().expect("hex is a string");
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex")).collect()
        }
        None => value["message"].as_str().expect("text").as_bytes().to_vec(),
    };
    assert_eq!(exact, data, "{line}");
    assert!(!line.contains('\n'), "one line: {line:?}");
});
