//! Protocol limits that every node applies the same way.

/// Largest inline `item_content`, counted in Unicode code points as the reference does.
pub const MAX_INLINE_CHARS: usize = 200_000;

/// The envelope `time` (seconds) must lie in `[MIN_ENVELOPE_TIME, END_ENVELOPE_TIME)`: the
/// reference reads it as a Python UTC `datetime`, whose years run from 1 to 9999, and refuses a
/// message outside (422). It has no tighter bound: a time in the past, even before 1970, is
/// accepted, and so is one in the future up to the year 9999.
pub const MIN_ENVELOPE_TIME: f64 = -62_135_596_800.0;
/// See [`MIN_ENVELOPE_TIME`]: 10000-01-01T00:00:00Z.
pub const END_ENVELOPE_TIME: f64 = 253_402_300_800.0;

/// Largest valid content `time` (seconds); the reference bounds it to fit an i64 of milliseconds.
pub const MAX_CONTENT_TIME: f64 = 9_223_372_036.0;

/// Most hashes or aggregate keys a FORGET may name, each.
pub const MAX_FORGET_TARGETS: usize = 1000;

/// Most characters of a FORGET's `reason`.
pub const MAX_FORGET_REASON_CHARS: usize = 1000;

/// Most tags a message carries (`content.content.tags` of POST and AGGREGATE, `content.tags`
/// of STORE, `content.metadata.tags` of programs and instances).
pub const MAX_TAGS: usize = 16;
/// A tag has 1 to `MAX_TAG_CHARS` characters (Unicode code points).
pub const MAX_TAG_CHARS: usize = 256;

/// Longest `channel` of a POST's message reference (`ref` as an object, the reference's
/// `ChainRef`), in characters.
pub const MAX_CHAIN_REF_CHANNEL_CHARS: usize = 128;
