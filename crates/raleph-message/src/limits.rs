//! Protocol limits that every node applies the same way.

/// Largest inline `item_content`, counted in Unicode code points as the reference does.
pub const MAX_INLINE_CHARS: usize = 200_000;

/// Largest valid content `time` (seconds); the reference bounds it to fit an i64 of milliseconds.
pub const MAX_CONTENT_TIME: f64 = 9_223_372_036.0;

/// Most hashes or aggregate keys a FORGET may name, each.
pub const MAX_FORGET_TARGETS: usize = 1000;
