// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.0;

/// raleph's sync contract, ABI-compatible with the reference node's: a node anchors a batch of
/// messages by emitting a `SyncEvent` whose string is an `aleph`/`aleph-offchain` payload, and
/// any account may emit a `MessageEvent` (the `smart-contract` protocol). The contract keeps
/// no state and checks nobody: readers decide which emitters they trust.
///
/// No parameter is indexed, so each log's only topic is the event signature hash, and the
/// emitter is read from the decoded data, as the reference's readers do.
contract AlephSync {
    event SyncEvent(uint256 timestamp, address addr, string message);
    event MessageEvent(uint256 timestamp, address addr, string msgtype, string msgcontent);

    /// Anchors `message` (a sync payload) with the block's time and the caller.
    function doEmit(string calldata message) external {
        emit SyncEvent(block.timestamp, msg.sender, message);
    }

    /// Publishes one message of type `msgtype` with body `msgcontent` for the readers.
    function doMessage(string calldata msgtype, string calldata msgcontent) external {
        emit MessageEvent(block.timestamp, msg.sender, msgtype, msgcontent);
    }
}
