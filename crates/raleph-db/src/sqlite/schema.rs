//! Versioned schema migrations, applied in order at start. `PRAGMA user_version` holds the
//! number of migrations applied.

use rusqlite::Connection;

use super::backend;
use crate::{Result, StoreError};

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: messages, statuses, the pending queue, posts, aggregates, pins, programs.
    r#"
    CREATE TABLE pending_messages (
        id INTEGER PRIMARY KEY,
        item_hash TEXT NOT NULL,
        sender TEXT NOT NULL,
        signature TEXT NOT NULL DEFAULT '',
        message TEXT NOT NULL,
        reception_time REAL NOT NULL,
        origin TEXT NOT NULL,
        signature_verified INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL NOT NULL,
        last_error_code INTEGER,
        last_error TEXT,
        UNIQUE (sender, item_hash, signature)
    );
    CREATE INDEX pending_by_next_attempt ON pending_messages (next_attempt);
    CREATE INDEX pending_by_hash ON pending_messages (item_hash);

    CREATE TABLE message_status (
        item_hash TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        reception_time REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX status_by_status ON message_status (status);

    CREATE TABLE messages (
        item_hash TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        chain TEXT NOT NULL,
        sender TEXT NOT NULL,
        signature TEXT,
        item_type TEXT NOT NULL,
        item_content TEXT,
        content TEXT NOT NULL,
        channel TEXT,
        time REAL NOT NULL,
        size INTEGER NOT NULL,
        owner TEXT NOT NULL,
        content_type TEXT,
        content_ref TEXT,
        content_key TEXT,
        content_item_hash TEXT,
        payment_type TEXT,
        reception_time REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'processed'
    );
    CREATE INDEX messages_by_time ON messages (time, item_hash);
    CREATE INDEX messages_by_sender ON messages (sender, time);
    CREATE INDEX messages_by_owner ON messages (owner, time);
    CREATE INDEX messages_by_channel ON messages (channel, time);
    CREATE INDEX messages_by_type ON messages (type, time);
    CREATE INDEX messages_by_chain ON messages (chain, time);
    CREATE INDEX messages_by_content_type ON messages (content_type, time) WHERE content_type IS NOT NULL;
    CREATE INDEX messages_by_content_ref ON messages (content_ref, time) WHERE content_ref IS NOT NULL;
    CREATE INDEX messages_by_content_key ON messages (content_key, time) WHERE content_key IS NOT NULL;
    CREATE INDEX messages_by_content_item_hash ON messages (content_item_hash) WHERE content_item_hash IS NOT NULL;

    CREATE TABLE message_tags (
        tag TEXT NOT NULL,
        item_hash TEXT NOT NULL,
        PRIMARY KEY (tag, item_hash)
    ) WITHOUT ROWID;
    CREATE INDEX message_tags_by_hash ON message_tags (item_hash);

    CREATE TABLE rejected_messages (
        item_hash TEXT PRIMARY KEY,
        message TEXT NOT NULL,
        error_code INTEGER NOT NULL,
        details TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE forgotten_messages (
        item_hash TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        chain TEXT NOT NULL,
        sender TEXT NOT NULL,
        signature TEXT,
        item_type TEXT NOT NULL,
        time REAL NOT NULL,
        channel TEXT,
        owner TEXT NOT NULL,
        payment_type TEXT,
        size INTEGER NOT NULL,
        forgotten_by TEXT NOT NULL,
        forgotten_at REAL NOT NULL,
        reception_time REAL NOT NULL
    );
    CREATE INDEX forgotten_by_time ON forgotten_messages (forgotten_at);

    CREATE TABLE posts (
        item_hash TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        type TEXT NOT NULL,
        ref TEXT,
        amends TEXT,
        channel TEXT,
        content TEXT,
        creation_time REAL NOT NULL,
        latest_amend TEXT
    );
    CREATE INDEX posts_originals_by_time ON posts (creation_time) WHERE amends IS NULL;
    CREATE INDEX posts_by_owner ON posts (owner, creation_time) WHERE amends IS NULL;
    CREATE INDEX posts_by_amends ON posts (amends, creation_time) WHERE amends IS NOT NULL;

    CREATE TABLE aggregate_elements (
        item_hash TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        content TEXT NOT NULL,
        creation_time REAL NOT NULL
    );
    CREATE INDEX aggregate_elements_by_key ON aggregate_elements (owner, key, creation_time);

    CREATE TABLE aggregates (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        content TEXT NOT NULL,
        creation_time REAL NOT NULL,
        last_update_time REAL NOT NULL,
        original_item_hash TEXT NOT NULL,
        last_revision_hash TEXT NOT NULL,
        PRIMARY KEY (owner, key)
    ) WITHOUT ROWID;
    CREATE INDEX aggregates_by_update ON aggregates (last_update_time);

    CREATE TABLE file_pins (
        message_hash TEXT PRIMARY KEY,
        file_hash TEXT NOT NULL,
        owner TEXT NOT NULL,
        tag TEXT NOT NULL,
        created REAL NOT NULL,
        is_update INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX file_pins_by_file ON file_pins (file_hash);
    CREATE INDEX file_pins_by_tag ON file_pins (tag, created);

    CREATE TABLE file_tags (
        tag TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        file_hash TEXT NOT NULL,
        message_hash TEXT NOT NULL,
        last_updated REAL NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE vms (
        item_hash TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        type TEXT NOT NULL,
        allow_amend INTEGER NOT NULL,
        replaces TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX vms_by_replaces ON vms (replaces) WHERE replaces IS NOT NULL;

    CREATE TABLE vm_volumes (
        vm_hash TEXT NOT NULL,
        ref TEXT NOT NULL,
        PRIMARY KEY (vm_hash, ref)
    ) WITHOUT ROWID;
    CREATE INDEX vm_volumes_by_ref ON vm_volumes (ref);
    "#,
    // 2: files held by the node and the time-limited pins that keep unclaimed uploads alive.
    r#"
    CREATE TABLE files (
        hash TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        cid_v0 TEXT NOT NULL,
        cid_v1 TEXT,
        created REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX files_by_cid_v0 ON files (cid_v0);
    CREATE INDEX files_by_cid_v1 ON files (cid_v1) WHERE cid_v1 IS NOT NULL;

    CREATE TABLE grace_pins (
        file_hash TEXT PRIMARY KEY,
        until REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX file_pins_by_owner ON file_pins (owner, created);
    "#,
    // 3: the time a post was last updated, on the original, so post lists sort and filter on
    // an index instead of sorting every original by its latest amend.
    r#"
    ALTER TABLE posts ADD COLUMN last_updated REAL;
    UPDATE posts SET last_updated = coalesce(
        (SELECT a.creation_time FROM posts a WHERE a.item_hash = posts.latest_amend), creation_time)
    WHERE amends IS NULL;
    CREATE INDEX posts_by_last_updated ON posts (last_updated, item_hash) WHERE amends IS NULL;
    CREATE INDEX posts_by_owner_updated ON posts (owner, last_updated) WHERE amends IS NULL;
    CREATE INDEX posts_by_type_updated ON posts (type, last_updated) WHERE amends IS NULL;
    CREATE INDEX posts_by_channel_updated ON posts (channel, last_updated) WHERE amends IS NULL;
    "#,
    // 4: writes per message trimmed for ingest. Two post indexes that no query uses since
    // lists sort on `last_updated` are dropped; the status index (a random-key insert per
    // message, read only to count statuses) gives way to counters kept by triggers, so
    // /metrics reads a few rows instead of scanning every message.
    r#"
    DROP INDEX posts_originals_by_time;
    DROP INDEX posts_by_owner;
    DROP INDEX status_by_status;
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        n INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, n) SELECT 'status:' || status, count(*) FROM message_status GROUP BY status;
    INSERT INTO counters (name, n) SELECT 'messages', count(*) FROM messages;
    CREATE TRIGGER count_status_insert AFTER INSERT ON message_status BEGIN
        INSERT INTO counters (name, n) VALUES ('status:' || NEW.status, 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_status_update AFTER UPDATE OF status ON message_status
        WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'status:' || OLD.status;
        INSERT INTO counters (name, n) VALUES ('status:' || NEW.status, 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_status_delete AFTER DELETE ON message_status BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'status:' || OLD.status;
    END;
    CREATE TRIGGER count_messages_insert AFTER INSERT ON messages BEGIN
        INSERT INTO counters (name, n) VALUES ('messages', 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER count_messages_delete AFTER DELETE ON messages BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'messages';
    END;
    "#,
    // 5: the sync log. Each processed message gets the next sequence number (never reused:
    // the high-water mark is a counter, not max(seq)), so peers can ask for what follows the
    // last number they saw; the epoch names this log.
    r#"
    ALTER TABLE messages ADD COLUMN seq INTEGER;
    UPDATE messages SET seq = rowid;
    CREATE UNIQUE INDEX messages_by_seq ON messages (seq);
    INSERT INTO counters (name, n) VALUES ('seq', coalesce((SELECT max(seq) FROM messages), 0));
    CREATE TABLE node_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO node_meta (key, value) VALUES ('epoch', lower(hex(randomblob(16))));
    "#,
    // 6: read paths for the tag, count and aggregate-key lists.
    // - `message_tags` is keyed `(tag, time, item_hash)`, so one tag's messages are an index
    //   range in list order (a page reads ~20 entries instead of gathering the whole tag and
    //   sorting it). The message keeps its tags (`messages.tags`, a JSON array, NULL when
    //   none), so forgetting it or moving its time reaches its tag rows by key: the
    //   `(item_hash)` index goes, and a tag costs one B-tree insert instead of two.
    // - `messages_by_rare_status` holds only messages whose status is not `processed`
    //   (normally none, so ingest never writes it): list totals count the filter's own index
    //   and subtract these, instead of reading every row to check its status.
    // - `aggregates_by_key`: aggregates.json?keys= reads one key's range in update order.
    r#"
    CREATE TABLE message_tags_by_time (
        tag TEXT NOT NULL,
        time REAL NOT NULL,
        item_hash TEXT NOT NULL,
        PRIMARY KEY (tag, time, item_hash)
    ) WITHOUT ROWID;
    INSERT INTO message_tags_by_time (tag, time, item_hash)
        SELECT t.tag, m.time, t.item_hash FROM message_tags t JOIN messages m ON m.item_hash = t.item_hash
        ORDER BY 1, 2, 3;
    ALTER TABLE messages ADD COLUMN tags TEXT;
    UPDATE messages SET tags = (
        SELECT json_group_array(tag) FROM (
            SELECT tag FROM message_tags t WHERE t.item_hash = messages.item_hash ORDER BY tag))
    WHERE item_hash IN (SELECT item_hash FROM message_tags);
    DROP TABLE message_tags;
    ALTER TABLE message_tags_by_time RENAME TO message_tags;
    CREATE INDEX messages_by_rare_status ON messages (status) WHERE status <> 'processed';
    CREATE INDEX aggregates_by_key ON aggregates (key, last_update_time);
    "#,
    // 7: forgotten messages take a place in the sync log when they are forgotten, so peers
    // that never saw them learn that they are gone.
    r#"
    ALTER TABLE forgotten_messages ADD COLUMN seq INTEGER;
    CREATE UNIQUE INDEX forgotten_by_seq ON forgotten_messages (seq);
    "#,
    // 8: two random-key B-tree inserts fewer per message. On a large store each such index
    // costs the writer a page write per message, as a batch lands on pages all over it.
    // - `message_status` keeps only messages whose status is not `processed`: a processed
    //   message's status is its row in `messages` (the writer looks there second; /metrics
    //   counts processed as `messages` minus the few rows of `messages_by_rare_status`).
    // - The owner index holds only messages whose owner is not their sender (delegated
    //   writes, rare): owner filters read the rest from `messages_by_sender`.
    r#"
    DROP TRIGGER count_status_delete;
    DELETE FROM message_status WHERE status = 'processed';
    DELETE FROM counters WHERE name = 'status:processed';
    CREATE TRIGGER count_status_delete AFTER DELETE ON message_status BEGIN
        UPDATE counters SET n = n - 1 WHERE name = 'status:' || OLD.status;
    END;
    DROP INDEX messages_by_owner;
    CREATE INDEX messages_by_delegated_owner ON messages (owner, time) WHERE owner <> sender;
    "#,
    // 9: the writer counts `messages` rows itself and writes the count once per transaction:
    // with a trigger on `messages`, every message insert kept a statement journal (a copy of
    // each page it touched, in case the trigger failed).
    r#"
    DROP TRIGGER count_messages_insert;
    DROP TRIGGER count_messages_delete;
    "#,
    // 10: per-value totals of the lists whose values are few and long (a content type holds a
    // tenth of the store, a tag a percent), kept by the writer like `counters.messages`: the
    // first request for such a list read hundreds of index pages to count it.
    r#"
    CREATE TABLE list_totals (
        list TEXT NOT NULL,
        value TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (list, value)
    ) WITHOUT ROWID;
    INSERT INTO list_totals (list, value, n)
        SELECT 'content_type', content_type, count(*) FROM messages
        WHERE content_type IS NOT NULL GROUP BY content_type;
    INSERT INTO list_totals (list, value, n)
        SELECT 'tag', tag, count(*) FROM message_tags GROUP BY tag;
    "#,
    // 11: original posts per post type, in the same table.
    r#"
    INSERT INTO list_totals (list, value, n)
        SELECT 'post_type', type, count(*) FROM posts WHERE amends IS NULL GROUP BY type;
    "#,
    // 12: messages per channel and per content key (aggregate keys), in the same table.
    r#"
    INSERT INTO list_totals (list, value, n)
        SELECT 'channel', channel, count(*) FROM messages
        WHERE channel IS NOT NULL GROUP BY channel;
    INSERT INTO list_totals (list, value, n)
        SELECT 'content_key', content_key, count(*) FROM messages
        WHERE content_key IS NOT NULL GROUP BY content_key;
    "#,
    // 13: aggregates per key (one per owner holding it), in the same table.
    r#"
    INSERT INTO list_totals (list, value, n)
        SELECT 'aggregate_key', key, count(*) FROM aggregates GROUP BY key;
    "#,
    // 14: the sender index carries the type, so an address and type list is counted and
    // paged on the index alone: the type was read from each of the address's rows, ~80
    // pages from disk for the first request of an address with 100 messages.
    r#"
    DROP INDEX messages_by_sender;
    CREATE INDEX messages_by_sender ON messages (sender, time, type);
    "#,
    // 15: original posts per channel, in `list_totals` (a channel's posts were counted on
    // their index range, thousands of entries).
    r#"
    INSERT INTO list_totals (list, value, n)
        SELECT 'post_channel', channel, count(*) FROM posts
        WHERE amends IS NULL AND channel IS NOT NULL GROUP BY channel;
    "#,
    // 16: messages per span of time on five levels (`time_counts.rs`): a time range's total
    // reads a few of these rows instead of every index entry in the range. Times outside
    // [0, 2^40) seconds are not bucketed.
    r#"
    CREATE TABLE time_counts (
        level INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (level, bucket)
    ) WITHOUT ROWID;
    INSERT INTO time_counts (level, bucket, n)
        SELECT 0, second, count(*) FROM (
            SELECT CAST(time AS INTEGER) AS second FROM messages
            WHERE time >= 0 AND time < 1099511627776)
        GROUP BY second;
    INSERT INTO time_counts (level, bucket, n)
        SELECT 1, bucket >> 6, sum(n) FROM time_counts WHERE level = 0 GROUP BY bucket >> 6;
    INSERT INTO time_counts (level, bucket, n)
        SELECT 2, bucket >> 6, sum(n) FROM time_counts WHERE level = 1 GROUP BY bucket >> 6;
    INSERT INTO time_counts (level, bucket, n)
        SELECT 3, bucket >> 6, sum(n) FROM time_counts WHERE level = 2 GROUP BY bucket >> 6;
    INSERT INTO time_counts (level, bucket, n)
        SELECT 4, bucket >> 6, sum(n) FROM time_counts WHERE level = 3 GROUP BY bucket >> 6;
    "#,
    // 17: messages per type and per sender in `list_totals`, and per type and span of time in
    // `type_time_counts` (the buckets of `time_counts`, once per type), so that the totals of
    // a list filtered on a type or an address alone, or on a type and a time range, are kept
    // exactly like the others instead of counted (and cached) per request.
    r#"
    INSERT INTO list_totals (list, value, n)
        SELECT 'type', type, count(*) FROM messages GROUP BY type;
    INSERT INTO list_totals (list, value, n)
        SELECT 'sender', sender, count(*) FROM messages GROUP BY sender;
    CREATE TABLE type_time_counts (
        type TEXT NOT NULL,
        level INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (type, level, bucket)
    ) WITHOUT ROWID;
    INSERT INTO type_time_counts (type, level, bucket, n)
        SELECT type, 0, second, count(*) FROM (
            SELECT type, CAST(time AS INTEGER) AS second FROM messages
            WHERE time >= 0 AND time < 1099511627776)
        GROUP BY type, second;
    INSERT INTO type_time_counts (type, level, bucket, n)
        SELECT type, 1, bucket >> 6, sum(n) FROM type_time_counts WHERE level = 0
        GROUP BY type, bucket >> 6;
    INSERT INTO type_time_counts (type, level, bucket, n)
        SELECT type, 2, bucket >> 6, sum(n) FROM type_time_counts WHERE level = 1
        GROUP BY type, bucket >> 6;
    INSERT INTO type_time_counts (type, level, bucket, n)
        SELECT type, 3, bucket >> 6, sum(n) FROM type_time_counts WHERE level = 2
        GROUP BY type, bucket >> 6;
    INSERT INTO type_time_counts (type, level, bucket, n)
        SELECT type, 4, bucket >> 6, sum(n) FROM type_time_counts WHERE level = 3
        GROUP BY type, bucket >> 6;
    "#,
    // 18: blockchain anchoring (issue 16, `write/anchors.rs`). `anchors`: the anchoring
    // transactions chain readers saw, one per (chain, tx, log); `confirmations`: one row per
    // item an anchor lists, keyed by item hash (a page's confirmations are a probe each)
    // and by anchor (its items in order, for a proof); `chain_positions`: each reader's
    // position; `batches` and `batch_items`: what a packing node built, open until
    // `anchor_id` names the anchor that confirmed it; `unanchored`: signed messages no
    // anchor confirms and no open batch holds, keyed by reception so that ingest appends
    // and the packer reads a range, however many messages are confirmed; and each message's
    // first confirmation.
    r#"
    CREATE TABLE anchors (
        id INTEGER PRIMARY KEY,
        chain TEXT NOT NULL,
        tx_hash TEXT NOT NULL,
        log_index INTEGER NOT NULL,
        height INTEGER NOT NULL,
        block_hash TEXT NOT NULL,
        time REAL NOT NULL,
        publisher TEXT NOT NULL,
        protocol TEXT NOT NULL,
        archive TEXT,
        merkle_root TEXT,
        UNIQUE (chain, tx_hash, log_index)
    );
    CREATE INDEX anchors_by_height ON anchors (chain, height);
    CREATE TABLE confirmations (
        item_hash TEXT NOT NULL,
        anchor_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (item_hash, anchor_id)
    ) WITHOUT ROWID;
    CREATE INDEX confirmations_by_anchor ON confirmations (anchor_id, position);
    CREATE TABLE chain_positions (
        chain TEXT PRIMARY KEY,
        position TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        chain TEXT NOT NULL,
        archive TEXT NOT NULL,
        merkle_root TEXT NOT NULL,
        created REAL NOT NULL,
        tx_hash TEXT,
        nonce INTEGER,
        submitted_at REAL,
        anchor_id INTEGER
    );
    CREATE INDEX batches_open ON batches (chain, id) WHERE anchor_id IS NULL;
    CREATE INDEX batches_by_anchor ON batches (anchor_id) WHERE anchor_id IS NOT NULL;
    CREATE TABLE batch_items (
        batch_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        item_hash TEXT NOT NULL,
        PRIMARY KEY (batch_id, position)
    ) WITHOUT ROWID;
    CREATE INDEX batch_items_by_hash ON batch_items (item_hash);
    CREATE TABLE unanchored (
        reception_time REAL NOT NULL,
        item_hash TEXT NOT NULL,
        PRIMARY KEY (reception_time, item_hash)
    ) WITHOUT ROWID;
    INSERT INTO unanchored (reception_time, item_hash)
        SELECT reception_time, item_hash FROM messages WHERE signature IS NOT NULL;
    -- Each message's first confirmation (earliest time, then lowest height), kept by the
    -- writer with its confirmations: the `startBlock`/`endBlock` filters and the `tx-time`
    -- order. The order's key puts unconfirmed messages past every time, so that the index
    -- gives the reference's order both ways (unconfirmed first when descending).
    ALTER TABLE messages ADD COLUMN first_confirmed_at REAL;
    ALTER TABLE messages ADD COLUMN first_confirmed_height INTEGER;
    CREATE INDEX messages_by_tx_time ON messages (coalesce(first_confirmed_at, 1e300), time);
    "#,
    // 19: the rest of the reference's read API.
    // - `messages/hashes` pages item hashes of every status by reception time: processed ones
    //   on `messages_by_reception` (covering: it carries the status), the others on
    //   `message_status` by status and time. Reception times only grow, so ingest appends to
    //   the index's end rather than writing a random page.
    // - `authorizations/received`: `security_grants` holds who each `security` aggregate
    //   grants something to (`write/grants.rs`), so the reverse lookup is a key range.
    // - `addresses/{address}/channels` and `post_types`: per-address facets in `list_totals`
    //   (`totals.rs`), a range of rows however many messages the address sent.
    r#"
    CREATE INDEX messages_by_reception ON messages (reception_time, item_hash, status);
    CREATE INDEX status_by_status_time ON message_status (status, reception_time, item_hash);
    CREATE TABLE security_grants (
        grantee TEXT NOT NULL,
        owner TEXT NOT NULL,
        PRIMARY KEY (grantee, owner)
    ) WITHOUT ROWID;
    CREATE INDEX security_grants_by_owner ON security_grants (owner);
    INSERT OR IGNORE INTO security_grants (grantee, owner)
        SELECT json_extract(a.doc, entry.fullkey || '.address'), a.owner
        FROM (SELECT owner, CASE WHEN json_valid(content) THEN content ELSE '{}' END AS doc
              FROM aggregates WHERE key = 'security') a,
            json_each(a.doc, '$.authorizations') entry
        WHERE json_type(a.doc, '$.authorizations') = 'array'
            AND json_type(a.doc, entry.fullkey || '.address') = 'text'
            AND json_extract(a.doc, entry.fullkey || '.address') <> '';
    INSERT INTO list_totals (list, value, n)
        SELECT 'sender_channel', sender || char(1) || channel, count(*) FROM messages
        WHERE channel IS NOT NULL GROUP BY sender, channel;
    INSERT INTO list_totals (list, value, n)
        SELECT 'sender_post_type', sender || char(1) || content_type, count(*) FROM messages
        WHERE type = 'POST' AND content_type IS NOT NULL GROUP BY sender, content_type;
    "#,
    // 20: anchors whose archive was found nowhere: looked for again until found, so that a
    // node learning from the chain gets their messages late rather than never.
    r#"
    CREATE TABLE missing_archives (
        anchor_id INTEGER PRIMARY KEY,
        claimed_root TEXT
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}
