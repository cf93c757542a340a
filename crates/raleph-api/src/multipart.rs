//! A streaming `multipart/form-data` parser (RFC 7578, with the framing of RFC 2046) whose
//! memory stays bounded whatever a client sends.
//!
//! [`Parser`] does no IO: [`Parser::feed`] hands it the bytes of the body as they arrive,
//! [`Parser::next_event`] returns what they complete ([`Event::PartStart`] with the part's
//! name, file name and content type, [`Event::Data`] chunks of its body, [`Event::PartEnd`],
//! and [`Event::End`] at the closing boundary), [`Parser::end_input`] says the body is over.
//! [`Reader`] drives it from a stream of chunks (an axum body's data stream); [`parse`] runs
//! it over a list of chunks in one call (fuzz targets, tests).
//!
//! What the parser holds at once, besides the chunk being parsed, is at most
//! [`Parser::max_buffered`] bytes: a part's header block while it is read (at most
//! [`Limits::max_header_bytes`]), else the end of the last chunk when it may begin a boundary
//! (fewer than the boundary's length plus 4). The preamble (bytes before the first boundary)
//! and the epilogue (after the last) are discarded as they arrive; part bodies are handed out
//! as slices of the chunks fed, never copied or gathered, so their size is the caller's to
//! bound. Past a limit of [`Limits`] the parser fails with an error that names it
//! ([`MultipartError::status`]: 413 for the limits, 400 for a malformed body).
//!
//! Header parameters (`name`, `filename`) are read as clients write them: quoted strings with
//! backslash escapes (aiohttp, curl: `\"`, `\\`, and an escaped space or control character),
//! browsers' and requests' percent escapes of exactly `"`, CR and LF (`%22`, `%0D`, `%0A`, as
//! the Fetch standard decodes them; other `%xx` are kept as sent, as the reference node's
//! aiohttp does), unquoted tokens, and RFC 8187 extended values (`name*=utf-8''%E2%82%AC`,
//! which aiohttp sends for a non-ASCII field name), preferred over the plain parameter.
//! A backslash before any other character is kept, so a Windows path a browser sends as
//! `filename="C:\dir\a.txt"` stays as it is.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use memchr::memmem;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Default of [`Limits::max_preamble_bytes`].
pub const MAX_PREAMBLE_BYTES: usize = 8 * 1024;
/// Default of [`Limits::max_header_bytes`].
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Default of [`Limits::max_header_lines`] (what axum's former parser, multer, allowed).
pub const MAX_HEADER_LINES: usize = 32;
/// Default of [`Limits::max_parts`].
pub const MAX_PARTS: usize = 16;
/// Longest boundary, bytes: RFC 2046 section 5.1.1 allows 1 to 70 characters.
pub const MAX_BOUNDARY_BYTES: usize = 70;

/// The limits of one multipart body. Part bodies are not limited here: the caller bounds
/// them (an upload's metadata by `api.max_upload_metadata_bytes`, its file by the storage
/// limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most bytes before the first boundary (the preamble, discarded unread). Clients send
    /// none.
    pub max_preamble_bytes: usize,
    /// Most bytes of one part's header block: from the end of its boundary to the end of the
    /// blank line that closes its headers, line ends included.
    pub max_header_bytes: usize,
    /// Most header lines of one part.
    pub max_header_lines: usize,
    /// Most parts in one body (an upload has two: `metadata` and `file`).
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_preamble_bytes: MAX_PREAMBLE_BYTES,
            max_header_bytes: MAX_HEADER_BYTES,
            max_header_lines: MAX_HEADER_LINES,
            max_parts: MAX_PARTS,
        }
    }
}

/// Why a multipart body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The Content-Type is not `multipart/form-data`.
    NotFormData,
    /// The Content-Type names no boundary.
    NoBoundary,
    /// The boundary is longer than [`MAX_BOUNDARY_BYTES`].
    BoundaryTooLong { limit: usize },
    /// The boundary is empty, ends with a space or has a character other than printable
    /// ASCII.
    BadBoundary,
    /// More than [`Limits::max_preamble_bytes`] before the first boundary.
    PreambleTooLarge { limit: usize },
    /// A part's header block is larger than [`Limits::max_header_bytes`].
    HeadersTooLarge { limit: usize },
    /// A part has more than [`Limits::max_header_lines`] header lines.
    TooManyHeaderLines { limit: usize },
    /// The body has more than [`Limits::max_parts`] parts.
    TooManyParts { limit: usize },
    /// A part header line is not `Name: value`.
    MalformedHeader,
    /// A boundary is followed on its line by something other than `--` or white space.
    MalformedBoundaryLine,
    /// The body ended before its closing boundary.
    Incomplete,
    /// Reading the body failed (the connection broke, or the client sent less than it said).
    Read(String),
}

impl MultipartError {
    /// The HTTP status the client gets: 413 past a limit, 400 for a malformed body.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            MultipartError::PreambleTooLarge { .. }
            | MultipartError::HeadersTooLarge { .. }
            | MultipartError::TooManyHeaderLines { .. }
            | MultipartError::TooManyParts { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MultipartError::NotFormData => {
                write!(
                    f,
                    "malformed multipart body: the Content-Type is not multipart/form-data"
                )
            }
            MultipartError::NoBoundary => {
                write!(
                    f,
                    "malformed multipart body: the Content-Type names no boundary"
                )
            }
            MultipartError::BoundaryTooLong { limit } => write!(
                f,
                "malformed multipart body: the boundary is longer than {limit} bytes (RFC 2046)"
            ),
            MultipartError::BadBoundary => write!(
                f,
                "malformed multipart body: the boundary must be printable ASCII, not empty, not ending with a space"
            ),
            MultipartError::PreambleTooLarge { limit } => write!(
                f,
                "multipart body: more than {limit} bytes before the first boundary (limit max_preamble_bytes)"
            ),
            MultipartError::HeadersTooLarge { limit } => write!(
                f,
                "multipart body: a part's headers are larger than {limit} bytes (limit max_header_bytes)"
            ),
            MultipartError::TooManyHeaderLines { limit } => write!(
                f,
                "multipart body: a part has more than {limit} header lines (limit max_header_lines)"
            ),
            MultipartError::TooManyParts { limit } => write!(
                f,
                "multipart body: more than {limit} parts (limit max_parts)"
            ),
            MultipartError::MalformedHeader => {
                write!(
                    f,
                    "malformed multipart body: a part header is not `Name: value`"
                )
            }
            MultipartError::MalformedBoundaryLine => write!(
                f,
                "malformed multipart body: a boundary is followed by other characters on its line"
            ),
            MultipartError::Incomplete => write!(
                f,
                "malformed multipart body: it ends before its closing boundary"
            ),
            MultipartError::Read(e) => write!(f, "reading the body failed: {e}"),
        }
    }
}

impl std::error::Error for MultipartError {}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

/// What a part says of itself in its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHead {
    /// `name` of its `Content-Disposition` (`None` without one).
    pub name: Option<String>,
    /// `filename` of its `Content-Disposition`.
    pub filename: Option<String>,
    /// Its `Content-Type`, as sent.
    pub content_type: Option<String>,
}

/// What the bytes fed so far complete, in order: for each part `PartStart`, any number of
/// `Data`, `PartEnd`; then `End` once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A part begins; its headers were read.
    PartStart(PartHead),
    /// A piece of the current part's body (never empty), a slice of the chunk fed.
    Data(Bytes),
    /// The current part's body ended.
    PartEnd,
    /// The closing boundary: nothing after it is read.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Before the first boundary: bytes are discarded (and counted).
    Preamble,
    /// Right after a boundary: `--` (the end), or white space and a line end.
    BoundaryLine,
    /// A part's header lines, up to a blank line.
    Headers,
    /// A part's body, up to the next boundary.
    Body,
    /// After the closing boundary: bytes are discarded.
    Epilogue,
    /// An error was returned; it is returned again.
    Failed(MultipartError),
}

/// The bytes a boundary is looked for with: CRLF, `--`, the boundary. The CRLF before a
/// boundary belongs to it (RFC 2046), so it is not part of the preceding body.
const DELIMITER_PREFIX: &[u8] = b"\r\n--";

/// Where [`Parser::scan`] got to.
enum Scan {
    /// Bytes before the next boundary.
    Data(Bytes),
    /// A boundary, consumed.
    Boundary,
    /// All input looked at.
    NeedMore,
}

/// A sans-IO `multipart/form-data` push parser; see the module documentation.
///
/// ```
/// use bytes::Bytes;
/// use raleph_api::multipart::{Event, Limits, Parser};
///
/// let mut parser = Parser::from_content_type("multipart/form-data; boundary=XYZ", Limits::default())?;
/// parser.feed(Bytes::from_static(b"--XYZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhi\r\n--XYZ--"));
/// let mut events = Vec::new();
/// while let Some(event) = parser.next_event()? {
///     events.push(event);
/// }
/// parser.end_input();
/// assert_eq!(parser.next_event()?, None); // Err(Incomplete) had the closing boundary been missing
/// assert_eq!(events.len(), 4); // PartStart, Data("hi"), PartEnd, End
/// # Ok::<(), raleph_api::multipart::MultipartError>(())
/// ```
pub struct Parser {
    limits: Limits,
    /// `\r\n--` and the boundary.
    delimiter: Box<[u8]>,
    finder: memmem::Finder<'static>,
    state: State,
    /// Bytes kept from earlier input: in `Preamble` and `Body`, a tail that may begin a
    /// boundary (a proper prefix of `delimiter`); in `BoundaryLine` and `Headers`, the line
    /// read so far.
    held: BytesMut,
    /// Input fed and not yet parsed.
    input: Bytes,
    /// Whether `end_input` was called.
    input_ended: bool,
    /// Preamble bytes discarded, counting the CRLF the parser imagines before the body (so
    /// that a body starting with its boundary needs no special case).
    preamble: usize,
    parts: usize,
    /// Bytes of the current part's header block read so far (complete lines).
    header_bytes: usize,
    header_lines: usize,
    head: PartHead,
}

impl fmt::Debug for Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser")
            .field("state", &self.state)
            .field("held", &self.held.len())
            .field("input", &self.input.len())
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

impl Parser {
    /// A parser for the body of a request with this `Content-Type`
    /// (`multipart/form-data; boundary=...`, the boundary quoted or not).
    pub fn from_content_type(content_type: &str, limits: Limits) -> Result<Parser, MultipartError> {
        Parser::new(&boundary(content_type)?, limits)
    }

    /// A parser for a body with this boundary (without its leading `--`).
    pub fn new(boundary: &str, limits: Limits) -> Result<Parser, MultipartError> {
        check_boundary(boundary.as_bytes())?;
        let delimiter: Box<[u8]> = [DELIMITER_PREFIX, boundary.as_bytes()].concat().into();
        let finder = memmem::Finder::new(&delimiter).into_owned();
        let mut held = BytesMut::with_capacity(delimiter.len());
        // The CRLF imagined before the body, so that a boundary on the first line is found
        // as any other.
        held.extend_from_slice(b"\r\n");
        Ok(Parser {
            limits,
            delimiter,
            finder,
            state: State::Preamble,
            held,
            input: Bytes::new(),
            input_ended: false,
            preamble: 0,
            parts: 0,
            header_bytes: 0,
            header_lines: 0,
            head: PartHead::default(),
        })
    }

    /// Hands the parser the next bytes of the body. Call [`Parser::next_event`] until it
    /// returns `Ok(None)` before feeding more: only then is the memory held bounded by
    /// [`Parser::max_buffered`].
    pub fn feed(&mut self, chunk: Bytes) {
        if matches!(self.state, State::Epilogue | State::Failed(_)) || chunk.is_empty() {
            return;
        }
        if self.input.is_empty() {
            self.input = chunk;
        } else {
            let mut joined = BytesMut::with_capacity(self.input.len() + chunk.len());
            joined.extend_from_slice(&self.input);
            joined.extend_from_slice(&chunk);
            self.input = joined.freeze();
        }
    }

    /// Says the body is over: after the events still due, [`Parser::next_event`] returns
    /// [`MultipartError::Incomplete`] unless the closing boundary was seen.
    pub fn end_input(&mut self) {
        self.input_ended = true;
    }

    /// Whether the closing boundary was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Epilogue
    }

    /// Bytes held: kept from earlier input, plus input fed and not parsed yet.
    pub fn buffered(&self) -> usize {
        self.held.len() + self.input.len()
    }

    /// The most [`Parser::buffered`] can be once [`Parser::next_event`] returned `Ok(None)`:
    /// the larger of [`Limits::max_header_bytes`] and the boundary's length plus 4.
    pub fn max_buffered(&self) -> usize {
        self.limits.max_header_bytes.max(self.delimiter.len())
    }

    /// The next event the bytes fed complete; `Ok(None)` when more input is needed (or, after
    /// [`Event::End`], ever after). After an error, the same error again.
    pub fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        let result = self.step();
        match &result {
            Err(e) => {
                if !matches!(self.state, State::Failed(_)) {
                    self.state = State::Failed(e.clone());
                }
                self.held = BytesMut::new();
                self.input = Bytes::new();
            }
            Ok(None) => debug_assert!(self.buffered() <= self.max_buffered(), "{self:?}"),
            Ok(Some(_)) => {}
        }
        result
    }

    fn step(&mut self) -> Result<Option<Event>, MultipartError> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Epilogue => {
                    self.held = BytesMut::new();
                    self.input = Bytes::new();
                    return Ok(None);
                }
                State::Preamble => match self.scan() {
                    Scan::Data(discarded) => {
                        self.preamble += discarded.len();
                        // The 2 imagined bytes are discarded first when the body does not
                        // start with its boundary.
                        if self.preamble > self.limits.max_preamble_bytes.saturating_add(2) {
                            return Err(MultipartError::PreambleTooLarge {
                                limit: self.limits.max_preamble_bytes,
                            });
                        }
                    }
                    Scan::Boundary => self.boundary_found(),
                    Scan::NeedMore => return self.need_more(),
                },
                State::Body => {
                    return match self.scan() {
                        Scan::Data(data) => Ok(Some(Event::Data(data))),
                        Scan::Boundary => {
                            self.boundary_found();
                            Ok(Some(Event::PartEnd))
                        }
                        Scan::NeedMore => self.need_more(),
                    };
                }
                State::BoundaryLine => {
                    // `--` right after a boundary closes the body; what follows is ignored.
                    let mut first = self.held.iter().chain(self.input.iter());
                    match (first.next(), first.next()) {
                        (Some(b'-'), Some(b'-')) => {
                            self.state = State::Epilogue;
                            self.held = BytesMut::new();
                            self.input = Bytes::new();
                            return Ok(Some(Event::End));
                        }
                        (Some(_), Some(_)) => {}
                        _ => {
                            self.hold_input();
                            return self.need_more();
                        }
                    }
                    let Some(line) = self.take_line()? else {
                        return self.need_more();
                    };
                    if !line.iter().all(|&b| b == b' ' || b == b'\t') {
                        return Err(MultipartError::MalformedBoundaryLine);
                    }
                    self.parts += 1;
                    if self.parts > self.limits.max_parts {
                        return Err(MultipartError::TooManyParts {
                            limit: self.limits.max_parts,
                        });
                    }
                    self.header_lines = 0;
                    self.head = PartHead::default();
                    self.state = State::Headers;
                }
                State::Headers => {
                    let Some(line) = self.take_line()? else {
                        return self.need_more();
                    };
                    if line.is_empty() {
                        self.state = State::Body;
                        return Ok(Some(Event::PartStart(std::mem::take(&mut self.head))));
                    }
                    self.header_lines += 1;
                    if self.header_lines > self.limits.max_header_lines {
                        return Err(MultipartError::TooManyHeaderLines {
                            limit: self.limits.max_header_lines,
                        });
                    }
                    self.header_line(&line)?;
                }
            }
        }
    }

    fn boundary_found(&mut self) {
        self.state = State::BoundaryLine;
        self.header_bytes = 0;
    }

    /// All input was looked at: wait for more, or fail if there is none.
    fn need_more(&mut self) -> Result<Option<Event>, MultipartError> {
        debug_assert!(self.input.is_empty());
        if self.input_ended {
            Err(MultipartError::Incomplete)
        } else {
            Ok(None)
        }
    }

    /// Keeps the (few) input bytes left for the next call.
    fn hold_input(&mut self) {
        self.held.extend_from_slice(&self.input);
        self.input = Bytes::new();
    }

    /// Looks for the next boundary: returns the bytes before it, or the boundary, or asks for
    /// more input (keeping a tail that may begin a boundary).
    fn scan(&mut self) -> Scan {
        let delimiter = &self.delimiter;
        if !self.held.is_empty() {
            // `held` is a proper prefix of the delimiter: does the input complete it?
            let have = self.held.len();
            let missing = delimiter.len() - have;
            let n = missing.min(self.input.len());
            if n == 0 {
                return Scan::NeedMore;
            }
            if self.input[..n] == delimiter[have..have + n] {
                if n == missing {
                    self.input.advance(n);
                    self.held.clear();
                    return Scan::Boundary;
                }
                self.hold_input();
                return Scan::NeedMore;
            }
            // Not a boundary: the held bytes were data. The delimiter has a single CR, its
            // first byte, so no boundary starts inside them either.
            return Scan::Data(self.held.split().freeze());
        }
        if self.input.is_empty() {
            return Scan::NeedMore;
        }
        match self.finder.find(&self.input) {
            Some(0) => {
                self.input.advance(delimiter.len());
                Scan::Boundary
            }
            Some(at) => Scan::Data(self.input.split_to(at)),
            None => {
                // Keep the tail that may begin a boundary: it starts at the last CR, if any,
                // of the last `delimiter.len() - 1` bytes.
                let len = self.input.len();
                let from = len.saturating_sub(delimiter.len() - 1);
                let keep = memchr::memrchr(b'\r', &self.input[from..])
                    .map(|at| from + at)
                    .filter(|&at| delimiter.starts_with(&self.input[at..]));
                let data = match keep {
                    Some(at) => {
                        self.held.extend_from_slice(&self.input[at..]);
                        let data = self.input.split_to(at);
                        self.input = Bytes::new();
                        data
                    }
                    None => std::mem::take(&mut self.input),
                };
                if data.is_empty() {
                    Scan::NeedMore
                } else {
                    Scan::Data(data)
                }
            }
        }
    }

    /// The next line of the header block, without its line end (CRLF, or a lone LF), once
    /// complete; the block's size is checked as it grows.
    fn take_line(&mut self) -> Result<Option<BytesMut>, MultipartError> {
        let left = self
            .limits
            .max_header_bytes
            .saturating_sub(self.header_bytes);
        let too_large = MultipartError::HeadersTooLarge {
            limit: self.limits.max_header_bytes,
        };
        // A lone LF right after a boundary may already be held (kept while the check for `--`
        // waited for a second byte): it ends the line, whatever input follows.
        if let Some(at) = memchr::memchr(b'\n', &self.held) {
            let length = at + 1;
            if length > left {
                return Err(too_large);
            }
            self.header_bytes += length;
            let mut line = self.held.split_to(at + 1);
            line.truncate(at);
            if line.last() == Some(&b'\r') {
                line.truncate(line.len() - 1);
            }
            return Ok(Some(line));
        }
        match memchr::memchr(b'\n', &self.input) {
            Some(at) => {
                let length = self.held.len() + at + 1;
                if length > left {
                    return Err(too_large);
                }
                self.held.extend_from_slice(&self.input[..at]);
                self.input.advance(at + 1);
                self.header_bytes += length;
                let mut line = self.held.split();
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Ok(Some(line))
            }
            None => {
                // The line end is still to come.
                if self.held.len() + self.input.len() + 1 > left {
                    return Err(too_large);
                }
                self.hold_input();
                Ok(None)
            }
        }
    }

    fn header_line(&mut self, line: &[u8]) -> Result<(), MultipartError> {
        let colon = memchr::memchr(b':', line).ok_or(MultipartError::MalformedHeader)?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        // A line starting with white space (an obsolete folded header) fails here too.
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(MultipartError::MalformedHeader);
        }
        if name.eq_ignore_ascii_case(b"content-disposition") {
            let params = parameters(value);
            self.head.name = form_parameter(&params, b"name");
            self.head.filename = form_parameter(&params, b"filename");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            self.head.content_type = Some(String::from_utf8_lossy(value).into_owned());
        }
        Ok(())
    }
}

/// The boundary of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let bytes = content_type.as_bytes();
    let media_type = bytes.split(|&b| b == b';').next().unwrap_or_default();
    if !trim(media_type).eq_ignore_ascii_case(b"multipart/form-data") {
        return Err(MultipartError::NotFormData);
    }
    let params = parameters(bytes);
    let found = params
        .iter()
        .find(|p| p.key == b"boundary")
        .ok_or(MultipartError::NoBoundary)?;
    check_boundary(&found.value)?;
    // Printable ASCII, so valid UTF-8.
    Ok(String::from_utf8_lossy(&found.value).into_owned())
}

fn check_boundary(boundary: &[u8]) -> Result<(), MultipartError> {
    if boundary.len() > MAX_BOUNDARY_BYTES {
        return Err(MultipartError::BoundaryTooLong {
            limit: MAX_BOUNDARY_BYTES,
        });
    }
    // No CR in particular: the delimiter's only CR must be its first byte (see `scan`).
    if boundary.is_empty()
        || boundary.ends_with(b" ")
        || !boundary.iter().all(|&b| (b' '..=b'~').contains(&b))
    {
        return Err(MultipartError::BadBoundary);
    }
    Ok(())
}

/// A `tchar` of RFC 9110: what a header name is made of.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// One `key=value` parameter of a header value.
struct Parameter {
    /// Lower-cased.
    key: Vec<u8>,
    /// Unquoted and unescaped when it was a quoted string.
    value: Vec<u8>,
}

/// Whether `\` before this byte in a quoted string escapes it: the characters a quoted string
/// cannot hold as they are (`"`, `\`) and those aiohttp escapes (white space, controls). Before
/// anything else a backslash is kept: browsers send `\` in file names unescaped.
fn escaped(b: u8) -> bool {
    b == b'"' || b == b'\\' || b <= b' ' || b == 0x7f
}

/// The `key=value` parameters after the first `;` of a header value (media type or
/// disposition type first). Lenient: a parameter without `=` is skipped, an unterminated quoted
/// string runs to the end of the value.
fn parameters(value: &[u8]) -> Vec<Parameter> {
    let mut found = Vec::new();
    let mut at = memchr::memchr(b';', value).map_or(value.len(), |p| p + 1);
    let len = value.len();
    while at < len {
        while at < len && matches!(value[at], b' ' | b'\t' | b';') {
            at += 1;
        }
        let key_start = at;
        while at < len && value[at] != b'=' && value[at] != b';' {
            at += 1;
        }
        let key = trim(&value[key_start..at]).to_ascii_lowercase();
        if at >= len || value[at] == b';' {
            continue;
        }
        at += 1;
        while at < len && matches!(value[at], b' ' | b'\t') {
            at += 1;
        }
        if at < len && value[at] == b'"' {
            at += 1;
            let mut unquoted = Vec::new();
            while at < len {
                match value[at] {
                    b'\\' if at + 1 < len && escaped(value[at + 1]) => {
                        unquoted.push(value[at + 1]);
                        at += 2;
                    }
                    b'"' => {
                        at += 1;
                        break;
                    }
                    b => {
                        unquoted.push(b);
                        at += 1;
                    }
                }
            }
            // Anything between the closing quote and the next `;` is ignored.
            while at < len && value[at] != b';' {
                at += 1;
            }
            found.push(Parameter {
                key,
                value: unquoted,
            });
        } else {
            let start = at;
            while at < len && value[at] != b';' {
                at += 1;
            }
            found.push(Parameter {
                key,
                value: trim(&value[start..at]).to_vec(),
            });
        }
    }
    found
}

/// A `Content-Disposition` parameter of a form part: `key*` (RFC 8187) if present, else
/// `key` with the Fetch standard's `%22`/`%0D`/`%0A` decoded. The first of each is taken.
fn form_parameter(params: &[Parameter], key: &[u8]) -> Option<String> {
    let extended = [key, b"*"].concat();
    if let Some(p) = params.iter().find(|p| p.key == extended) {
        return Some(extended_value(&p.value));
    }
    let p = params.iter().find(|p| p.key == key)?;
    let mut decoded = Vec::with_capacity(p.value.len());
    let mut at = 0;
    while at < p.value.len() {
        let escape = p.value.get(at..at + 3).and_then(|e| match e {
            [b'%', b'2', b'2'] => Some(b'"'),
            [b'%', b'0', b'd' | b'D'] => Some(b'\r'),
            [b'%', b'0', b'a' | b'A'] => Some(b'\n'),
            _ => None,
        });
        match escape {
            Some(b) => {
                decoded.push(b);
                at += 3;
            }
            None => {
                decoded.push(p.value[at]);
                at += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

/// An RFC 8187 `ext-value`: `charset'language'percent-encoded`. UTF-8 unless the charset is
/// ISO-8859-1; a value without the two quotes is taken as percent-encoded UTF-8.
fn extended_value(value: &[u8]) -> String {
    let mut pieces = value.splitn(3, |&b| b == b'\'');
    let (charset, encoded) = match (pieces.next(), pieces.next(), pieces.next()) {
        (Some(charset), Some(_language), Some(encoded)) => (charset, encoded),
        _ => (&b"utf-8"[..], value),
    };
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut at = 0;
    while at < encoded.len() {
        let hex = encoded
            .get(at + 1..at + 3)
            .filter(|_| encoded[at] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                bytes.push(b);
                at += 3;
            }
            None => {
                bytes.push(encoded[at]);
                at += 1;
            }
        }
    }
    if charset.eq_ignore_ascii_case(b"iso-8859-1") || charset.eq_ignore_ascii_case(b"latin1") {
        bytes.into_iter().map(char::from).collect()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Runs a parser over `chunks` and returns every event, failing on the first error (an
/// unfinished body fails with [`MultipartError::Incomplete`]). The entry point for fuzz
/// targets: it also checks, in debug builds, that the memory held stays within
/// [`Parser::max_buffered`].
pub fn parse<'a>(
    content_type: &str,
    limits: Limits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Event>, MultipartError> {
    let mut parser = Parser::from_content_type(content_type, limits)?;
    let mut events = Vec::new();
    for chunk in chunks {
        parser.feed(Bytes::copy_from_slice(chunk));
        while let Some(event) = parser.next_event()? {
            events.push(event);
        }
    }
    parser.end_input();
    while let Some(event) = parser.next_event()? {
        events.push(event);
    }
    Ok(events)
}

/// Reads a multipart body from a stream of chunks (`Body::into_data_stream`). Nothing after
/// the closing boundary is read.
pub struct Reader<S> {
    parser: Parser,
    body: S,
    /// The stream ended.
    body_ended: bool,
    /// Between a `PartStart` and its `PartEnd`.
    in_part: bool,
    /// An event [`Reader::chunk`] read past the end of a part (not expected).
    peeked: Option<Event>,
}

impl<S, E> Reader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
{
    pub fn new(parser: Parser, body: S) -> Reader<S> {
        Reader {
            parser,
            body,
            body_ended: false,
            in_part: false,
            peeked: None,
        }
    }

    /// The next event; `None` after [`Event::End`].
    pub async fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        if let Some(event) = self.peeked.take() {
            return Ok(Some(event));
        }
        loop {
            if let Some(event) = self.parser.next_event()? {
                match event {
                    Event::PartStart(_) => self.in_part = true,
                    Event::PartEnd | Event::End => self.in_part = false,
                    Event::Data(_) => {}
                }
                return Ok(Some(event));
            }
            if self.parser.is_done() || self.body_ended {
                return Ok(None);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.parser.feed(chunk),
                Some(Err(e)) => return Err(MultipartError::Read(e.to_string())),
                None => {
                    self.body_ended = true;
                    self.parser.end_input();
                }
            }
        }
    }

    /// The head of the next part, what is left of the current one skipped; `None` at the
    /// end of the body.
    pub async fn next_part(&mut self) -> Result<Option<PartHead>, MultipartError> {
        loop {
            match self.next_event().await? {
                Some(Event::PartStart(head)) => return Ok(Some(head)),
                Some(Event::End) | None => return Ok(None),
                Some(Event::Data(_) | Event::PartEnd) => {}
            }
        }
    }

    /// The next piece of the current part's body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        if !self.in_part {
            return Ok(None);
        }
        match self.next_event().await? {
            Some(Event::Data(data)) => Ok(Some(data)),
            Some(Event::PartEnd) | None => Ok(None),
            Some(other) => {
                self.peeked = Some(other);
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CT: &str = "multipart/form-data; boundary=XYZ";

    fn head(name: &str, filename: Option<&str>, content_type: Option<&str>) -> PartHead {
        PartHead {
            name: Some(name.to_owned()),
            filename: filename.map(str::to_owned),
            content_type: content_type.map(str::to_owned),
        }
    }

    /// (head, body) of each part, data joined; checks the order of the events.
    fn collect_parts(events: &[Event]) -> Vec<(PartHead, Vec<u8>)> {
        let mut parts: Vec<(PartHead, Vec<u8>)> = Vec::new();
        let mut open = false;
        let mut ended = false;
        for event in events {
            assert!(!ended, "an event after End: {events:?}");
            match event {
                Event::PartStart(head) => {
                    assert!(!open);
                    open = true;
                    parts.push((head.clone(), Vec::new()));
                }
                Event::Data(data) => {
                    assert!(open && !data.is_empty());
                    parts.last_mut().expect("a part").1.extend_from_slice(data);
                }
                Event::PartEnd => {
                    assert!(open);
                    open = false;
                }
                Event::End => {
                    assert!(!open);
                    ended = true;
                }
            }
        }
        parts
    }

    fn parse_one(
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<(PartHead, Vec<u8>)>, MultipartError> {
        let events = parse(content_type, Limits::default(), [body])?;
        assert_eq!(events.last(), Some(&Event::End));
        Ok(collect_parts(&events))
    }

    #[test]
    fn parses_what_clients_send() {
        // aiohttp (the SDK): metadata then file, a CRLF after the closing boundary.
        let body = b"--XYZ\r\n\
            Content-Type: application/json\r\n\
            Content-Disposition: form-data; name=\"metadata\"\r\n\r\n\
            {\"a\":1}\r\n\
            --XYZ\r\n\
            Content-Type: application/octet-stream\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n\r\n\
            \r\n--XY\r\n--\r\n\r\n\
            --XYZ--\r\n";
        assert_eq!(
            parse_one(CT, body),
            Ok(vec![
                (
                    head("metadata", None, Some("application/json")),
                    b"{\"a\":1}".to_vec()
                ),
                (
                    head("file", Some("file"), Some("application/octet-stream")),
                    b"\r\n--XY\r\n--\r\n".to_vec()
                ),
            ])
        );
        // A preamble, padding after boundaries, an epilogue, a quoted boundary, no headers.
        let body =
            b"This is the preamble.\r\n--a b\t \r\n\r\nno headers\r\n--a b--  \r\nepilogue --a b";
        assert_eq!(
            parse_one("Multipart/Form-Data ; charset=x; Boundary=\"a b\"", body),
            Ok(vec![(PartHead::default(), b"no headers".to_vec())])
        );
        // No parts at all; an empty part body; a lone LF ending header lines.
        assert_eq!(parse_one(CT, b"--XYZ--"), Ok(vec![]));
        assert_eq!(
            parse_one(
                CT,
                b"--XYZ\r\ncontent-disposition: form-data; name=e\n\n\r\n--XYZ--"
            ),
            Ok(vec![(head("e", None, None), Vec::new())])
        );
    }

    #[test]
    fn disposition_parameters() {
        let name_of = |disposition: &str| {
            let body = format!("--XYZ\r\nContent-Disposition: {disposition}\r\n\r\n\r\n--XYZ--");
            let parts = parse_one(CT, body.as_bytes()).expect("parse");
            (parts[0].0.name.clone(), parts[0].0.filename.clone())
        };
        let both = |n: &str, f: &str| (Some(n.to_owned()), Some(f.to_owned()));
        // Browsers and requests: `"`, CR, LF percent-encoded; backslashes and UTF-8 as is.
        assert_eq!(
            name_of(r#"form-data; name="a%22b%0D%0Ac"; filename="C:\dir\é %41.txt""#),
            both("a\"b\r\nc", "C:\\dir\\é %41.txt")
        );
        // aiohttp: backslash-escaped quoted strings, percent-encoded file names (kept),
        // RFC 8187 names.
        assert_eq!(
            name_of(r#"form-data; name="my\ \"field\\"; filename="my%20file.txt""#),
            both("my \"field\\", "my%20file.txt")
        );
        assert_eq!(
            name_of(
                "form-data; name*=utf-8''%E2%82%AC; filename*=ISO-8859-1'en'%E9; filename=\"x\""
            ),
            both("€", "é")
        );
        // Unquoted, out of order, odd spacing, `;` inside quotes, a key without value.
        assert_eq!(
            name_of("form-data;filename = a.txt ; flag; name= \"x;y\" "),
            both("x;y", "a.txt")
        );
        // Superstrings of `name` are other parameters; no name at all.
        assert_eq!(
            name_of("form-data; filename=f"),
            (None, Some("f".to_owned()))
        );
        assert_eq!(
            name_of("form-data; xname=a; name=b"),
            (Some("b".to_owned()), None)
        );
        // Unterminated quote: the rest of the line.
        assert_eq!(
            name_of("form-data; name=\"abc"),
            (Some("abc".to_owned()), None)
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc"),
            Ok("abc".to_owned())
        );
        assert_eq!(
            boundary("multipart/form-data;boundary=\"a\\\"c\""),
            Ok("a\"c".to_owned())
        );
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            boundary("multipart/form-data; boundary="),
            Err(MultipartError::BadBoundary)
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a \""),
            Err(MultipartError::BadBoundary)
        );
        assert_eq!(
            boundary("multipart/form-data; boundary=a\u{7}b"),
            Err(MultipartError::BadBoundary)
        );
        assert_eq!(
            boundary("multipart/mixed; boundary=a"),
            Err(MultipartError::NotFormData)
        );
        assert_eq!(
            boundary("multipart/form-dataX; boundary=a"),
            Err(MultipartError::NotFormData)
        );
        let longest = "b".repeat(MAX_BOUNDARY_BYTES);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={longest}")),
            Ok(longest.clone())
        );
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={longest}b")),
            Err(MultipartError::BoundaryTooLong { limit: 70 })
        );
    }

    #[test]
    fn malformed_bodies() {
        for body in [
            &b""[..],
            b"--XYZ",
            b"--XYZ\r\n",
            b"--XYZ\r\nContent-Disposition: form-data; name=a\r\n\r\nunfinished",
            b"--XYZ\r\n\r\ndata\r\n--XY",
            b"--XYZ\r\n\r\ndata\r\n--XYZ\r\n",
        ] {
            assert_eq!(
                parse(CT, Limits::default(), [body]),
                Err(MultipartError::Incomplete),
                "{body:?}"
            );
        }
        for (body, error) in [
            (
                &b"--XYZX\r\n\r\n\r\n--XYZ--"[..],
                MultipartError::MalformedBoundaryLine,
            ),
            (
                b"--XYZ\r\nno colon\r\n\r\n\r\n--XYZ--",
                MultipartError::MalformedHeader,
            ),
            (
                b"--XYZ\r\n: empty name\r\n\r\n\r\n--XYZ--",
                MultipartError::MalformedHeader,
            ),
            (
                b"--XYZ\r\nContent-Type: a\r\n folded\r\n\r\n\r\n--XYZ--",
                MultipartError::MalformedHeader,
            ),
        ] {
            assert_eq!(parse(CT, Limits::default(), [body]), Err(error), "{body:?}");
        }
        // An error is returned again, and nothing is held.
        let mut parser = Parser::new("XYZ", Limits::default()).expect("parser");
        parser.feed(Bytes::from_static(b"--XYZ\r\nbad\r\n"));
        assert_eq!(parser.next_event(), Err(MultipartError::MalformedHeader));
        parser.feed(Bytes::from_static(b"more"));
        assert_eq!(parser.next_event(), Err(MultipartError::MalformedHeader));
        assert_eq!(parser.buffered(), 0);
    }

    #[test]
    fn each_limit_gives_its_error() {
        let limits = Limits::default();
        let part = b"--XYZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n";
        let with_preamble = |n: usize| {
            let mut body = vec![b'p'; n];
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(part);
            body.extend_from_slice(b"--XYZ--");
            body
        };
        assert!(parse(CT, limits, [&with_preamble(MAX_PREAMBLE_BYTES)[..]]).is_ok());
        let too_long = with_preamble(MAX_PREAMBLE_BYTES + 1);
        for size in [1, 7, 4096, too_long.len()] {
            assert_eq!(
                parse(CT, limits, too_long.chunks(size)),
                Err(MultipartError::PreambleTooLarge {
                    limit: MAX_PREAMBLE_BYTES
                }),
                "chunks of {size}"
            );
        }
        // Header bytes: the boundary line's end, the header lines and the blank line count.
        let with_header = |n: usize| {
            let mut body = b"--XYZ\r\nX: ".to_vec();
            // CRLF, `X: `, the value, CRLF, the blank line: n bytes.
            body.extend(std::iter::repeat_n(b'h', n - 9));
            body.extend_from_slice(b"\r\n\r\nx\r\n--XYZ--");
            body
        };
        assert!(parse(CT, limits, [&with_header(MAX_HEADER_BYTES)[..]]).is_ok());
        assert_eq!(
            parse(CT, limits, with_header(MAX_HEADER_BYTES + 1).chunks(100)),
            Err(MultipartError::HeadersTooLarge {
                limit: MAX_HEADER_BYTES
            })
        );
        // A line that never ends fails once it passes the limit, not at the end of the body.
        let mut parser = Parser::new("XYZ", limits).expect("parser");
        parser.feed(Bytes::from_static(b"--XYZ\r\nX: "));
        assert_eq!(parser.next_event(), Ok(None));
        let error = (0..100).find_map(|_| {
            parser.feed(Bytes::from(vec![b'h'; 1000]));
            parser.next_event().err()
        });
        assert_eq!(
            error,
            Some(MultipartError::HeadersTooLarge {
                limit: MAX_HEADER_BYTES
            })
        );
        // Padding after a boundary counts too.
        let mut body = b"--XYZ".to_vec();
        body.extend(vec![b' '; MAX_HEADER_BYTES]);
        assert_eq!(
            parse(CT, limits, [&body[..]]),
            Err(MultipartError::HeadersTooLarge {
                limit: MAX_HEADER_BYTES
            })
        );
        // Header lines.
        let with_lines = |n: usize| {
            let mut body = b"--XYZ\r\n".to_vec();
            for _ in 0..n {
                body.extend_from_slice(b"X-A: b\r\n");
            }
            body.extend_from_slice(b"\r\nx\r\n--XYZ--");
            body
        };
        assert!(parse(CT, limits, [&with_lines(MAX_HEADER_LINES)[..]]).is_ok());
        assert_eq!(
            parse(CT, limits, [&with_lines(MAX_HEADER_LINES + 1)[..]]),
            Err(MultipartError::TooManyHeaderLines {
                limit: MAX_HEADER_LINES
            })
        );
        // Parts.
        let with_parts = |n: usize| {
            let mut body = part.repeat(n);
            body.extend_from_slice(b"--XYZ--");
            body
        };
        let events = parse(CT, limits, [&with_parts(MAX_PARTS)[..]]).expect("parse");
        assert_eq!(collect_parts(&events).len(), MAX_PARTS);
        assert_eq!(
            parse(CT, limits, [&with_parts(MAX_PARTS + 1)[..]]),
            Err(MultipartError::TooManyParts { limit: MAX_PARTS })
        );
        // Boundary.
        let long = format!("multipart/form-data; boundary={}", "b".repeat(71));
        assert_eq!(
            Parser::from_content_type(&long, limits).err(),
            Some(MultipartError::BoundaryTooLong {
                limit: MAX_BOUNDARY_BYTES
            })
        );
        // The statuses.
        assert_eq!(
            MultipartError::TooManyParts { limit: 1 }.status().as_u16(),
            413
        );
        assert_eq!(MultipartError::Incomplete.status().as_u16(), 400);
    }

    #[test]
    fn big_bodies_are_streamed_not_held() {
        let mut parser = Parser::new("XYZ", Limits::default()).expect("parser");
        parser.feed(Bytes::from_static(
            b"--XYZ\r\nContent-Disposition: form-data; name=file\r\n\r\n",
        ));
        assert!(matches!(parser.next_event(), Ok(Some(Event::PartStart(_)))));
        let chunk = Bytes::from(vec![b'\r'; 64 * 1024]);
        let mut seen = 0;
        for _ in 0..64 {
            parser.feed(chunk.clone());
            while let Some(event) = parser.next_event().expect("event") {
                let Event::Data(data) = event else {
                    panic!("{event:?}")
                };
                seen += data.len();
            }
            assert!(parser.buffered() <= 1, "{}", parser.buffered());
        }
        // Every byte but the last (a CR that may begin the boundary) was handed out.
        assert_eq!(seen, 64 * 64 * 1024 - 1);
    }

    #[tokio::test]
    async fn reader_over_a_stream() {
        let body = b"--XYZ\r\nContent-Disposition: form-data; name=skip\r\n\r\nskipped\r\n\
            --XYZ\r\nContent-Disposition: form-data; name=file; filename=f\r\n\r\nfile bytes\r\n--XYZ--\r\n";
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(5)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut reader = Reader::new(
            Parser::new("XYZ", Limits::default()).expect("parser"),
            futures::stream::iter(chunks),
        );
        assert_eq!(reader.next_part().await, Ok(Some(head("skip", None, None))));
        assert_eq!(
            reader.next_part().await,
            Ok(Some(head("file", Some("f"), None)))
        );
        let mut data = Vec::new();
        while let Some(chunk) = reader.chunk().await.expect("chunk") {
            data.extend_from_slice(&chunk);
        }
        assert_eq!(data, b"file bytes");
        assert_eq!(reader.chunk().await, Ok(None));
        assert_eq!(reader.next_part().await, Ok(None));
        // A body cut short, and a failing stream.
        let cut: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::copy_from_slice(&body[..60]))];
        let mut reader = Reader::new(
            Parser::new("XYZ", Limits::default()).expect("parser"),
            futures::stream::iter(cut),
        );
        assert_eq!(reader.next_part().await, Ok(Some(head("skip", None, None))));
        assert_eq!(reader.next_part().await, Err(MultipartError::Incomplete));
        let failing: Vec<Result<Bytes, std::io::Error>> = vec![Err(std::io::Error::other("reset"))];
        let mut reader = Reader::new(
            Parser::new("XYZ", Limits::default()).expect("parser"),
            futures::stream::iter(failing),
        );
        assert_eq!(
            reader.next_part().await,
            Err(MultipartError::Read("reset".to_owned()))
        );
    }

    // ---- property tests ----

    /// How a parameter value is written.
    #[derive(Debug, Clone, Copy)]
    enum Style {
        /// aiohttp's quoted string: `\` before `"`, `\`, space and tab.
        Backslash,
        /// Browsers and requests: `%22`, `%0D`, `%0A`; everything else as is.
        Percent,
        /// RFC 8187: `key*=utf-8''...`.
        Extended,
        /// An unquoted token.
        Token,
    }

    fn write_parameter(out: &mut String, key: &str, value: &str, style: Style) {
        let percent_ambiguous = ["%22", "%0d", "%0a"]
            .iter()
            .any(|e| value.to_ascii_lowercase().contains(e));
        // Only the extended form can carry a literal `%22`, `%0D` or `%0A`.
        let style = match style {
            _ if percent_ambiguous => Style::Extended,
            Style::Backslash if value.is_ascii() && !value.contains(['\r', '\n']) => style,
            Style::Percent if !value.contains('\\') => style,
            Style::Token if !value.is_empty() && value.bytes().all(is_token) => style,
            _ => Style::Extended,
        };
        match style {
            Style::Backslash => {
                out.push_str(&format!("; {key}=\""));
                for c in value.chars() {
                    if matches!(c, '"' | '\\' | ' ' | '\t') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            Style::Percent => {
                let v = value
                    .replace('"', "%22")
                    .replace('\r', "%0D")
                    .replace('\n', "%0A");
                out.push_str(&format!("; {key}=\"{v}\""));
            }
            Style::Token => out.push_str(&format!("; {key}={value}")),
            Style::Extended => {
                out.push_str(&format!("; {key}*=UTF-8''"));
                for b in value.bytes() {
                    if b.is_ascii_alphanumeric() {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
    }

    #[derive(Debug, Clone)]
    struct TestPart {
        name: Option<(String, Style)>,
        filename: Option<(String, Style)>,
        content_type: Option<String>,
        extra_header: bool,
        padding: String,
        /// Pieces of the body: random bytes or a proper prefix of the delimiter.
        body: Vec<Result<Vec<u8>, usize>>,
    }

    fn style() -> impl Strategy<Value = Style> {
        prop_oneof![
            Just(Style::Backslash),
            Just(Style::Percent),
            Just(Style::Extended),
            Just(Style::Token)
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "Z", "0", "file", "metadata", "\"", "\\", " ", "\t", "é", "€", "%", "%22", ";",
            "=", "'", "\r\n", "*", ".",
        ]);
        prop::collection::vec(pieces, 0..8).prop_map(|p| p.concat())
    }

    fn test_part() -> impl Strategy<Value = TestPart> {
        let body_piece = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300).prop_map(Ok),
            prop::collection::vec(prop::sample::select(b"\r\n- X".to_vec()), 0..20).prop_map(Ok),
            (0usize..200).prop_map(Err),
        ];
        (
            prop::option::of((text(), style())),
            prop::option::of((text(), style())),
            prop::option::of("[a-z]{1,8}/[a-z0-9.+-]{1,10}"),
            any::<bool>(),
            "[ \t]{0,3}",
            prop::collection::vec(body_piece, 0..5),
        )
            .prop_map(
                |(name, filename, content_type, extra_header, padding, body)| TestPart {
                    name,
                    filename,
                    content_type,
                    extra_header,
                    padding,
                    body,
                },
            )
    }

    /// The body and the parts it should parse back to.
    fn render(
        boundary: &str,
        preamble: &[u8],
        parts: &[TestPart],
        epilogue: &[u8],
    ) -> (Vec<u8>, Vec<(PartHead, Vec<u8>)>) {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let mut out = preamble.to_vec();
        if !preamble.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        let mut expected = Vec::new();
        for part in parts {
            out.extend_from_slice(format!("--{boundary}{}\r\n", part.padding).as_bytes());
            let mut disposition = String::from("form-data");
            if let Some((name, style)) = &part.name {
                write_parameter(&mut disposition, "name", name, *style);
            }
            if let Some((filename, style)) = &part.filename {
                write_parameter(&mut disposition, "filename", filename, *style);
            }
            if part.name.is_some() || part.filename.is_some() {
                out.extend_from_slice(format!("Content-Disposition: {disposition}\r\n").as_bytes());
            }
            if part.extra_header {
                out.extend_from_slice(b"X-Unknown:  ignored; name=\"no\"\r\n");
            }
            if let Some(ct) = &part.content_type {
                out.extend_from_slice(format!("content-type: {ct}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            let mut body = Vec::new();
            for piece in &part.body {
                match piece {
                    Ok(bytes) => body.extend_from_slice(bytes),
                    Err(n) => body.extend_from_slice(&delimiter[..n % delimiter.len()]),
                }
            }
            out.extend_from_slice(&body);
            out.extend_from_slice(b"\r\n");
            let head = PartHead {
                name: part.name.as_ref().map(|(n, _)| n.clone()),
                filename: part.filename.as_ref().map(|(f, _)| f.clone()),
                content_type: part.content_type.clone(),
            };
            expected.push((head, body));
        }
        out.extend_from_slice(format!("--{boundary}--").as_bytes());
        out.extend_from_slice(epilogue);
        (out, expected)
    }

    fn split(bytes: &[u8], sizes: &[usize]) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        let mut at = 0;
        let mut sizes = sizes.iter().cycle();
        while at < bytes.len() {
            let n = sizes
                .next()
                .copied()
                .unwrap_or(bytes.len())
                .clamp(1, bytes.len() - at);
            chunks.push(Bytes::copy_from_slice(&bytes[at..at + n]));
            at += n;
        }
        chunks
    }

    /// Feeds the chunks, checking the bound after each; the events, or the first error.
    fn run(parser: &mut Parser, chunks: Vec<Bytes>) -> Result<Vec<Event>, MultipartError> {
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            loop {
                match parser.next_event() {
                    Ok(Some(event)) => events.push(event),
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(parser.buffered(), 0);
                        return Err(e);
                    }
                }
            }
            assert!(
                parser.buffered() <= parser.max_buffered(),
                "{} > {}",
                parser.buffered(),
                parser.max_buffered()
            );
        }
        parser.end_input();
        while let Some(event) = parser.next_event()? {
            events.push(event);
        }
        Ok(events)
    }

    /// Found by the fuzz target `multipart`: a lone LF ending a boundary line, arriving as
    /// the last byte of a chunk, was taken as the start of the next line.
    #[test]
    fn a_lone_lf_after_a_boundary_ends_its_line_at_a_chunk_end() {
        let body = b"--XYZ\ncontent-disposition: form-data; name=e\n\nhi\r\n--XYZ--";
        for sizes in [&[body.len()][..], &[6], &[5, 1], &[3]] {
            let mut parser = Parser::from_content_type(CT, Limits::default()).expect("parser");
            let parts = run(&mut parser, split(body, sizes)).map(|e| collect_parts(&e));
            assert_eq!(
                parts,
                Ok(vec![(head("e", None, None), b"hi".to_vec())]),
                "{sizes:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn bodies_parse_back_to_their_parts(
            boundary in "[0-9A-Za-z'()+_,./:=?-]{1,69}[0-9A-Za-z]",
            preamble in prop::collection::vec(any::<u8>(), 0..100),
            parts in prop::collection::vec(test_part(), 0..6),
            epilogue in prop::collection::vec(any::<u8>(), 0..50),
            sizes in prop::collection::vec(1usize..400, 1..8),
        ) {
            let (body, expected) = render(&boundary, &preamble, &parts, &epilogue);
            // A boundary the random bytes happen to contain is the sender's mistake.
            let delimiter = format!("\r\n--{boundary}").into_bytes();
            let mut with_crlf = b"\r\n".to_vec();
            with_crlf.extend_from_slice(&preamble);
            prop_assume!(memmem::find(&with_crlf, &delimiter).is_none());
            prop_assume!(expected.iter().all(|(_, b)| memmem::find(b, &delimiter).is_none()));
            let mut parser = Parser::new(&boundary, Limits::default()).expect("parser");
            let events = run(&mut parser, split(&body, &sizes)).expect("parse");
            prop_assert_eq!(events.last(), Some(&Event::End));
            prop_assert_eq!(collect_parts(&events), expected);
        }

        #[test]
        fn random_input_never_panics_nor_holds_more_than_the_bound(
            boundary in "[a-zA-Z0-9 -]{0,70}[a-z]",
            pieces in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..200),
                    prop::collection::vec(prop::sample::select(b"\r\n-:; \"=\\B".to_vec()), 0..40),
                    Just(b"\r\n--B\r\n".to_vec()),
                    Just(b"Content-Disposition: form-data; name=\"file\"; filename*=utf-8''%FF\r\n".to_vec()),
                    Just(b"\r\n\r\n".to_vec()),
                    Just(b"--B--".to_vec()),
                ],
                0..30,
            ),
            sizes in prop::collection::vec(1usize..300, 1..8),
            small in any::<bool>(),
        ) {
            let boundary = if boundary.len() > 70 { "B".to_owned() } else { boundary };
            let limits = if small {
                Limits { max_preamble_bytes: 10, max_header_bytes: 40, max_header_lines: 2, max_parts: 2 }
            } else {
                Limits::default()
            };
            let body: Vec<u8> = pieces.concat();
            let body = String::from_utf8_lossy(&body).replace('B', &boundary).into_bytes();
            // Always a valid boundary (1 to 70 characters, the last not a space): a parser that
            // refused it would fail the test rather than skip it.
            let mut parser = Parser::new(&boundary, limits).expect("a valid boundary");
            if let Ok(events) = run(&mut parser, split(&body, &sizes)) {
                // Well ordered, closed.
                prop_assert_eq!(events.last(), Some(&Event::End));
                prop_assert!(collect_parts(&events).len() <= limits.max_parts);
            }
            // Whole or in pieces, the same verdict.
            let mut whole = Parser::new(&boundary, limits).expect("parser");
            let once = run(&mut whole, vec![Bytes::from(body.clone())]).map(|e| collect_parts(&e));
            let mut pieces = Parser::new(&boundary, limits).expect("parser");
            let in_pieces = run(&mut pieces, split(&body, &sizes)).map(|e| collect_parts(&e));
            prop_assert_eq!(once, in_pieces);
        }
    }
}
