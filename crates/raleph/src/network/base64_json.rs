//! The file in a reference node's `GET /api/v0/storage/{hash}` answer, decoded as it arrives.
//!
//! The answer is a JSON object whose top-level `content` field is the file in base64: Python's
//! `base64.encodebytes` (standard alphabet, padded, a newline after every 76 characters, so `\n`
//! escapes in the JSON), next to `status`, `hash` and `engine`. [`ContentExtractor`] is a sans-IO
//! push parser: fed the answer's bytes in chunks split anywhere, it appends the decoded bytes of
//! `content` to the caller's buffer as they come. Between chunks it holds a few bytes of state
//! (a partial escape or UTF-8 sequence, an incomplete base64 group, the kinds of up to
//! [`MAX_DEPTH`] open arrays and objects), never the answer. The rest of the object is checked
//! as JSON and skipped; at most [`MAX_OTHER_BYTES`] of it are accepted.
//!
//! Base64 follows the reference's decoder on what it produces: whitespace (raw or escaped) is
//! ignored anywhere, and the bits past the last whole byte of a padded group are not checked.
//! It is stricter on the rest: only the standard alphabet, padding only where it belongs and
//! nothing after it, groups of four.

use std::fmt;

/// Most bytes of the answer outside the `content` string: the reference's other fields are a
/// status, a hash and an engine name.
// Not a setting: fixed by the reference's answer format (three short fields), not by anything
// an operator runs; it only bounds what a hostile peer can make this parser skip.
pub const MAX_OTHER_BYTES: u64 = 64 * 1024;
/// Most arrays and objects open at once, the answer's own object included.
// Not a setting: the reference's answer is one flat object; this only bounds hostile nesting.
pub const MAX_DEPTH: u32 = 64;

/// Not a base64 character.
const INVALID: u8 = 0xFF;
/// The value of each base64 character, [`INVALID`] for the others.
static BASE64: [u8; 256] = base64_values();

const fn base64_values() -> [u8; 256] {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut values = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        values[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    values
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not JSON, or not an object: what was wrong.
    Json(&'static str),
    /// The content string is not base64: what was wrong.
    Base64(&'static str),
    /// More than [`MAX_DEPTH`] arrays and objects open at once.
    TooDeep,
    /// More than [`MAX_OTHER_BYTES`] outside the content string.
    OtherTooLarge,
    /// The object has no top-level `content` field.
    MissingContent,
    /// The object has two top-level `content` fields.
    DuplicateContent,
    /// The top-level `content` field is not a string.
    ContentNotString,
    /// The answer ends before its object does.
    Truncated,
}

/// An answer refused, and where: the offset of the byte that showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractError {
    pub kind: ErrorKind,
    pub at: u64,
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at;
        match self.kind {
            ErrorKind::Json(what) => write!(
                f,
                "the answer is not the JSON expected at byte {at}: {what}"
            ),
            ErrorKind::Base64(what) => write!(f, "the content is not base64 at byte {at}: {what}"),
            ErrorKind::TooDeep => write!(
                f,
                "the answer nests more than {MAX_DEPTH} arrays and objects (byte {at})"
            ),
            ErrorKind::OtherTooLarge => write!(
                f,
                "the answer has more than {MAX_OTHER_BYTES} bytes besides its content (byte {at})"
            ),
            ErrorKind::MissingContent => write!(f, "the answer has no \"content\" field"),
            ErrorKind::DuplicateContent => {
                write!(f, "the answer has two \"content\" fields (byte {at})")
            }
            ErrorKind::ContentNotString => {
                write!(f, "the answer's \"content\" is not a string (byte {at})")
            }
            ErrorKind::Truncated => {
                write!(f, "the answer ends after {at} bytes, before its object")
            }
        }
    }
}

impl std::error::Error for ExtractError {}

/// Where the parser is in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the object's `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object: a key.
    Key,
    /// Inside a key.
    KeyString(Str),
    /// After a key: `:`.
    Colon,
    /// A value.
    Value,
    /// After `[`: a value or `]`.
    FirstValue,
    /// Inside a string value that is skipped.
    SkippedString(Str),
    /// Inside `true`, `false` or `null`: the bytes still expected.
    Literal(&'static [u8]),
    Number(Num),
    /// After a value: `,` or the end of the array or object.
    AfterValue,
    /// Inside the top-level `content` string.
    Content(Str),
    /// After the object: only whitespace.
    End,
}

/// Where a string is between two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    Plain,
    /// After a backslash.
    Escape,
    /// In `\uXXXX`: hex digits still expected, the code unit so far, and whether it must be the
    /// low half of a surrogate pair.
    Unicode {
        left: u8,
        code: u16,
        low: bool,
    },
    /// After the high half of a surrogate pair: `\` then `u` expected.
    NeedLow {
        backslash_seen: bool,
    },
    /// In a multi-byte UTF-8 sequence: bytes still expected, and the range of the next one.
    Utf8 {
        left: u8,
        lo: u8,
        hi: u8,
    },
}

/// What one byte of a string stands for.
enum Unit {
    /// Nothing yet (inside an escape or a multi-byte character).
    Nothing,
    Ascii(u8),
    NonAscii,
    /// The closing quote.
    End,
}

/// Where a number is: what was read last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
}

/// Padding of the last base64 group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pad {
    None,
    /// `xx=`: one more `=` expected.
    Half,
    /// The group is complete: only whitespace may follow.
    Done,
}

/// Decodes the `content` of a storage answer as the answer streams in. See the module's
/// documentation.
#[derive(Debug)]
pub struct ContentExtractor {
    state: State,
    /// Open arrays and objects, the answer's own included.
    depth: u32,
    /// Bit `i` set: the container at depth `i + 1` is an object.
    objects: u64,
    /// The key being read, as far as it matches `content`.
    key_matched: u8,
    key_differs: bool,
    /// The value being read is the top-level `content`.
    value_is_content: bool,
    content_seen: bool,
    /// Bytes read outside the content string.
    other_bytes: u64,
    /// Bytes read before the current chunk.
    offset: u64,
    /// The base64 group being read: its sextets so far, and how many.
    group: u32,
    sextets: u8,
    pad: Pad,
    failed: Option<ExtractError>,
}

impl Default for ContentExtractor {
    fn default() -> Self {
        Self::new()
    }
}

fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn err(what: &'static str) -> ErrorKind {
    ErrorKind::Json(what)
}

impl ContentExtractor {
    pub fn new() -> Self {
        ContentExtractor {
            state: State::Start,
            depth: 0,
            objects: 0,
            key_matched: 0,
            key_differs: false,
            value_is_content: false,
            content_seen: false,
            other_bytes: 0,
            offset: 0,
            group: 0,
            sextets: 0,
            pad: Pad::None,
            failed: None,
        }
    }

    /// Reads the next bytes of the answer, appending what they decode to `out`. After an
    /// error, every call returns it again.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ExtractError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        out.reserve(input.len() / 4 * 3 + 3);
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Content(Str::Plain) && self.pad == Pad::None {
                // The bulk of an answer: base64 characters, decoded here without `step`.
                while let Some(&b) = input.get(i) {
                    let value = BASE64[b as usize];
                    if value == INVALID {
                        break;
                    }
                    self.push_sextet(value, out);
                    i += 1;
                }
                if i == input.len() {
                    break;
                }
            }
            if let Err(kind) = self.step(input[i], out) {
                let e = ExtractError {
                    kind,
                    at: self.offset + i as u64,
                };
                self.failed = Some(e);
                return Err(e);
            }
            i += 1;
        }
        self.offset += input.len() as u64;
        Ok(())
    }

    /// The answer ended: it must have been a whole object with its content.
    pub fn finish(&self) -> Result<(), ExtractError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.state {
            State::End => Ok(()),
            _ => Err(ExtractError {
                kind: ErrorKind::Truncated,
                at: self.offset,
            }),
        }
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> Result<(), ErrorKind> {
        if !matches!(self.state, State::Content(_)) {
            self.other_bytes += 1;
            if self.other_bytes > MAX_OTHER_BYTES {
                return Err(ErrorKind::OtherTooLarge);
            }
        }
        match self.state {
            State::Start => match b {
                b'{' => self.open(true)?,
                _ if is_json_space(b) => {}
                _ => return Err(err("not an object")),
            },
            State::FirstKey => match b {
                b'"' => self.start_key(),
                b'}' => self.close()?,
                _ if is_json_space(b) => {}
                _ => return Err(err("expected a key or '}'")),
            },
            State::Key => match b {
                b'"' => self.start_key(),
                _ if is_json_space(b) => {}
                _ => return Err(err("expected a key")),
            },
            State::KeyString(s) => {
                let (s, unit) = string_byte(s, b)?;
                self.state = State::KeyString(s);
                match unit {
                    Unit::Nothing => {}
                    Unit::Ascii(c) => self.key_char(Some(c)),
                    Unit::NonAscii => self.key_char(None),
                    Unit::End => {
                        self.value_is_content = self.depth == 1
                            && !self.key_differs
                            && usize::from(self.key_matched) == b"content".len();
                        self.state = State::Colon;
                    }
                }
            }
            State::Colon => match b {
                b':' => self.state = State::Value,
                _ if is_json_space(b) => {}
                _ => return Err(err("expected ':'")),
            },
            State::Value => {
                if !is_json_space(b) {
                    self.value(b)?;
                }
            }
            State::FirstValue => match b {
                b']' => self.close()?,
                _ if is_json_space(b) => {}
                _ => self.value(b)?,
            },
            State::SkippedString(s) => {
                let (s, unit) = string_byte(s, b)?;
                self.state = match unit {
                    Unit::End => State::AfterValue,
                    _ => State::SkippedString(s),
                };
            }
            State::Literal(rest) => match rest {
                [first, more @ ..] if *first == b => {
                    self.state = if more.is_empty() {
                        State::AfterValue
                    } else {
                        State::Literal(more)
                    };
                }
                _ => return Err(err("expected true, false or null")),
            },
            State::Number(n) => match (n, b) {
                (Num::Minus, b'0') => self.state = State::Number(Num::Zero),
                (Num::Minus | Num::Int, b'0'..=b'9') => self.state = State::Number(Num::Int),
                (Num::Zero | Num::Int, b'.') => self.state = State::Number(Num::Dot),
                (Num::Dot | Num::Frac, b'0'..=b'9') => self.state = State::Number(Num::Frac),
                (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => {
                    self.state = State::Number(Num::Exp);
                }
                (Num::Exp, b'+' | b'-') => self.state = State::Number(Num::ExpSign),
                (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => {
                    self.state = State::Number(Num::ExpDigits);
                }
                (Num::Zero | Num::Int | Num::Frac | Num::ExpDigits, _) => {
                    // The byte after a number belongs to what follows it.
                    self.state = State::AfterValue;
                    self.after_value(b)?;
                }
                _ => return Err(err("malformed number")),
            },
            State::AfterValue => self.after_value(b)?,
            State::Content(s) => {
                let (s, unit) = string_byte(s, b)?;
                self.state = State::Content(s);
                match unit {
                    Unit::Nothing => {}
                    Unit::Ascii(c) => self.base64_char(c, out)?,
                    Unit::NonAscii => return Err(ErrorKind::Base64("not a base64 character")),
                    Unit::End => {
                        self.end_base64()?;
                        self.state = State::AfterValue;
                    }
                }
            }
            State::End => {
                if !is_json_space(b) {
                    return Err(err("more after the object"));
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, object: bool) -> Result<(), ErrorKind> {
        if self.depth >= MAX_DEPTH {
            return Err(ErrorKind::TooDeep);
        }
        let bit = 1u64 << self.depth;
        if object {
            self.objects |= bit;
        } else {
            self.objects &= !bit;
        }
        self.depth += 1;
        self.state = if object {
            State::FirstKey
        } else {
            State::FirstValue
        };
        Ok(())
    }

    fn in_object(&self) -> bool {
        self.depth > 0 && self.objects & (1u64 << (self.depth - 1)) != 0
    }

    fn close(&mut self) -> Result<(), ErrorKind> {
        self.depth = self
            .depth
            .checked_sub(1)
            .ok_or(err("more closed than opened"))?;
        if self.depth > 0 {
            self.state = State::AfterValue;
            return Ok(());
        }
        if !self.content_seen {
            return Err(ErrorKind::MissingContent);
        }
        self.state = State::End;
        Ok(())
    }

    fn start_key(&mut self) {
        self.key_matched = 0;
        self.key_differs = false;
        self.state = State::KeyString(Str::Plain);
    }

    fn key_char(&mut self, c: Option<u8>) {
        let expected = b"content".get(usize::from(self.key_matched));
        if !self.key_differs && c.is_some() && expected == c.as_ref() {
            self.key_matched += 1;
        } else {
            self.key_differs = true;
        }
    }

    fn value(&mut self, b: u8) -> Result<(), ErrorKind> {
        if std::mem::take(&mut self.value_is_content) {
            if self.content_seen {
                return Err(ErrorKind::DuplicateContent);
            }
            if b != b'"' {
                return Err(ErrorKind::ContentNotString);
            }
            self.content_seen = true;
            self.state = State::Content(Str::Plain);
            return Ok(());
        }
        self.state = match b {
            b'"' => State::SkippedString(Str::Plain),
            b'{' => return self.open(true),
            b'[' => return self.open(false),
            b't' => State::Literal(b"rue"),
            b'f' => State::Literal(b"alse"),
            b'n' => State::Literal(b"ull"),
            b'-' => State::Number(Num::Minus),
            b'0' => State::Number(Num::Zero),
            b'1'..=b'9' => State::Number(Num::Int),
            _ => return Err(err("expected a value")),
        };
        Ok(())
    }

    fn after_value(&mut self, b: u8) -> Result<(), ErrorKind> {
        match b {
            b',' if self.in_object() => self.state = State::Key,
            b',' => self.state = State::Value,
            b'}' if self.in_object() => self.close()?,
            b']' if !self.in_object() => self.close()?,
            _ if is_json_space(b) => {}
            _ => return Err(err("expected ',' or the end of an array or object")),
        }
        Ok(())
    }

    fn push_sextet(&mut self, value: u8, out: &mut Vec<u8>) {
        self.group = self.group << 6 | u32::from(value);
        self.sextets += 1;
        if self.sextets == 4 {
            let [_, a, b, c] = self.group.to_be_bytes();
            out.extend_from_slice(&[a, b, c]);
            self.group = 0;
            self.sextets = 0;
        }
    }

    fn base64_char(&mut self, c: u8, out: &mut Vec<u8>) -> Result<(), ErrorKind> {
        let value = BASE64[c as usize];
        if value != INVALID {
            if self.pad != Pad::None {
                return Err(ErrorKind::Base64("characters after the padding"));
            }
            self.push_sextet(value, out);
            return Ok(());
        }
        match c {
            b'=' => match (self.sextets, self.pad) {
                (2, Pad::None) => self.pad = Pad::Half,
                (2, Pad::Half) => {
                    out.push((self.group >> 4) as u8);
                    self.pad = Pad::Done;
                    self.group = 0;
                    self.sextets = 0;
                }
                (3, Pad::None) => {
                    out.extend_from_slice(&[(self.group >> 10) as u8, (self.group >> 2) as u8]);
                    self.pad = Pad::Done;
                    self.group = 0;
                    self.sextets = 0;
                }
                _ => return Err(ErrorKind::Base64("misplaced padding")),
            },
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {}
            _ => return Err(ErrorKind::Base64("not a base64 character")),
        }
        Ok(())
    }

    fn end_base64(&self) -> Result<(), ErrorKind> {
        if self.pad == Pad::Half {
            return Err(ErrorKind::Base64("incomplete padding"));
        }
        if self.sextets != 0 {
            return Err(ErrorKind::Base64(
                "the last group has fewer than 4 characters",
            ));
        }
        Ok(())
    }
}

fn hex_digit(b: u8) -> Option<u16> {
    (b as char).to_digit(16).map(|d| d as u16)
}

/// One byte of a JSON string (after its opening quote).
fn string_byte(s: Str, b: u8) -> Result<(Str, Unit), ErrorKind> {
    let utf8 = |left, lo, hi| Ok((Str::Utf8 { left, lo, hi }, Unit::NonAscii));
    match s {
        Str::Plain => match b {
            b'"' => Ok((Str::Plain, Unit::End)),
            b'\\' => Ok((Str::Escape, Unit::Nothing)),
            0..=0x1F => Err(err("a control character in a string")),
            0x20..=0x7F => Ok((Str::Plain, Unit::Ascii(b))),
            0xC2..=0xDF => utf8(1, 0x80, 0xBF),
            0xE0 => utf8(2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => utf8(2, 0x80, 0xBF),
            0xED => utf8(2, 0x80, 0x9F),
            0xF0 => utf8(3, 0x90, 0xBF),
            0xF1..=0xF3 => utf8(3, 0x80, 0xBF),
            0xF4 => utf8(3, 0x80, 0x8F),
            _ => Err(err("invalid UTF-8 in a string")),
        },
        Str::Utf8 { left, lo, hi } => {
            if !(lo..=hi).contains(&b) {
                return Err(err("invalid UTF-8 in a string"));
            }
            let s = if left == 1 {
                Str::Plain
            } else {
                Str::Utf8 {
                    left: left - 1,
                    lo: 0x80,
                    hi: 0xBF,
                }
            };
            Ok((s, Unit::Nothing))
        }
        Str::Escape => {
            let c = match b {
                b'"' | b'\\' | b'/' => b,
                b'b' => 0x08,
                b'f' => 0x0C,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let s = Str::Unicode {
                        left: 4,
                        code: 0,
                        low: false,
                    };
                    return Ok((s, Unit::Nothing));
                }
                _ => return Err(err("an invalid escape in a string")),
            };
            Ok((Str::Plain, Unit::Ascii(c)))
        }
        Str::Unicode { left, code, low } => {
            let digit = hex_digit(b).ok_or(err("expected a hex digit in a \\u escape"))?;
            let code = code << 4 | digit;
            if left > 1 {
                let s = Str::Unicode {
                    left: left - 1,
                    code,
                    low,
                };
                return Ok((s, Unit::Nothing));
            }
            match (low, code) {
                (true, 0xDC00..=0xDFFF) => Ok((Str::Plain, Unit::Nothing)),
                (true, _) => Err(err("a lone surrogate in a \\u escape")),
                (false, 0xD800..=0xDBFF) => {
                    let s = Str::NeedLow {
                        backslash_seen: false,
                    };
                    Ok((s, Unit::NonAscii))
                }
                (false, 0xDC00..=0xDFFF) => Err(err("a lone surrogate in a \\u escape")),
                (false, 0..=0x7F) => Ok((Str::Plain, Unit::Ascii(code as u8))),
                (false, _) => Ok((Str::Plain, Unit::NonAscii)),
            }
        }
        Str::NeedLow { backslash_seen } => match (backslash_seen, b) {
            (false, b'\\') => Ok((
                Str::NeedLow {
                    backslash_seen: true,
                },
                Unit::Nothing,
            )),
            (true, b'u') => Ok((
                Str::Unicode {
                    left: 4,
                    code: 0,
                    low: true,
                },
                Unit::Nothing,
            )),
            _ => Err(err("a lone surrogate in a \\u escape")),
        },
    }
}

/// What the reference nodes send, for tests.
#[cfg(test)]
pub(crate) mod reference {
    use base64::Engine;

    /// The JSON prefix of an answer, up to the content's opening quote included: Python's
    /// `json.dumps` of the reference's dict.
    pub fn head(hash: &str) -> Vec<u8> {
        format!(r#"{{"status": "success", "hash": "{hash}", "engine": "storage", "content": ""#)
            .into_bytes()
    }

    /// What follows the content.
    pub const TAIL: &[u8] = b"\"}";

    /// Python's `base64.encodebytes`, JSON-escaped: 76 characters then `\n` per 57 bytes. The
    /// encoding of consecutive pieces of 57-byte multiples is that of the whole.
    pub fn encoded_lines(bytes: &[u8], out: &mut Vec<u8>) {
        for line in bytes.chunks(57) {
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(line)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\\n");
        }
    }

    /// A whole answer.
    pub fn answer(hash: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = head(hash);
        encoded_lines(bytes, &mut out);
        out.extend_from_slice(TAIL);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    /// Feeds `answer` in pieces cut at `cuts` (offsets, any order) and returns the decoded bytes.
    fn extract_split(answer: &[u8], cuts: &[usize]) -> Result<Vec<u8>, ExtractError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (answer.len() + 1)).collect();
        cuts.push(0);
        cuts.push(answer.len());
        cuts.sort_unstable();
        let mut extractor = ContentExtractor::new();
        let mut out = Vec::new();
        for pair in cuts.windows(2) {
            extractor.feed(&answer[pair[0]..pair[1]], &mut out)?;
        }
        extractor.finish()?;
        Ok(out)
    }

    fn extract(answer: &[u8]) -> Result<Vec<u8>, ExtractError> {
        extract_split(answer, &[])
    }

    fn kind(answer: &[u8]) -> ErrorKind {
        extract(answer).expect_err("refused").kind
    }

    /// Byte by byte too, and at every single cut.
    fn extract_every_way(answer: &[u8]) -> Result<Vec<u8>, ExtractError> {
        let whole = extract(answer);
        let cuts: Vec<usize> = (0..=answer.len()).collect();
        assert_eq!(extract_split(answer, &cuts), whole, "byte by byte");
        for cut in 0..=answer.len() {
            assert_eq!(extract_split(answer, &[cut]), whole, "cut at {cut}");
        }
        whole
    }

    const HASH: &str = "5ccdd7bccfbc5955e2e40166dd0cdea0b093154fd87bc2bea57e7c768cde2f21";

    #[test]
    fn decodes_the_reference_answer_at_every_size() {
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let answer = reference::answer(HASH, &bytes);
            assert_eq!(extract(&answer).expect("decoded"), bytes, "{len} bytes");
        }
        let answer = reference::answer(HASH, b"Hello, Aleph!\n");
        assert_eq!(
            extract_every_way(&answer).expect("decoded"),
            b"Hello, Aleph!\n"
        );
    }

    #[test]
    fn the_exact_reference_bytes_decode() {
        // json.dumps({"status": "success", "hash": h, "engine": "storage",
        //             "content": base64.encodebytes(b"a" * 60).decode()})
        let answer = br#"{"status": "success", "hash": "h", "engine": "storage", "content": "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh\nYWFh\n"}"#;
        assert_eq!(extract_every_way(answer).expect("decoded"), vec![b'a'; 60]);
    }

    #[test]
    fn key_order_whitespace_escapes_and_other_fields_do_not_matter() {
        let answers: [&str; 8] = [
            r#"{"content":"QUJD"}"#,
            " \r\n\t{ \"content\" :\n\"QUJD\" } \n",
            r#"{"content": "QUJD", "status": "success"}"#,
            r#"{"a": [1, -2.5e+3, 0.1E-2, true, false, null, {"content": "x"}], "b": {}, "c": [], "content": "QUJD"}"#,
            r#"{"con\u0074ent": "Q\u0055JD"}"#,
            r#"{"content": "\u0051 U\nJ\r\tD", "x": "\u00e9\ud83d\ude00 é😀"}"#,
            r#"{"content": "Q\/JD", "hash": "\/\"\\\b\f"}"#,
            r#"{"contents": "xx", "conten": 1, "content": "QUJD", "Content": null}"#,
        ];
        let expected: [&[u8]; 8] = [
            b"ABC", b"ABC", b"ABC", b"ABC", b"ABC", b"ABC", b"C\xf2C", b"ABC",
        ];
        for (answer, expected) in answers.iter().zip(expected) {
            assert_eq!(
                extract_every_way(answer.as_bytes()).expect(answer),
                expected,
                "{answer}"
            );
        }
    }

    #[test]
    fn padding_and_empty_content() {
        for (content, expected) in [
            ("", &b""[..]),
            ("QQ==", b"A"),
            ("QUI=", b"AB"),
            ("QUJD", b"ABC"),
            ("QUJDRA==\\n", b"ABCD"),
            ("QQ= =", b"A"),
            // The bits past the last byte are not checked, as the reference does not.
            ("QR==", b"A"),
        ] {
            let answer = format!(r#"{{"content": "{content}"}}"#);
            assert_eq!(
                extract(answer.as_bytes()).expect(content),
                expected,
                "{content}"
            );
        }
    }

    #[test]
    fn bad_base64_is_refused() {
        for content in [
            "Q", "QQ", "QQ=", "QUJ", "Q===", "=QUJ", "QQ==QUJD", "QUJD=", "QU*D", "QUJD-_", "QQ=A",
            "\\u00e9", "é", "\\\"", "\\\\", "\\b",
        ] {
            let answer = format!(r#"{{"content": "{content}"}}"#);
            assert!(
                matches!(kind(answer.as_bytes()), ErrorKind::Base64(_)),
                "{content}: {:?}",
                extract(answer.as_bytes())
            );
        }
    }

    #[test]
    fn malformed_json_is_refused() {
        let cases: &[&[u8]] = &[
            b"",
            b"[]",
            b"\"content\"",
            b"\xef\xbb\xbf{\"content\": \"\"}",
            b"{\"content\": \"\"} x",
            b"{\"content\": \"\"}{}",
            b"{\"content\": \"\",}",
            b"{,\"content\": \"\"}",
            b"{\"content\" \"\"}",
            b"{\"content\": \"QUJD\n\"}",
            b"{\"content\": \"\", \"a\": 01}",
            b"{\"content\": \"\", \"a\": 1.}",
            b"{\"content\": \"\", \"a\": -}",
            b"{\"content\": \"\", \"a\": .5}",
            b"{\"content\": \"\", \"a\": 1e}",
            b"{\"content\": \"\", \"a\": +1}",
            b"{\"content\": \"\", \"a\": tru}",
            b"{\"content\": \"\", \"a\": truex}",
            b"{\"content\": \"\", \"a\": nul}",
            b"{\"content\": \"\", \"a\": [1,]}",
            b"{\"content\": \"\", \"a\": [1 2]}",
            b"{\"content\": \"\", \"a\": [}",
            b"{\"content\": \"\", \"a\": {]}",
            b"{\"content\": \"\", \"a\": {1: 2}}",
            b"{\"content\": \"\", \"a\": \"\\x\"}",
            b"{\"content\": \"\", \"a\": \"\\u12g4\"}",
            b"{\"content\": \"\", \"a\": \"\\ud800\"}",
            b"{\"content\": \"\", \"a\": \"\\ud800\\u0041\"}",
            b"{\"content\": \"\", \"a\": \"\\udc00\"}",
            b"{\"content\": \"\", \"a\": \"\xff\"}",
            b"{\"content\": \"\", \"a\": \"\xc3\"}",
            b"{\"content\": \"\", \"a\": \"\xe0\x80\x80\"}",
            b"{\"content\": \"\", \"a\": \"\xed\xa0\x80\"}",
            b"{\"content\": \"\", \"a\": \"\t\"}",
            b"{'content': ''}",
        ];
        for case in cases {
            let text = String::from_utf8_lossy(case);
            let e = extract(case).expect_err(&text);
            assert!(
                matches!(e.kind, ErrorKind::Json(_) | ErrorKind::Truncated),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn the_errors_say_what_is_wrong() {
        assert_eq!(
            kind(br#"{"status": "error", "reason": "unknown"}"#),
            ErrorKind::MissingContent
        );
        assert_eq!(
            kind(br#"{"a": {"content": "QUJD"}}"#),
            ErrorKind::MissingContent
        );
        assert_eq!(
            kind(br#"{"content": "QUJD", "content": "QUJD"}"#),
            ErrorKind::DuplicateContent
        );
        assert_eq!(kind(br#"{"content": null}"#), ErrorKind::ContentNotString);
        assert_eq!(
            kind(br#"{"content": ["QUJD"]}"#),
            ErrorKind::ContentNotString
        );
        let answer = reference::answer(HASH, &[7; 1000]);
        for cut in [0, 1, 10, 100, answer.len() - 2, answer.len() - 1] {
            let e = extract(&answer[..cut]).expect_err("truncated");
            assert_eq!(e.kind, ErrorKind::Truncated, "cut at {cut}");
            assert_eq!(e.at, cut as u64);
        }
        let e = extract(br#"{"content": "QU*D"}"#).expect_err("bad");
        assert_eq!(e.at, 15);
        assert_eq!(
            e.to_string(),
            "the content is not base64 at byte 15: not a base64 character"
        );
        // An error sticks.
        let mut extractor = ContentExtractor::new();
        let mut out = Vec::new();
        assert!(extractor.feed(b"x", &mut out).is_err());
        assert!(extractor.feed(b"{\"content\": \"\"}", &mut out).is_err());
        assert!(extractor.finish().is_err());
    }

    #[test]
    fn what_is_not_content_is_bounded() {
        let big = "x".repeat(MAX_OTHER_BYTES as usize);
        let answer = format!(r#"{{"status": "{big}", "content": "QUJD"}}"#);
        assert_eq!(kind(answer.as_bytes()), ErrorKind::OtherTooLarge);
        let answer = format!(r#"{{"content": "QUJD", "status": "{big}"}}"#);
        assert_eq!(kind(answer.as_bytes()), ErrorKind::OtherTooLarge);
        // Many small fields add up.
        let many = r#""a": 1, "#.repeat(MAX_OTHER_BYTES as usize / 8 + 1);
        let answer = format!(r#"{{{many}"content": "QUJD"}}"#);
        assert_eq!(kind(answer.as_bytes()), ErrorKind::OtherTooLarge);
        let answer = format!(
            r#"{{"content": "QUJD"}}{}"#,
            " ".repeat(MAX_OTHER_BYTES as usize)
        );
        assert_eq!(kind(answer.as_bytes()), ErrorKind::OtherTooLarge);
        // Whatever the size of the content.
        let answer = reference::answer(HASH, &vec![1; 3 * MAX_OTHER_BYTES as usize]);
        assert_eq!(
            extract(&answer).expect("decoded").len(),
            3 * MAX_OTHER_BYTES as usize
        );
        // Nesting is bounded.
        let deep = |n: usize| {
            format!(
                r#"{{"a": {}1{}, "content": ""}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(extract(deep(MAX_DEPTH as usize - 1).as_bytes()).is_ok());
        assert_eq!(
            kind(deep(MAX_DEPTH as usize).as_bytes()),
            ErrorKind::TooDeep
        );
    }

    #[test]
    fn the_state_held_is_small() {
        assert!(std::mem::size_of::<ContentExtractor>() <= 128);
    }

    /// An answer encoded with variations the JSON allows: any key order, whitespace, extra
    /// fields, `/` escaped or not, newlines as `\n` or `\u000a`.
    fn varied_answer(bytes: &[u8], choices: &[u8]) -> Vec<u8> {
        let mut choice = choices.iter().copied().cycle();
        let mut pick = move |n: u8| choice.next().unwrap_or(0) % n;
        let mut content = String::new();
        for line in bytes.chunks(57) {
            for c in base64::engine::general_purpose::STANDARD
                .encode(line)
                .chars()
            {
                match c {
                    '/' if pick(2) == 0 => content.push_str("\\/"),
                    'A' if pick(4) == 0 => content.push_str("\\u0041"),
                    c => content.push(c),
                }
            }
            content.push_str(["\\n", "\\u000a", "\\r\\n", " "][pick(4) as usize]);
        }
        let space = |pick: &mut dyn FnMut(u8) -> u8| [" ", "", "\n  ", "\t"][pick(4) as usize];
        let mut fields = vec![
            r#""status": "success""#.to_owned(),
            format!(r#""hash": "{HASH}""#),
            r#""engine": "storage""#.to_owned(),
            format!(r#""content": "{content}""#),
        ];
        if pick(2) == 0 {
            fields.push(
                r#""extra": {"content": [1, -0.5e3, true, null, "\u00e9\"\/"], "n": {}}"#
                    .to_owned(),
            );
        }
        for i in (1..fields.len()).rev() {
            fields.swap(i, pick(i as u8 + 1) as usize);
        }
        let mut answer = String::from(space(&mut pick));
        answer.push('{');
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                answer.push(',');
            }
            answer.push_str(space(&mut pick));
            answer.push_str(&field.replacen(
                "\": ",
                &format!("\"{}:{}", space(&mut pick), space(&mut pick)),
                1,
            ));
            answer.push_str(space(&mut pick));
        }
        answer.push('}');
        answer.push_str(space(&mut pick));
        answer.into_bytes()
    }

    /// The content as serde_json and the base64 crate read it, whitespace dropped as the
    /// reference's decoder does.
    fn decoded_by_libraries(answer: &[u8]) -> Option<Vec<u8>> {
        let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
        let content = value.as_object()?.get("content")?.as_str()?;
        let compact: String = content
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        engine.decode(compact).ok()
    }

    proptest! {
        #[test]
        fn reference_answers_decode_back_exactly(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let answer = reference::answer(HASH, &bytes);
            prop_assert_eq!(extract_split(&answer, &cuts).expect("decoded"), bytes);
        }

        #[test]
        fn varied_answers_decode_back_exactly(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            choices in proptest::collection::vec(any::<u8>(), 1..64),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let answer = varied_answer(&bytes, &choices);
            prop_assert_eq!(decoded_by_libraries(&answer), Some(bytes.clone()), "the generator");
            prop_assert_eq!(extract_split(&answer, &cuts).expect("decoded"), bytes);
        }

        #[test]
        fn random_input_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..512),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let _ = extract_split(&input, &cuts);
        }

        /// One byte changed, added or removed in a valid answer: refused, or read as the
        /// libraries read it.
        #[test]
        fn damaged_answers_are_refused_or_read_right(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            choices in proptest::collection::vec(any::<u8>(), 1..32),
            at in any::<usize>(),
            byte in any::<u8>(),
            how in 0..3u8,
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut answer = varied_answer(&bytes, &choices);
            let at = at % answer.len();
            match how {
                0 => answer[at] = byte,
                1 => answer.insert(at, byte),
                _ => { answer.remove(at); }
            }
            let ours = extract_split(&answer, &cuts);
            if let Ok(decoded) = ours {
                prop_assert_eq!(Some(decoded), decoded_by_libraries(&answer));
            }
        }
    }
}
