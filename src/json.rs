//! A JSON writer for one object per line: the events of `--json` and the documents of `compare` and
//! `bench`. Message bytes that are not UTF-8 are written lossily under their key and exactly, as
//! lowercase hex, under `KEY_hex`: a reader takes `KEY_hex` when present. No I/O.

use std::fmt::Write as _;

/// One JSON object under construction.
#[derive(Default)]
pub struct Json {
    text: String,
}

impl Json {
    fn key(&mut self, key: &str) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        escape_into(&mut self.text, key);
        self.text.push(':');
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        escape_into(&mut self.text, value);
        self
    }

    /// A message's bytes: the text, plus `KEY_hex` with the exact bytes when they are not UTF-8.
    pub fn bytes(&mut self, key: &str, value: &[u8]) -> &mut Self {
        match std::str::from_utf8(value) {
            Ok(text) => self.str(key, text),
            Err(_) => {
                self.str(key, &String::from_utf8_lossy(value));
                let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                self.str(&format!("{key}_hex"), &hex)
            }
        }
    }

    /// A true-or-false field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    /// A whole-number field.
    pub fn int(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// A number field, to the microsecond for times in seconds or milliseconds; `null` for a value
    /// that is not a finite number (JSON has none).
    pub fn num(&mut self, key: &str, value: f64) -> &mut Self {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.text, "{value:.6}");
        } else {
            self.text.push_str("null");
        }
        self
    }

    /// A field whose value is JSON already (an object made by another `Json`).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.text.push_str(json);
        self
    }

    /// The object, closed.
    pub fn finish(&self) -> String {
        if self.text.is_empty() {
            return "{}".into();
        }
        format!("{}}}", self.text)
    }
}

/// `{"a":{...},"b":{...}}` from named objects, in order.
pub fn object_of(members: impl IntoIterator<Item = (String, String)>) -> String {
    let mut out = Json::default();
    for (key, json) in members {
        out.raw(&key, &json);
    }
    out.finish()
}

fn escape_into(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_hex() {
        let mut j = Json::default();
        j.str("a", "q\"\\\n\u{1}").bytes("m", b"ok").bytes("x", b"\xff\x00");
        assert_eq!(j.finish(), r#"{"a":"q\"\\\n\u0001","m":"ok","x":"�\u0000","x_hex":"ff00"}"#);
        assert_eq!(Json::default().finish(), "{}");
        assert_eq!(Json::default().num("a", f64::NAN).num("b", f64::INFINITY).finish(), r#"{"a":null,"b":null}"#);
        assert_eq!(object_of([("t".to_string(), "{}".to_string())]), r#"{"t":{}}"#);
    }
}
