//! Text as Python's `json.dumps` writes it, for the byte-exact payloads other nodes hash or
//! sign (Cosmos sign documents, ALIVE announcements).

/// Appends `s` as a JSON string literal exactly as Python's `json.dumps` writes it with the
/// default `ensure_ascii=True`: everything outside printable ASCII is escaped as `\uXXXX`
/// (lowercase hex, UTF-16 surrogate pairs above the BMP), except the five short escapes.
pub fn push_python_json_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_python() {
        let mut s = String::new();
        push_python_json_string(&mut s, "é\n\u{1F600}\u{7f}\"\\ a~");
        assert_eq!(s, r#""\u00e9\n\ud83d\ude00\u007f\"\\ a~""#);
    }
}
