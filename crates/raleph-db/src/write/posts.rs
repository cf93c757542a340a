//! POST: a post row per version, the latest amend of each original, and the kept totals of
//! original posts per type and channel.

use super::{Session, Value, first, hashes};
use crate::query::rows::opt_parsed;
use crate::{ItemHash, NewPost, PostFacts, Result};

pub(crate) fn insert(s: &mut dyn Session, p: &NewPost) -> Result<()> {
    s.execute(
        "INSERT INTO posts (item_hash, owner, type, ref, amends, channel, content, creation_time,
             last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
             CASE WHEN CAST($5 AS TEXT) IS NULL THEN CAST($8 AS DOUBLE PRECISION) END)",
        &[
            (&p.item_hash).into(),
            (&p.owner).into(),
            (&p.post_type).into(),
            (&p.reference).into(),
            (&p.amends).into(),
            (&p.channel).into(),
            (&p.content).into(),
            p.creation_time.into(),
        ],
    )?;
    if p.amends.is_none() {
        s.totals().count("post_type", &p.post_type, 1);
        if let Some(channel) = &p.channel {
            s.totals().count("post_channel", channel, 1);
        }
        s.settle_if_autocommit()?;
    }
    Ok(())
}

pub(crate) fn facts(s: &mut dyn Session, item_hash: &str) -> Result<Option<PostFacts>> {
    first(
        s,
        "SELECT owner, type, amends FROM posts WHERE item_hash = $1",
        &[Value::Text(item_hash)],
        |r| {
            Ok(PostFacts {
                owner: r.text(0)?,
                post_type: r.text(1)?,
                amends: opt_parsed(r, 2)?,
            })
        },
    )
}

/// Points the original at its amend with the greatest content time (ties: the greatest item
/// hash), and its `last_updated` at that amend's time (its own without amends).
pub(crate) fn refresh_latest_amend(s: &mut dyn Session, original: &str) -> Result<()> {
    s.execute(
        "UPDATE posts SET latest_amend = (
             SELECT a.item_hash FROM posts a WHERE a.amends = $1
             ORDER BY a.creation_time DESC, a.item_hash DESC LIMIT 1)
         WHERE item_hash = $1",
        &[Value::Text(original)],
    )?;
    s.execute(
        "UPDATE posts SET last_updated = coalesce(
             (SELECT a.creation_time FROM posts a WHERE a.item_hash = posts.latest_amend),
             creation_time)
         WHERE item_hash = $1",
        &[Value::Text(original)],
    )
    .map(drop)
}

/// The amends of an original, oldest first.
pub(crate) fn amends_of(s: &mut dyn Session, original: &str) -> Result<Vec<ItemHash>> {
    hashes(
        s,
        "SELECT item_hash FROM posts WHERE amends = $1 ORDER BY creation_time, item_hash",
        &[Value::Text(original)],
    )
}
