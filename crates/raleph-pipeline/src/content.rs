//! Reading a message's content when no checker prepared it: inline, or a stored file within
//! `pipeline.max_content_bytes` (checked before anything is read).

use raleph_db::{ErrorCode, Failure, FileRecord};
use raleph_message::{Content, Envelope};

use crate::context::Context;

/// The stored content of a non-inline message, and its file, if the node holds it and it is
/// no larger than `pipeline.max_content_bytes`: the size is checked before anything is read.
pub(crate) fn stored_content(
    ctx: &Context<'_>,
    env: &Envelope,
) -> Result<(Vec<u8>, FileRecord), Failure> {
    let hash = env.item_hash.as_str();
    let unavailable = |e: std::io::Error| {
        Failure::new(
            ErrorCode::ContentUnavailable,
            format!("reading the content failed: {e}"),
        )
    };
    let Some(file) = ctx.content.file(hash).map_err(unavailable)? else {
        return Err(Failure::new(
            ErrorCode::ContentUnavailable,
            "the content is not available yet",
        ));
    };
    let limit = ctx.config.max_content_bytes;
    if file.size > limit {
        return Err(Failure::new(
            ErrorCode::InvalidFormat,
            format!(
                "the content is {} bytes, over the limit of {limit} (pipeline.max_content_bytes)",
                file.size
            ),
        ));
    }
    match ctx.content.load(env.item_type, hash).map_err(unavailable)? {
        Some(bytes) => Ok((bytes, file)),
        None => Err(Failure::new(
            ErrorCode::ContentUnavailable,
            "the content is not available yet",
        )),
    }
}

/// The parsed content of a message, when it is inline or already stored here (and within
/// `pipeline.max_content_bytes`).
pub(crate) fn content_of(ctx: &Context<'_>, envelope: &Envelope) -> Option<Content> {
    let loaded;
    let raw = match &envelope.item_content {
        Some(inline) => inline.as_bytes(),
        None => {
            loaded = stored_content(ctx, envelope).ok()?.0;
            &loaded
        }
    };
    Content::of_message(envelope, raw).ok()
}
