//! pydantic's lax coercions to numbers, as the reference applies them to content fields (its
//! models validate Python objects, `orjson`-parsed) and to query parameters (strings).
//!
//! JSON integers beyond 64 bits reach the reference as floats (`orjson`), as they reach raleph
//! (`serde_json` without arbitrary precision), so both read them by the float rules.

use serde_json::Value;

/// Whether every `_` in `s` lies between two ASCII digits, the only place pydantic (like
/// Python's numeric literals) allows one.
fn underscores_between_digits(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    })
}

/// An integer written as pydantic reads a string: surrounding whitespace, a sign, `_` between
/// digits, and a fractional part made of zeros (`"5.00"`) are allowed; nothing else (`""`,
/// `"5."`, `"1.5"`, `"1e3"`, `"0x10"`). Values beyond the `i128` range saturate.
pub fn int_from_str(s: &str) -> Option<i128> {
    let s = s.trim();
    if !underscores_between_digits(s) {
        return None;
    }
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (digits, fraction) = match rest.split_once('.') {
        Some((digits, fraction)) => (digits, Some(fraction)),
        None => (rest, None),
    };
    if fraction.is_some_and(|f| f.is_empty() || f.bytes().any(|b| b != b'0')) {
        return None;
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let n = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0i128, |n, d| {
            n.saturating_mul(10).saturating_add(i128::from(d - b'0'))
        });
    Some(if negative { -n } else { n })
}

/// A float written as pydantic reads a string: surrounding whitespace, a sign, `_` between
/// digits, an exponent, and `inf`, `infinity` or `nan` in any case; `"1e400"` is infinite.
pub fn float_from_str(s: &str) -> Option<f64> {
    let s = s.trim();
    if !underscores_between_digits(s) {
        return None;
    }
    let plain: String = s.chars().filter(|c| *c != '_').collect();
    // Rust's grammar is pydantic's (after the underscores), `inf`/`infinity`/`nan` included.
    plain.parse::<f64>().ok()
}

/// The largest magnitude (exclusive) of a float pydantic turns into an `int`: 2^63.
const FLOAT_INT_BOUND: f64 = 9_223_372_036_854_775_808.0;

/// A JSON value read as a pydantic `int`: an integer, a boolean (0 or 1), a float with no
/// fractional part of magnitude below 2^63, or a string as [`int_from_str`] reads it.
pub fn int_from_value(value: &Value) -> Option<i128> {
    match value {
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i128::from(i))
            } else if let Some(u) = n.as_u64() {
                Some(i128::from(u))
            } else {
                // `as` is exact here: the value is whole and below 2^63 in magnitude.
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < FLOAT_INT_BOUND)
                    .map(|f| f as i128)
            }
        }
        Value::String(s) => int_from_str(s),
        _ => None,
    }
}

/// A JSON value read as a pydantic `float`: a number, a boolean (0.0 or 1.0), or a string as
/// [`float_from_str`] reads it (so possibly infinite or NaN).
pub fn float_from_value(value: &Value) -> Option<f64> {
    match value {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => float_from_str(s),
        _ => None,
    }
}

/// A boolean written as pydantic reads a string: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, `t`/`f`, `y`/`n`, in any case and without surrounding whitespace.
pub fn bool_from_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// A JSON value read as a pydantic `bool`: a boolean, the numbers 0 and 1, or a string as
/// [`bool_from_str`] reads it (`null` is not one).
pub fn bool_from_value(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(s) => bool_from_str(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Cases checked against pydantic 2 (`TypeAdapter(int)` / `TypeAdapter(float)`).
    #[test]
    fn ints_as_pydantic_reads_them() {
        for (s, n) in [
            ("7", 7),
            ("+7", 7),
            (" 7 ", 7),
            ("\t7\n", 7),
            ("1_000", 1000),
            ("1.0", 1),
            ("0.000", 0),
            ("-0", 0),
            ("-5", -5),
            ("007", 7),
        ] {
            assert_eq!(int_from_str(s), Some(n), "{s:?}");
        }
        assert_eq!(
            int_from_str("99999999999999999999999999"),
            Some(99_999_999_999_999_999_999_999_999)
        );
        assert_eq!(int_from_str(&"9".repeat(60)), Some(i128::MAX));
        for s in [
            "", " ", "1.", ".0", "1.5", "1e3", "0x10", "0b1", "1 000", "1__0", "_1", "1_", "+",
            "-", "٧", "--1", "1.0_0",
        ] {
            assert_eq!(int_from_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn floats_as_pydantic_reads_them() {
        for (s, f) in [
            ("5.", 5.0),
            (".5", 0.5),
            ("1_0", 10.0),
            ("1_0.5", 10.5),
            ("1.0_5", 1.05),
            ("1e1_0", 1e10),
            (" 5 ", 5.0),
            ("+5", 5.0),
            ("1E3", 1000.0),
        ] {
            assert_eq!(float_from_str(s), Some(f), "{s:?}");
        }
        for s in ["inf", "Infinity", "INF", "+inf", "iNfInItY", "1e400"] {
            assert_eq!(float_from_str(s), Some(f64::INFINITY), "{s:?}");
        }
        assert!(float_from_str("nan").is_some_and(f64::is_nan));
        for s in ["", "1__0", "_1", "1_", "0x10", "infinit", "1 0", "5e", "٥"] {
            assert_eq!(float_from_str(s), None, "{s:?}");
        }
    }

    #[test]
    fn booleans_as_pydantic_reads_them() {
        for (v, b) in [
            (json!(true), true),
            (json!(1), true),
            (json!(1.0), true),
            (json!(0), false),
            (json!(0.0), false),
            (json!("True"), true),
            (json!("yes"), true),
            (json!("on"), true),
            (json!("t"), true),
            (json!("Y"), true),
            (json!("1"), true),
            (json!("off"), false),
            (json!("NO"), false),
            (json!("f"), false),
            (json!("n"), false),
            (json!("0"), false),
            (json!("false"), false),
        ] {
            assert_eq!(bool_from_value(&v), Some(b), "{v}");
        }
        for v in [
            json!(2),
            json!(0.5),
            json!(""),
            json!(" true"),
            json!(null),
            json!([]),
            json!({}),
        ] {
            assert_eq!(bool_from_value(&v), None, "{v}");
        }
    }

    #[test]
    fn values_as_pydantic_reads_them() {
        for (v, n) in [
            (json!(5), 5),
            (json!(-5), -5),
            (json!(u64::MAX), i128::from(u64::MAX)),
            (json!(5.0), 5),
            (json!(-0.0), 0),
            (json!(9.2e18), 9_200_000_000_000_000_000),
            (json!(true), 1),
            (json!(false), 0),
            (json!("5"), 5),
            (json!(" 5 "), 5),
            (json!("5.0"), 5),
        ] {
            assert_eq!(int_from_value(&v), Some(n), "{v}");
        }
        for v in [
            json!(5.5),
            json!("1e3"),
            json!(1e19),
            json!(-9.223372036854776e18),
            json!(null),
            json!([]),
            json!({}),
        ] {
            assert_eq!(int_from_value(&v), None, "{v}");
        }
        assert_eq!(float_from_value(&json!(true)), Some(1.0));
        assert_eq!(float_from_value(&json!("1.5")), Some(1.5));
        assert_eq!(float_from_value(&json!(2)), Some(2.0));
        assert_eq!(float_from_value(&json!(null)), None);
        assert_eq!(float_from_value(&json!("x")), None);
    }
}
