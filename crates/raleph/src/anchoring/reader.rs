//! One chain's reader task: follows the sync contract at the confirmation depth, turns each
//! accepted event into messages for the pipeline and an anchor with its confirmations, undoes
//! the anchors of blocks a reorg took away, and saves its position after every step.
//!
//! What an event becomes (protocol.md 8.4):
//! - `aleph-offchain`: the archive is fetched by CID (see `archives`), its messages are
//!   submitted like any message from a client (their signatures checked) with origin
//!   `onchain`, and the anchor confirms every item hash of the archive, in archive order (the
//!   positions the Merkle proofs use). A Merkle root the payload carries is kept only if it is
//!   the root of those item hashes.
//! - `aleph`: the same with the messages inline.
//! - a `MessageEvent` (`smart-contract`): one unsigned message from the event's emitter,
//!   authenticated by the chain (the pipeline takes it without a signature only from here).
//!
//! A payload that cannot be read (bad JSON, unknown protocol, over a limit) is logged and
//! stores nothing; so is an archive over its limit or that does not parse. An archive found
//! nowhere in time is recorded as an anchor without items and kept among the missing
//! archives, looked for again every `archive_retry_secs` (`look_again`): once found, its
//! messages are taken in and the anchor confirms them, as if found at once. The reader does
//! not wait for it, so a CID nobody serves never holds the chain back.

use anyhow::Context;
use raleph_chain::merkle::MerkleTree;
use raleph_chain::payload::parse_archive;
use raleph_chain::{
    B256, ChainEvent, ContractMessage, EventKind, EvmChainConfig, Reader, ReaderPosition, Step,
    SyncPayload,
};
use raleph_db::{Anchor, Chain, ItemHash, MissingArchive};
use raleph_message::{Envelope, sha256_hex, time_value};
use raleph_pipeline::SubmitError;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::Anchoring;
use super::archives::Fetched;

pub(super) fn spawn(anchoring: Anchoring, config: EvmChainConfig) -> anyhow::Result<()> {
    tokio::spawn(look_again(anchoring.clone(), config.clone()));
    tokio::spawn(async move {
        let chain = config.chain;
        if let Err(e) = run(anchoring, config).await {
            tracing::error!(%chain, "anchoring: the chain reader stopped: {e:#}");
        }
    });
    Ok(())
}

async fn run(anchoring: Anchoring, config: EvmChainConfig) -> anyhow::Result<()> {
    let chain = config.chain;
    let mut reader = Reader::new(config.clone(), saved_position(&anchoring, chain).await?)
        .context("chain reader")?;
    loop {
        match step(&anchoring, &config, &mut reader).await {
            Ok(()) => {}
            Err(e) if stopped(&e) => return Ok(()),
            Err(e) => {
                // Read again from the last saved position: anchors are recorded once, and
                // messages seen again are copies.
                tracing::warn!(%chain, "anchoring: a step failed, reading it again: {e:#}");
                tokio::time::sleep(config.poll_interval()).await;
                let position = saved_position(&anchoring, chain).await?;
                reader = Reader::new(config.clone(), position).context("chain reader")?;
            }
        }
    }
}

/// One step of the reader, and what it found recorded; the position is saved last.
async fn step(
    anchoring: &Anchoring,
    config: &EvmChainConfig,
    reader: &mut Reader,
) -> anyhow::Result<()> {
    let chain = config.chain;
    match reader.step().await {
        Ok(Step::Events {
            from,
            to,
            events,
            ignored,
        }) => {
            for event in events {
                handle(anchoring, config, event).await?;
            }
            if ignored > 0 {
                tracing::debug!(%chain, from, to, ignored, "anchoring: logs ignored");
            }
            save_position(anchoring, chain, reader.position()).await
        }
        Ok(Step::Reorg {
            from_height,
            beyond_memory,
        }) => {
            let dropped = anchoring
                .pipeline
                .drop_anchors_from(chain, from_height)
                .await?;
            tracing::warn!(%chain, from_height, beyond_memory, dropped, "anchoring: reorg, anchors from that height dropped");
            save_position(anchoring, chain, reader.position()).await
        }
        Ok(Step::UpToDate { .. }) => {
            tokio::time::sleep(config.poll_interval()).await;
            Ok(())
        }
        // The position is unchanged: the same step is tried again.
        Err(e) => {
            tracing::warn!(%chain, "anchoring: reading the chain failed, retrying: {e}");
            tokio::time::sleep(config.poll_interval()).await;
            Ok(())
        }
    }
}

/// Whether `e` is the pipeline stopping (the node shuts down).
fn stopped(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<SubmitError>(), Some(SubmitError::Stopped))
}

async fn saved_position(anchoring: &Anchoring, chain: Chain) -> anyhow::Result<ReaderPosition> {
    let reader = anchoring.reader.clone();
    let saved = tokio::task::spawn_blocking(move || reader.chain_position(chain)).await??;
    match saved {
        None => Ok(ReaderPosition::default()),
        Some(text) => serde_json::from_str(&text)
            .with_context(|| format!("the saved position of the {chain} reader")),
    }
}

async fn save_position(
    anchoring: &Anchoring,
    chain: Chain,
    position: &ReaderPosition,
) -> anyhow::Result<()> {
    let text = serde_json::to_string(position)?;
    anchoring.pipeline.set_chain_position(chain, text).await?;
    Ok(())
}

/// The anchor an event makes, before its payload is known.
fn anchor_of(event: &ChainEvent, protocol: &str) -> Anchor {
    Anchor {
        chain: event.chain,
        tx_hash: format!("{:#x}", event.tx_hash),
        log_index: event.log_index,
        height: event.height,
        block_hash: format!("{:#x}", event.block_hash),
        time: event.time as f64,
        publisher: format!("{:#x}", event.emitter),
        protocol: protocol.to_owned(),
        archive: None,
        merkle_root: None,
    }
}

async fn handle(
    anchoring: &Anchoring,
    config: &EvmChainConfig,
    event: ChainEvent,
) -> anyhow::Result<()> {
    let chain = event.chain;
    let tx = format!("{:#x}", event.tx_hash);
    match &event.kind {
        EventKind::Sync(text) => match SyncPayload::parse(text, &config.limits) {
            Err(e) => {
                tracing::warn!(%chain, %tx, "anchoring: a sync payload refused: {e}");
                Ok(())
            }
            Ok(SyncPayload::Aleph { messages }) => {
                let items = ingest(anchoring, &messages).await?;
                record(anchoring, anchor_of(&event, "aleph"), items).await
            }
            Ok(SyncPayload::AlephOffchain { cid, merkle_root }) => {
                let mut anchor = anchor_of(&event, "aleph-offchain");
                anchor.archive = Some(cid.clone());
                match archive_items(anchoring, config, &anchor, &cid, merkle_root).await? {
                    Archive::Refused => Ok(()),
                    Archive::Missing => {
                        tracing::warn!(%chain, %tx, %cid, "anchoring: the archive was found nowhere; anchor recorded without its messages, the archive looked for again later");
                        let claimed = merkle_root.map(|root| format!("{root:#x}"));
                        anchoring
                            .pipeline
                            .record_anchor_missing_archive(anchor, claimed)
                            .await?;
                        Ok(())
                    }
                    Archive::Found { items, merkle_root } => {
                        anchor.merkle_root = merkle_root;
                        record(anchoring, anchor, items).await
                    }
                }
            }
        },
        EventKind::Message {
            msgtype,
            msgcontent,
        } => match ContractMessage::parse(msgtype, msgcontent, &config.limits) {
            Err(e) => {
                tracing::warn!(%chain, %tx, "anchoring: a contract message refused: {e}");
                Ok(())
            }
            Ok(message) => {
                let Some(envelope) = contract_envelope(&event, &message) else {
                    tracing::warn!(%chain, %tx, "anchoring: a contract message is no valid message");
                    return Ok(());
                };
                let hash = envelope.item_hash.clone();
                anchoring.pipeline.submit_from_chain(envelope).await?;
                record(anchoring, anchor_of(&event, "smart-contract"), vec![hash]).await
            }
        },
    }
}

async fn record(anchoring: &Anchoring, anchor: Anchor, items: Vec<ItemHash>) -> anyhow::Result<()> {
    let (chain, height, count) = (anchor.chain, anchor.height, items.len());
    if anchoring.pipeline.record_anchor(anchor, items).await? {
        tracing::info!(%chain, height, messages = count, "anchoring: anchor recorded");
    }
    Ok(())
}

/// What became of an `aleph-offchain` event's archive.
enum Archive {
    /// Over a limit or not an archive: logged, nothing stored.
    Refused,
    /// Found nowhere in time.
    Missing,
    /// Its messages submitted: their item hashes in archive order, and the payload's Merkle
    /// root if it is theirs.
    Found {
        items: Vec<ItemHash>,
        merkle_root: Option<String>,
    },
}

/// Fetches an anchor's archive by CID and takes its messages in.
async fn archive_items(
    anchoring: &Anchoring,
    config: &EvmChainConfig,
    anchor: &Anchor,
    cid: &str,
    claimed_root: Option<B256>,
) -> anyhow::Result<Archive> {
    let (chain, tx) = (anchor.chain, &anchor.tx_hash);
    let max = config.limits.max_archive_bytes;
    let messages = match anchoring.archives.fetch(cid, max).await? {
        Fetched::Bytes(bytes) => match parse_archive(&bytes, &config.limits) {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(%chain, %tx, %cid, "anchoring: the archive refused: {e}");
                return Ok(Archive::Refused);
            }
        },
        Fetched::TooLarge => {
            tracing::warn!(%chain, %tx, %cid, max, "anchoring: the archive is over the limit: refused");
            return Ok(Archive::Refused);
        }
        Fetched::NotFound => return Ok(Archive::Missing),
    };
    let items = ingest(anchoring, &messages).await?;
    let merkle_root = claimed_root.and_then(|root| {
        let built = MerkleTree::new(&items).ok().map(|tree| tree.root());
        if built == Some(root) {
            Some(format!("{root:#x}"))
        } else {
            tracing::warn!(%chain, %tx, %cid, "anchoring: the payload's Merkle root is not the archive's; not kept");
            None
        }
    });
    Ok(Archive::Found { items, merkle_root })
}

/// How many missing archives one round looks for (each may take the fetch timeout).
const MISSING_PER_ROUND: u64 = 16;

/// Looks again, every `archive_retry`, for the archives of this chain's anchors that were
/// found nowhere, 16 a round, taking up where the last round stopped and starting over after
/// the last, so that every one gets its turn however many are never found. One found is
/// taken in and its anchor confirms its messages. Nothing else waits for this: the reader
/// reads on, and a CID nobody serves costs one fetch per turn.
async fn look_again(anchoring: Anchoring, config: EvmChainConfig) {
    let chain = config.chain;
    let mut after = 0;
    loop {
        tokio::time::sleep(anchoring.archive_retry).await;
        match missing_round(&anchoring, &config, after).await {
            Ok(next) => after = next,
            Err(e) if stopped(&e) => return,
            Err(e) => {
                tracing::warn!(%chain, "anchoring: looking for missing archives failed: {e:#}")
            }
        }
    }
}

/// One round, from just after the anchor id `after`; returns where the next one starts (0
/// once the list is walked to its end).
async fn missing_round(
    anchoring: &Anchoring,
    config: &EvmChainConfig,
    after: i64,
) -> anyhow::Result<i64> {
    let chain = config.chain;
    let reader = anchoring.reader.clone();
    let missing = tokio::task::spawn_blocking(move || {
        reader.missing_archives(chain, after, MISSING_PER_ROUND)
    })
    .await??;
    let next = match missing.last() {
        Some(last) if missing.len() as u64 == MISSING_PER_ROUND => last.id,
        _ => 0,
    };
    for MissingArchive {
        anchor,
        claimed_root,
        ..
    } in missing
    {
        let Some(cid) = anchor.archive.clone() else {
            continue;
        };
        let claimed = claimed_root.as_deref().and_then(|root| root.parse().ok());
        let (tx, height) = (anchor.tx_hash.clone(), anchor.height);
        let (items, merkle_root) = match archive_items(anchoring, config, &anchor, &cid, claimed)
            .await?
        {
            Archive::Missing => {
                tracing::debug!(%chain, %tx, %cid, "anchoring: a missing archive is still found nowhere");
                continue;
            }
            // Found, but not an archive after all: not looked for again.
            Archive::Refused => (Vec::new(), None),
            Archive::Found { items, merkle_root } => (items, merkle_root),
        };
        let count = items.len();
        if anchoring
            .pipeline
            .complete_anchor(anchor, items, merkle_root)
            .await?
        {
            tracing::info!(%chain, %tx, %cid, height, messages = count, "anchoring: a missing archive was found; its anchor confirms its messages");
        }
    }
    Ok(next)
}

/// Archive messages submitted at once: each waits for its signature check and the intake
/// journal, which group what arrives together; one at a time, a reader took ~1 000 msg/s.
const CONCURRENT_SUBMISSIONS: usize = 256;

/// Submits an archive's messages, and returns the item hash of each entry, in archive order
/// (an entry with no well-formed item hash has no place in the tree, and is left out).
async fn ingest(
    anchoring: &Anchoring,
    messages: &[Box<RawValue>],
) -> anyhow::Result<Vec<ItemHash>> {
    use futures::StreamExt;
    let mut items = Vec::with_capacity(messages.len());
    let mut envelopes = Vec::with_capacity(messages.len());
    let mut refused = 0usize;
    for raw in messages {
        let Ok(value) = serde_json::from_str::<Value>(raw.get()) else {
            refused += 1;
            continue;
        };
        if let Some(hash) = value
            .get("item_hash")
            .and_then(Value::as_str)
            .and_then(|h| ItemHash::parse(h).ok())
        {
            items.push(hash);
        }
        match Envelope::from_json(&value) {
            Ok(envelope) => envelopes.push(envelope),
            Err(_) => refused += 1,
        }
    }
    if refused > 0 {
        tracing::warn!(
            refused,
            "anchoring: archive entries that are no valid message"
        );
    }
    // A packer's own archive, or one a peer relayed first: the copies held here already cost
    // a status lookup, not a signature check each (their confirmations come with the anchor).
    let envelopes = crate::network::not_held(anchoring.reader.clone(), envelopes).await?;
    // Checked and processed like a client's messages; a bad one is rejected as usual.
    let pipeline = &anchoring.pipeline;
    let mut submitted = futures::stream::iter(envelopes)
        .map(|envelope| async move {
            // A full intake waits a little rather than failing the event.
            loop {
                match pipeline.accept(envelope.clone(), "onchain").await {
                    Err(SubmitError::Busy) => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await
                    }
                    outcome => return outcome,
                }
            }
        })
        .buffer_unordered(CONCURRENT_SUBMISSIONS);
    while let Some(outcome) = submitted.next().await {
        outcome?;
    }
    Ok(items)
}

/// The unsigned message a `MessageEvent` stands for (protocol.md 8.4): sent by the emitter, on
/// the event's chain, at the event's time; `STORE_IPFS` becomes a STORE of the IPFS file.
fn contract_envelope(event: &ChainEvent, message: &ContractMessage) -> Option<Envelope> {
    let sender = event.emitter.to_checksum(None);
    let (message_type, item_content) = match message {
        ContractMessage::Inline {
            message_type,
            item_content,
        } => (message_type.clone(), item_content.clone()),
        ContractMessage::StoreIpfs { cid } => (
            "STORE".to_owned(),
            json!({
                "address": sender,
                "time": time_value(event.time as f64),
                "item_type": "ipfs",
                "item_hash": cid,
            })
            .to_string(),
        ),
    };
    Envelope::from_json(&json!({
        "sender": sender,
        "chain": event.chain.as_str(),
        "signature": null,
        "type": message_type,
        "item_type": "inline",
        "item_content": item_content,
        "item_hash": sha256_hex(item_content.as_bytes()),
        "time": time_value(event.time as f64),
        "channel": null,
    }))
    .ok()
}
