//! The AlephSync contract's ABI and the decoding of its logs.
//!
//! The contract (`contracts/AlephSync.sol`, the reference's ABI) indexes no parameter, so a
//! log's only topic is its event's signature hash and the emitter is the `addr` field of the
//! data, as the reference's readers take it.

use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_eth::Log;
use alloy_sol_types::{SolEvent, sol};
use raleph_message::Chain;
use serde::{Deserialize, Serialize};

sol! {
    /// A sync payload anchored by `doEmit`.
    event SyncEvent(uint256 timestamp, address addr, string message);
    /// A message published through `doMessage` (the `smart-contract` protocol).
    event MessageEvent(uint256 timestamp, address addr, string msgtype, string msgcontent);

    function doEmit(string message);
    function doMessage(string msgtype, string msgcontent);
}

/// topic0 of `SyncEvent(uint256,address,string)`.
pub const SYNC_EVENT_TOPIC: B256 = SyncEvent::SIGNATURE_HASH;
/// topic0 of `MessageEvent(uint256,address,string,string)`.
pub const MESSAGE_EVENT_TOPIC: B256 = MessageEvent::SIGNATURE_HASH;

/// What an event says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A `SyncEvent`: the payload string, to be parsed with
    /// [`SyncPayload::parse`](crate::payload::SyncPayload::parse) (kept unparsed here so the
    /// caller can record a refused payload with its reason).
    Sync(String),
    /// A `MessageEvent`: one `smart-contract` message.
    Message { msgtype: String, msgcontent: String },
}

/// One accepted event of the sync contract, with where it was mined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEvent {
    pub chain: Chain,
    pub height: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub log_index: u64,
    /// The block's time as the contract saw it (`block.timestamp`), seconds since the epoch.
    pub time: u64,
    /// The contract's caller (`msg.sender`).
    pub emitter: Address,
    pub kind: EventKind,
}

/// Why a log of the contract was not turned into an event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("log has no topic0 or an unknown one")]
    UnknownTopic,
    #[error("log data does not decode as {event}: {reason}")]
    BadData { event: &'static str, reason: String },
    #[error("log is pending (no {0})")]
    Pending(&'static str),
    #[error("event timestamp {0} does not fit in 64 bits")]
    BadTimestamp(U256),
}

/// Decodes one log of the sync contract. The log's address is not checked here (the reader
/// filters by address in its request).
pub fn decode_log(chain: Chain, log: &Log) -> Result<ChainEvent, DecodeError> {
    let topic = log.topic0().ok_or(DecodeError::UnknownTopic)?;
    let data = &log.inner.data.data;
    let (timestamp, emitter, kind) = if *topic == SYNC_EVENT_TOPIC {
        let event = SyncEvent::abi_decode_data(data).map_err(|e| DecodeError::BadData {
            event: "SyncEvent",
            reason: e.to_string(),
        })?;
        (event.0, event.1, EventKind::Sync(event.2))
    } else if *topic == MESSAGE_EVENT_TOPIC {
        let event = MessageEvent::abi_decode_data(data).map_err(|e| DecodeError::BadData {
            event: "MessageEvent",
            reason: e.to_string(),
        })?;
        (
            event.0,
            event.1,
            EventKind::Message {
                msgtype: event.2,
                msgcontent: event.3,
            },
        )
    } else {
        return Err(DecodeError::UnknownTopic);
    };
    let time = u64::try_from(timestamp).map_err(|_| DecodeError::BadTimestamp(timestamp))?;
    Ok(ChainEvent {
        chain,
        height: log
            .block_number
            .ok_or(DecodeError::Pending("block number"))?,
        block_hash: log.block_hash.ok_or(DecodeError::Pending("block hash"))?,
        tx_hash: log
            .transaction_hash
            .ok_or(DecodeError::Pending("transaction hash"))?,
        log_index: log.log_index.ok_or(DecodeError::Pending("log index"))?,
        time,
        emitter,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, LogData};
    use alloy_sol_types::SolCall;
    use proptest::prelude::*;

    /// The values `shared/spec/anchoring.md` gives (computed there with `cast keccak`).
    #[test]
    fn topics_match_the_reference_contract() {
        assert_eq!(
            SYNC_EVENT_TOPIC,
            "0x2cc768a3de0c950ea2a38e55a9b143cc6fd5a8eec27e36993b542fb16ab591e1"
                .parse::<B256>()
                .unwrap()
        );
        assert_eq!(
            MESSAGE_EVENT_TOPIC,
            "0x548eda6c65f4bd05085e450712b22cfb19c58816b453f69294a94e78db9ab32b"
                .parse::<B256>()
                .unwrap()
        );
    }

    /// The committed artifact's ABI is the one decoded here: same event and function
    /// signatures, nothing indexed.
    #[test]
    fn the_artifact_has_this_abi() {
        let artifact: serde_json::Value =
            serde_json::from_str(include_str!("../../../contracts/AlephSync.json")).unwrap();
        let mut signatures: Vec<String> = artifact["abi"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let inputs: Vec<&str> = item["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|input| {
                        assert!(!input["indexed"].as_bool().unwrap_or(false));
                        input["type"].as_str().unwrap()
                    })
                    .collect();
                format!("{}({})", item["name"].as_str().unwrap(), inputs.join(","))
            })
            .collect();
        let mut expected = [
            doEmitCall::SIGNATURE,
            doMessageCall::SIGNATURE,
            MessageEvent::SIGNATURE,
            SyncEvent::SIGNATURE,
        ];
        signatures.sort();
        expected.sort();
        assert_eq!(signatures, expected);
    }

    fn log_with(topic: B256, data: Vec<u8>) -> Log {
        Log {
            inner: alloy_primitives::Log {
                address: Address::ZERO,
                data: LogData::new_unchecked(vec![topic], Bytes::from(data)),
            },
            block_hash: Some(B256::repeat_byte(1)),
            block_number: Some(7),
            block_timestamp: None,
            transaction_hash: Some(B256::repeat_byte(2)),
            transaction_index: Some(0),
            log_index: Some(3),
            removed: false,
        }
    }

    #[test]
    fn decodes_both_events() {
        let emitter = Address::repeat_byte(9);
        let sync = SyncEvent {
            timestamp: U256::from(1_700_000_000u64),
            addr: emitter,
            message: "hello".to_owned(),
        };
        let event =
            decode_log(Chain::Eth, &log_with(SYNC_EVENT_TOPIC, sync.encode_data())).unwrap();
        assert_eq!(event.kind, EventKind::Sync("hello".to_owned()));
        assert_eq!(
            (event.height, event.log_index, event.time),
            (7, 3, 1_700_000_000)
        );
        assert_eq!(event.emitter, emitter);

        let message = MessageEvent {
            timestamp: U256::MAX,
            addr: emitter,
            msgtype: "POST".to_owned(),
            msgcontent: "{}".to_owned(),
        };
        assert_eq!(
            decode_log(
                Chain::Eth,
                &log_with(MESSAGE_EVENT_TOPIC, message.encode_data())
            ),
            Err(DecodeError::BadTimestamp(U256::MAX))
        );
        // A SyncEvent's data under the MessageEvent topic does not decode.
        assert!(matches!(
            decode_log(
                Chain::Eth,
                &log_with(MESSAGE_EVENT_TOPIC, sync.encode_data())
            ),
            Err(DecodeError::BadData { .. })
        ));
        assert_eq!(
            decode_log(Chain::Eth, &log_with(B256::ZERO, sync.encode_data())),
            Err(DecodeError::UnknownTopic)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_log_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), which in any::<bool>()) {
            let topic = if which { SYNC_EVENT_TOPIC } else { MESSAGE_EVENT_TOPIC };
            let _ = decode_log(Chain::Eth, &log_with(topic, data));
        }

        #[test]
        fn sync_events_round_trip(message in ".{0,200}", t in any::<u64>(), addr in any::<[u8; 20]>()) {
            let event = SyncEvent { timestamp: U256::from(t), addr: Address::from(addr), message: message.clone() };
            let decoded = decode_log(Chain::Bsc, &log_with(SYNC_EVENT_TOPIC, event.encode_data())).unwrap();
            prop_assert_eq!(decoded.kind, EventKind::Sync(message));
            prop_assert_eq!(decoded.time, t);
            prop_assert_eq!(decoded.emitter, Address::from(addr));
        }
    }
}
