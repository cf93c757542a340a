//! Reads of the security grants (`authorizations/received`) and of the kept per-address
//! facets (`addresses/{address}/post_types`, `channels`), for both backends.

use crate::conn::{Connection, Value, strings};
use crate::{Grant, Result};

/// The `security` aggregates naming `grantee` in their authorizations, by owner: the
/// `security_grants` rows of `grantee` (its primary key's range), each joined to its
/// aggregate and handed to `visit` as it is read, so that memory holds one at a time. An
/// error from `visit` stops the read and is returned.
pub(crate) fn each_grant_to(
    c: &mut dyn Connection,
    grantee: &str,
    visit: &mut dyn FnMut(Grant) -> Result<()>,
) -> Result<()> {
    c.each_row(
        "SELECT g.owner, a.content FROM security_grants g
         JOIN aggregates a ON a.owner = g.owner AND a.key = 'security'
         WHERE g.grantee = $1 ORDER BY g.owner",
        &[Value::Text(grantee)],
        &mut |r| {
            visit(Grant {
                owner: r.text(0)?,
                content: r.text(1)?,
            })
        },
    )
}

/// The values of a per-address facet list of `list_totals` (`sender_channel`,
/// `sender_post_type`) that `address` has messages in: the range of its rows whose value
/// starts with the address and the separator, sorted bytewise on both backends.
pub(crate) fn facets(c: &mut dyn Connection, list: &str, address: &str) -> Result<Vec<String>> {
    let (from, to) = crate::totals::facet_range(address);
    let values = strings(
        c,
        "SELECT value FROM list_totals WHERE list = $1 AND value >= $2 AND value < $3 AND n > 0
         ORDER BY value",
        &[Value::Text(list), Value::Text(&from), Value::Text(&to)],
    )?;
    Ok(values
        .into_iter()
        .filter_map(|v| crate::totals::split_facet(&v, address).map(str::to_owned))
        .collect())
}
