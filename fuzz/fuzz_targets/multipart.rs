//! The multipart upload parser (`raleph_api::multipart`), as `POST /api/v0/storage/add_file`
//! and `add_json` feed it. Input: a selector byte, the `Content-Type` up to the first newline,
//! then the body. The selector chooses how the body is cut into chunks (one byte to all at
//! once) and whether the limits are the defaults or tiny ones. Checked: the memory held after
//! every event stays within `max_buffered`; events come in order (`PartStart`, non-empty
//! `Data`, `PartEnd`, ..., `End`), at most `max_parts` parts; and the outcome does not depend
//! on how the body was cut: the same parts with the same bytes, or the same error.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use raleph_api::multipart::{Event, Limits, MultipartError, Parser, PartHead};

/// A part as a whole: its head and its body, however it arrived.
#[derive(Debug, PartialEq, Eq)]
struct Part {
    head: PartHead,
    body: Vec<u8>,
}

/// Feeds `body` in chunks of `chunk` bytes, checking the parser's promises as it goes.
fn run(
    content_type: &str,
    body: &[u8],
    chunk: usize,
    limits: Limits,
) -> Result<(Vec<Part>, bool), MultipartError> {
    let mut parser = Parser::from_content_type(content_type, limits)?;
    let mut parts: Vec<Part> = Vec::new();
    let mut in_part = false;
    let mut ended = false;
    let mut on_event = |event: Event| {
        assert!(!ended, "an event after End: {event:?}");
        match event {
            Event::PartStart(head) => {
                assert!(!in_part, "PartStart inside a part");
                in_part = true;
                parts.push(Part {
                    head,
                    body: Vec::new(),
                });
                assert!(parts.len() <= limits.max_parts, "more parts than max_parts");
            }
            Event::Data(data) => {
                assert!(in_part, "Data outside a part");
                assert!(!data.is_empty(), "empty Data");
                parts
                    .last_mut()
                    .expect("a part")
                    .body
                    .extend_from_slice(&data);
            }
            Event::PartEnd => {
                assert!(in_part, "PartEnd outside a part");
                in_part = false;
            }
            Event::End => {
                assert!(!in_part, "End inside a part");
                ended = true;
            }
        }
    };
    for piece in body.chunks(chunk.max(1)) {
        parser.feed(Bytes::copy_from_slice(piece));
        while let Some(event) = parser.next_event()? {
            on_event(event);
        }
        assert!(parser.buffered() <= parser.max_buffered(), "{parser:?}");
    }
    parser.end_input();
    while let Some(event) = parser.next_event()? {
        on_event(event);
    }
    assert!(parser.buffered() <= parser.max_buffered(), "{parser:?}");
    assert_eq!(ended, parser.is_done());
    let total: usize = parts.iter().map(|p| p.body.len()).sum();
    assert!(total <= body.len(), "more body bytes than were sent");
    Ok((parts, ended))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&rest[..i]), &rest[i + 1..]),
        None => return,
    };
    let limits = if selector & 0x80 == 0 {
        Limits::default()
    } else {
        Limits {
            max_preamble_bytes: 4,
            max_header_bytes: 64,
            max_header_lines: 2,
            max_parts: 2,
        }
    };
    let chunk = match selector & 0x7f {
        0 => body.len(),
        n => usize::from(n),
    };
    let whole = run(&content_type, body, body.len(), limits);
    let cut = run(&content_type, body, chunk, limits);
    assert_eq!(cut, whole, "the outcome depends on how the body was cut");
    // The one-call entry point agrees.
    let events = raleph_api::multipart::parse(&content_type, limits, body.chunks(chunk.max(1)));
    assert_eq!(events.is_ok(), whole.is_ok());
});
