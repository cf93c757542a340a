//! Catch-up between raleph nodes.
//!
//! Every store keeps a sync log: each processed message gets the next sequence number, never
//! reused (raleph-db `sync_log`). A node asks each raleph peer for the messages after the last
//! number it saw from that peer, in bounded pages, submits them to its own pipeline (signatures
//! are checked as for any submission), and moves its cursor on only once every message of the
//! page was durably recorded. Cursors are kept per peer, with the peer's log epoch, in
//! `<data dir>/sync-cursors.json`; losing that file only costs a full, idempotent re-sync.
//!
//! Order does not have to be right: a message that arrives before what it depends on (an
//! amend before its original, a FORGET before its target) waits in the pending queue, so
//! every node ends in the same state whatever order its peers' logs come in.
//!
//! One module per job: `serve` answers peers from the sync log, `pull` reads peers' logs into
//! the pipeline, `cursors` keeps where each peer's log was read up to, and `skeleton` carries
//! forgotten messages (their JSON, and recording those the pipeline's proof accepts).

mod cursors;
mod pull;
mod serve;
mod skeleton;

pub(super) use pull::Syncer;
pub(crate) use pull::not_held;
pub(super) use serve::answer;
