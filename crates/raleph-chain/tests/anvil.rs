//! The reader and the writer against a real chain: anvil from `$RALEPH_ANVIL` with our
//! AlephSync deployed from the committed artifact. Each test skips (with a printed reason)
//! when anvil is not available, and fails instead under `RALEPH_REQUIRE_ANVIL=1`.

mod common;

use alloy_primitives::Address;
use alloy_provider::Provider as _;
use alloy_rpc_types_eth::BlockNumberOrTag;
use alloy_sol_types::SolCall;
use raleph_chain::events::{EventKind, doEmitCall, doMessageCall};
use raleph_chain::merkle::MerkleTree;
use raleph_chain::payload::{Limits, PayloadError, offchain_payload};
use raleph_chain::testing::Anvil;
use raleph_chain::{
    ChainEvent, ContractMessage, EvmChainConfig, FeeError, Reader, ReaderPosition, Step,
    SyncPayload, Writer, WriterError,
};

/// A CIDv0 (46 characters), the size of a real archive's CID.
const CID: &str = "QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB";
/// Dev accounts: 0 deploys, 1 is the authorized packer, 2 is a stranger, 3 a contract user.
const DEPLOYER: usize = 0;
const PACKER: usize = 1;
const STRANGER: usize = 2;
const USER: usize = 3;

struct Setup {
    anvil: Anvil,
    contract: Address,
}

impl Setup {
    async fn start(extra: &[&str]) -> Option<Setup> {
        let anvil = Anvil::start_or_skip(extra)?;
        let contract = anvil.deploy(DEPLOYER).await;
        Some(Setup { anvil, contract })
    }

    fn config(&self) -> EvmChainConfig {
        self.anvil
            .config(self.contract, vec![self.anvil.key(PACKER).address()])
    }

    fn writer(&self, account: usize) -> Writer {
        Writer::new(&self.config(), self.anvil.key(account))
            .unwrap()
            .with_receipt_poll(std::time::Duration::from_millis(50))
    }

    fn reader(&self, config: EvmChainConfig) -> Reader {
        Reader::new(config, ReaderPosition::default()).unwrap()
    }
}

/// Steps until the reader is up to date; fails on a reorg.
async fn read_all(reader: &mut Reader) -> (Vec<ChainEvent>, usize) {
    let (mut events, mut ignored) = (Vec::new(), 0);
    loop {
        match reader.step().await.unwrap() {
            Step::Events {
                events: found,
                ignored: skipped,
                ..
            } => {
                events.extend(found);
                ignored += skipped;
            }
            Step::UpToDate { .. } => return (events, ignored),
            reorg => panic!("unexpected {reorg:?}"),
        }
    }
}

#[tokio::test]
async fn an_emitted_payload_is_read_back_with_where_it_was_mined() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let items: Vec<String> = (0..3).map(|i| format!("{i:064x}")).collect();
    let root = MerkleTree::new(&items).unwrap().root();
    let payload = offchain_payload(CID, Some(root)).unwrap();
    let packer = setup.writer(PACKER);
    let emitted = packer.emit(&payload).await.unwrap();

    // The reference's own payload shape (no Merkle root), for the gas figure.
    let plain = offchain_payload(CID, None).unwrap();
    let plain_emitted = packer.emit(&plain).await.unwrap();
    println!(
        "doEmit gas used: {} for the reference's {}-byte aleph-offchain payload (CIDv0); {} with raleph's merkle_root ({} bytes)",
        plain_emitted.gas_used,
        plain.len(),
        emitted.gas_used,
        payload.len()
    );
    assert!(plain_emitted.gas_used < emitted.gas_used);
    assert!(emitted.gas_used < 40_000, "{}", emitted.gas_used);

    // A stranger's sync event is ignored.
    setup.writer(STRANGER).emit(&plain).await.unwrap();

    let mut reader = setup.reader(setup.config());
    let (events, ignored) = read_all(&mut reader).await;
    assert_eq!(ignored, 1, "{events:?}");
    assert_eq!(events.len(), 2);
    let event = &events[0];
    assert_eq!(event.height, emitted.block_height);
    assert_eq!(event.block_hash, emitted.block_hash);
    assert_eq!(event.tx_hash, emitted.tx_hash);
    assert_eq!(event.emitter, packer.address());
    assert_eq!(event.kind, EventKind::Sync(payload.clone()));
    let block = setup
        .anvil
        .provider()
        .get_block_by_number(BlockNumberOrTag::Number(event.height))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.time, block.header.timestamp);
    assert_eq!(events[1].tx_hash, plain_emitted.tx_hash);

    let EventKind::Sync(text) = &event.kind else {
        unreachable!()
    };
    assert_eq!(
        SyncPayload::parse(text, &Limits::default()).unwrap(),
        SyncPayload::AlephOffchain {
            cid: CID.to_owned(),
            merkle_root: Some(root)
        }
    );

    // The position moved to the head and nothing is read twice.
    let head = setup.anvil.head().await;
    assert_eq!(reader.position().synced_height, Some(head));
    assert_eq!(read_all(&mut reader).await.0, vec![]);
    // A reader restarted from the saved position reads nothing again either.
    let saved: ReaderPosition =
        serde_json::from_str(&serde_json::to_string(reader.position()).unwrap()).unwrap();
    let mut restarted = Reader::new(setup.config(), saved).unwrap();
    assert_eq!(read_all(&mut restarted).await.0, vec![]);
}

#[tokio::test]
async fn an_event_waits_for_its_confirmations() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let mut config = setup.config();
    config.confirmations = 3;
    let mut reader = setup.reader(config);
    let emitted = setup
        .writer(PACKER)
        .emit(&offchain_payload(CID, None).unwrap())
        .await
        .unwrap();
    assert_eq!(read_all(&mut reader).await.0, vec![]);
    assert!(reader.position().synced_height < Some(emitted.block_height));
    setup.anvil.mine(2).await;
    assert_eq!(read_all(&mut reader).await.0, vec![]);
    setup.anvil.mine(1).await;
    let (events, _) = read_all(&mut reader).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].height, emitted.block_height);
    assert_eq!(reader.position().synced_height, Some(emitted.block_height));
}

#[tokio::test]
async fn a_reorg_is_reported_from_the_first_changed_height() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let mut reader = setup.reader(setup.config());
    read_all(&mut reader).await;
    let before = setup.anvil.head().await;
    let snapshot: String = setup.anvil.rpc("evm_snapshot", serde_json::json!([])).await;

    let emitted = setup
        .writer(PACKER)
        .emit(&offchain_payload(CID, None).unwrap())
        .await
        .unwrap();
    assert_eq!(emitted.block_height, before + 1);
    setup.anvil.mine(2).await;
    let (events, _) = read_all(&mut reader).await;
    assert_eq!(events.len(), 1);

    // The chain forgets the event's block and grows past it without it.
    let reverted: bool = setup
        .anvil
        .rpc("evm_revert", serde_json::json!([snapshot]))
        .await;
    assert!(reverted);
    setup.anvil.mine(4).await;

    assert_eq!(
        reader.step().await.unwrap(),
        Step::Reorg {
            from_height: before + 1,
            beyond_memory: false
        }
    );
    assert_eq!(reader.position().synced_height, Some(before));
    assert!(
        reader
            .position()
            .recent
            .iter()
            .all(|&(height, _)| height <= before)
    );
    // Read again from there: the event is gone.
    let (events, _) = read_all(&mut reader).await;
    assert_eq!(events, vec![]);
    assert_eq!(
        reader.position().synced_height,
        Some(setup.anvil.head().await)
    );
}

#[tokio::test]
async fn the_remembered_heights_are_bounded() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let mut config = setup.config();
    config.max_remembered_heights = 4;
    config.max_block_range = 2;
    let mut reader = setup.reader(config);
    let writer = setup.writer(PACKER);
    for _ in 0..6 {
        writer
            .emit(&offchain_payload(CID, None).unwrap())
            .await
            .unwrap();
    }
    let (events, _) = read_all(&mut reader).await;
    assert_eq!(events.len(), 6);
    assert_eq!(reader.position().recent.len(), 4);
    let heights: Vec<u64> = reader.position().recent.iter().map(|r| r.0).collect();
    assert!(heights.windows(2).all(|w| w[0] < w[1]), "{heights:?}");
}

#[tokio::test]
async fn message_events_are_decoded_from_any_caller() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let input = doMessageCall {
        msgtype: "STORE_IPFS".to_owned(),
        msgcontent: CID.to_owned(),
    }
    .abi_encode();
    let receipt = setup.anvil.call(USER, setup.contract, input).await;
    assert!(receipt.status());

    let (events, ignored) = read_all(&mut setup.reader(setup.config())).await;
    assert_eq!(ignored, 0);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].emitter, setup.anvil.key(USER).address());
    assert_eq!(events[0].tx_hash, receipt.transaction_hash);
    assert_eq!(
        events[0].kind,
        EventKind::Message {
            msgtype: "STORE_IPFS".to_owned(),
            msgcontent: CID.to_owned()
        }
    );

    let EventKind::Message {
        msgtype,
        msgcontent,
    } = &events[0].kind
    else {
        unreachable!()
    };
    assert_eq!(
        ContractMessage::parse(msgtype, msgcontent, &Limits::default()).unwrap(),
        ContractMessage::StoreIpfs {
            cid: CID.to_owned()
        }
    );

    let mut config = setup.config();
    config.read_message_events = false;
    let (events, ignored) = read_all(&mut setup.reader(config)).await;
    assert_eq!((events.len(), ignored), (0, 1));
}

#[tokio::test]
async fn small_windows_read_every_event_in_order() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let writer = setup.writer(PACKER);
    let mut sent = Vec::new();
    for i in 0..5 {
        setup.anvil.mine(3).await;
        let payload = offchain_payload(&format!("{CID}{i}"), None).unwrap();
        sent.push(writer.emit(&payload).await.unwrap().tx_hash);
    }
    let head = setup.anvil.head().await;
    let mut config = setup.config();
    config.max_block_range = 3;
    let mut reader = setup.reader(config);
    let mut windows = 0;
    let mut events = Vec::new();
    loop {
        match reader.step().await.unwrap() {
            Step::Events {
                from,
                to,
                events: found,
                ..
            } => {
                assert!(to - from < 3);
                windows += 1;
                events.extend(found);
            }
            Step::UpToDate { .. } => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(windows, (head + 1).div_ceil(3));
    let read: Vec<_> = events.iter().map(|e| e.tx_hash).collect();
    assert_eq!(read, sent);
}

#[tokio::test]
async fn the_window_is_halved_when_the_rpc_refuses_it() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let writer = setup.writer(PACKER);
    let mut sent = Vec::new();
    for _ in 0..4 {
        setup.anvil.mine(5).await;
        sent.push(
            writer
                .emit(&offchain_payload(CID, None).unwrap())
                .await
                .unwrap()
                .tx_hash,
        );
    }
    // An RPC that refuses windows over 4 blocks, as Infura refuses too many results.
    let relay = common::LimitingRelay::start(setup.anvil.url(), 4).await;
    let mut config = setup.config();
    config.rpc_url = relay.url.clone();
    config.max_block_range = 64;
    let mut reader = setup.reader(config);
    let first = reader.step().await.unwrap();
    // 64 → 32 → 16 → 8 → 4: four refusals, then a 4-block window.
    assert_eq!(relay.refused(), 4);
    let Step::Events { from, to, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!((from, to), (0, 3));
    // After a success the window grows back (8 → refused → 4 ...), and all events arrive.
    let (mut events, _) = read_all(&mut reader).await;
    if let Step::Events { events: found, .. } = first {
        events.splice(0..0, found);
    }
    assert_eq!(events.iter().map(|e| e.tx_hash).collect::<Vec<_>>(), sent);

    // With the window at one block and the RPC still refusing, the error is returned.
    let relay = common::LimitingRelay::start(setup.anvil.url(), 0).await;
    let mut config = setup.config();
    config.rpc_url = relay.url.clone();
    let err = setup.reader(config).step().await.unwrap_err();
    assert!(
        err.to_string().contains("-32005") || err.to_string().contains("more than"),
        "{err}"
    );
}

#[tokio::test]
async fn hostile_payloads_on_chain_give_errors() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    // The packer's writer allows more than the reader's limit, to put a huge string on chain.
    let mut loose = setup.config();
    loose.limits.max_event_payload_bytes = 200_000;
    let writer = Writer::new(&loose, setup.anvil.key(PACKER))
        .unwrap()
        .with_receipt_poll(std::time::Duration::from_millis(50));
    let huge = format!(
        r#"{{"protocol":"aleph","version":1,"content":{{"messages":[{{"x":"{}"}}]}}}}"#,
        "a".repeat(100_000)
    );
    let hostile = [
        "not json".to_owned(),
        format!(r#"{{"protocol":"bitcoin","version":1,"content":"{CID}"}}"#),
        format!(r#"{{"protocol":"aleph-offchain","version":7,"content":"{CID}"}}"#),
        huge.clone(),
    ];
    for payload in &hostile {
        writer.emit(payload).await.unwrap();
    }
    let mut config = setup.config();
    config.limits.max_event_payload_bytes = 4096;
    let limits = config.limits.clone();
    let (events, _) = read_all(&mut setup.reader(config)).await;
    assert_eq!(events.len(), 4);
    let errors: Vec<PayloadError> = events
        .iter()
        .map(|event| match &event.kind {
            EventKind::Sync(text) => SyncPayload::parse(text, &limits).unwrap_err(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(matches!(errors[0], PayloadError::BadJson(_)));
    assert_eq!(
        errors[1],
        PayloadError::UnknownProtocol("bitcoin".to_owned())
    );
    assert!(matches!(
        errors[2],
        PayloadError::UnsupportedVersion { version: 7, .. }
    ));
    assert_eq!(
        errors[3],
        PayloadError::TooLarge {
            size: huge.len(),
            limit: 4096
        }
    );

    // Our own writer refuses to emit what the readers' limit refuses.
    match setup.writer(PACKER).submit(&"x".repeat(300_000)).await {
        Err(WriterError::PayloadTooLarge { size: 300_000, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_rpc_answer_is_refused_not_read() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    // One 20 KB payload makes every eth_getLogs answer that covers its block larger than
    // the 8 KiB this reader accepts (block headers, about 2 KB, still fit).
    let big = format!(
        r#"{{"protocol":"aleph","version":1,"content":{{"messages":[{{"x":"{}"}}]}}}}"#,
        "b".repeat(20_000)
    );
    let emitted = setup.writer(PACKER).emit(&big).await.unwrap();
    let mut config = setup.config();
    config.max_response_bytes = 8 * 1024;
    config.max_block_range = 16;
    let mut reader = setup.reader(config);
    // Treated like "too many results": the window is halved until the blocks below the big
    // event are read, then down to the event's block alone, which still does not fit.
    let err = loop {
        match reader.step().await {
            Ok(Step::Events { events, .. }) => assert_eq!(events, vec![]),
            Ok(other) => panic!("{other:?}"),
            Err(err) => break err,
        }
    };
    assert!(
        err.to_string().contains("larger than max_response_bytes"),
        "{err}"
    );
    assert_eq!(reader.window(), 1);
    assert_eq!(
        reader.position().synced_height,
        Some(emitted.block_height - 1)
    );
}

#[tokio::test]
async fn the_gas_price_ceiling_refuses_to_send() {
    // Every block's base fee is 200 gwei: the reference's 150 gwei ceiling refuses.
    let Some(setup) = Setup::start(&["--base-fee", "200000000000"]).await else {
        return;
    };
    let writer = setup.writer(PACKER);
    let before = writer.nonce_state().await.unwrap();
    match writer.emit(&offchain_payload(CID, None).unwrap()).await {
        Err(WriterError::Fee(FeeError { price, ceiling })) => {
            assert_eq!(ceiling, 150_000_000_000);
            assert!(price >= 400_000_000_000, "{price}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(writer.nonce_state().await.unwrap(), before);

    // Under a higher ceiling the same payload goes through at the reference's fee.
    let mut config = setup.config();
    config.packing.as_mut().unwrap().max_gas_price_gwei = 1_000;
    let writer = Writer::new(&config, setup.anvil.key(PACKER)).unwrap();
    let fees = writer.fees().await.unwrap();
    assert!(fees.max_price() >= 400_000_000_000);
    let emitted = writer
        .emit(&offchain_payload(CID, None).unwrap())
        .await
        .unwrap();
    assert!(emitted.effective_gas_price >= 200_000_000_000);
}

#[tokio::test]
async fn a_pending_transaction_shows_in_the_nonce_state_until_mined_or_dropped() {
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let _: serde_json::Value = setup
        .anvil
        .rpc("evm_setAutomine", serde_json::json!([false]))
        .await;
    let writer = setup.writer(PACKER);
    let payload = offchain_payload(CID, None).unwrap();
    let first = writer.submit(&payload).await.unwrap();
    assert_eq!(first.nonce, 0);
    let state = writer.nonce_state().await.unwrap();
    assert_eq!(
        (state.latest, state.pending, state.pending_gap()),
        (0, 1, 1)
    );
    assert_eq!(writer.receipt(first.tx_hash).await.unwrap(), None);

    // Dropped from the pool: no receipt, and the pending count falls back, so the caller
    // sends the batch again.
    let _: serde_json::Value = setup
        .anvil
        .rpc("anvil_dropTransaction", serde_json::json!([first.tx_hash]))
        .await;
    let state = writer.nonce_state().await.unwrap();
    assert_eq!(state.pending_gap(), 0);
    assert_eq!(writer.receipt(first.tx_hash).await.unwrap(), None);

    let again = writer.submit(&payload).await.unwrap();
    assert_eq!(again.nonce, 0);
    setup.anvil.mine(1).await;
    let emitted = writer.wait(again.tx_hash).await.unwrap();
    assert_eq!(writer.nonce_state().await.unwrap().pending_gap(), 0);
    assert_eq!(writer.receipt(again.tx_hash).await.unwrap(), Some(emitted));
}

#[tokio::test]
async fn do_emit_calldata_is_the_abi_call() {
    // No chain needed: the calldata the writer sends starts with doEmit's selector.
    let call = doEmitCall {
        message: "x".to_owned(),
    };
    let data = call.abi_encode();
    assert_eq!(&data[..4], &doEmitCall::SELECTOR);
    assert_eq!(
        doEmitCall::abi_decode(&data).unwrap().message,
        "x".to_owned()
    );
}

#[tokio::test]
async fn a_proof_is_checked_against_the_chain_alone() {
    use raleph_chain::verify::{Claim, VerifyError, check};
    let Some(setup) = Setup::start(&[]).await else {
        return;
    };
    let items: Vec<String> = (0..5).map(|i| format!("{:064x}", i + 10)).collect();
    let tree = MerkleTree::new(&items).unwrap();
    let payload = offchain_payload(CID, Some(tree.root())).unwrap();
    let emitted = setup.writer(PACKER).emit(&payload).await.unwrap();
    setup.anvil.mine(2).await;
    let (events, _) = read_all(&mut setup.reader(setup.config())).await;
    let log_index = events[0].log_index;
    let proof = tree.proof(3).unwrap();
    let claim = Claim {
        chain: raleph_message::Chain::Eth,
        item_hash: &items[3],
        tx_hash: emitted.tx_hash,
        log_index,
        archive: CID,
        merkle_root: tree.root(),
        proof: &proof,
    };
    let url = setup.anvil.url();
    let verified = check(&url, &claim, Some(setup.contract)).await.unwrap();
    assert_eq!(verified.height, emitted.block_height);
    assert_eq!(verified.block_hash, emitted.block_hash);
    assert_eq!(verified.emitter, setup.anvil.key(PACKER).address());
    assert_eq!(
        verified.confirmations, 3,
        "its block and the two mined on top"
    );
    // Another message with this path, another root, another contract, another log: refused.
    let other = Claim {
        item_hash: &items[2],
        ..claim.clone()
    };
    assert!(matches!(
        check(&url, &other, None).await,
        Err(VerifyError::BadProof)
    ));
    let forged_tree = MerkleTree::new(&items[..4]).unwrap();
    let forged_proof = forged_tree.proof(3).unwrap();
    let forged = Claim {
        merkle_root: forged_tree.root(),
        proof: &forged_proof,
        ..claim.clone()
    };
    assert!(matches!(
        check(&url, &forged, None).await,
        Err(VerifyError::OtherPayload(_))
    ));
    assert!(matches!(
        check(&url, &claim, Some(Address::repeat_byte(7))).await,
        Err(VerifyError::NotASyncEvent(_))
    ));
    let wrong_log = Claim {
        log_index: log_index + 1,
        ..claim.clone()
    };
    assert!(matches!(
        check(&url, &wrong_log, None).await,
        Err(VerifyError::NoSuchLog(_))
    ));
    let unmined = Claim {
        tx_hash: alloy_primitives::B256::repeat_byte(9),
        ..claim
    };
    assert!(matches!(
        check(&url, &unmined, None).await,
        Err(VerifyError::NotMined)
    ));
}
