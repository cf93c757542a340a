//! Query strings of the list endpoints: `Params` and what the handlers build from it
//! (`message_query`, `content_format`, pages, cursors, date ranges). The input is the raw
//! query string, optionally preceded by a path page (`/messages/page/{page}`) and a newline.
//! Whatever parses is within bounds (the default `ApiConfig` limits): values counted, page
//! sizes from 1 to `max_page_size`, offsets an SQL OFFSET takes, dates positive, finite and
//! ordered, a cursor that round-trips, statuses never empty and skeleton statuses alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use raleph_api::ApiConfig;
use raleph_api::fuzzing::{Params, content_format, decode_cursor, encode_cursor, message_query};
use raleph_db::MessageStatus;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path_page, query) = match text.split_once('\n') {
        Some((page, query)) => (Some(page), query),
        None => (None, text),
    };
    let limits = ApiConfig::default();
    let Ok(params) = Params::parse(Some(query), &limits) else {
        return;
    };

    let _ = params.get(&["hashes"]);
    assert!(params.list(&["addresses", "tags"]).len() <= limits.max_query_values);
    let _ = params.bool(&["sync"]);
    let _ = params.sort_order();
    let _ = params.int(&["pagination"], 20);
    // A lax float as the reference reads it ("inf" too); the date bounds then refuse it.
    if let Ok(Some(f)) = params.float(&["startDate"]) {
        assert!(!f.is_nan() && f >= 0.0);
    }
    if let Ok((start, end)) = params.date_range() {
        for t in [start, end].into_iter().flatten() {
            assert!(t.is_finite() && t > 0.0, "date bound {t}");
        }
        if let (Some(s), Some(e)) = (start, end) {
            assert!(s <= e);
        }
    }
    if let Ok(per_page) = params.page_size(20) {
        assert!((1..=limits.max_page_size).contains(&per_page));
    }
    if let Ok((page, per_page)) = params.page(path_page, 20) {
        assert!(page >= 1);
        assert!((1..=limits.max_page_size).contains(&per_page));
        // The list handler's offset, which an SQL OFFSET (a signed 64-bit integer) takes.
        let offset = (page - 1)
            .checked_mul(per_page)
            .expect("the offset overflows");
        assert!(i64::try_from(offset).is_ok(), "offset {offset}");
    }
    if let Ok(Some(Some(cursor))) = params.cursor() {
        let text = encode_cursor(&cursor);
        let again = decode_cursor(&text)
            .map_err(|_| ())
            .expect("an encoded cursor decodes");
        assert_eq!(again, cursor);
    }
    if let Ok(q) = message_query(&params) {
        assert!(!q.statuses.is_empty());
        let skeleton = q
            .statuses
            .iter()
            .any(|s| matches!(s, MessageStatus::Forgotten | MessageStatus::Removed));
        assert!(!skeleton || q.statuses.len() == 1);
        for t in [q.start_date, q.end_date].into_iter().flatten() {
            assert!(t.is_finite() && t > 0.0);
        }
        for t in &q.message_types {
            assert!(t.parse::<raleph_message::MessageType>().is_ok());
        }
    }
    let _ = content_format(&params);
});
