#!/usr/bin/env python3
"""Generate tests/vectors/signatures.json with the real Python Aleph libraries.

Every vector is signed by aleph-sdk-python 2.4.0 (or, where the SDK has no
signer or a broken one, by the libraries the reference node verifies with),
so raleph-crypto is checked against the network's own implementations.

Setup (once; versions are pinned in scripts/requirements-vectors.txt):

    python3 -m venv /root/.cache/raleph/venv-vectors
    /root/.cache/raleph/venv-vectors/bin/pip install -r scripts/requirements-vectors.txt
    /root/.cache/raleph/venv-vectors/bin/python scripts/gen-signature-vectors.py

The output is checked in; CI does not regenerate it. sr25519 (DOT) signatures
are randomised, so regenerating changes those entries; all other schemes are
deterministic.
"""

import asyncio
import base64
import hashlib
import json
import struct
import sys
from importlib.metadata import version
from pathlib import Path

import base58
import bech32
from aleph.sdk.chains import cosmos as sdk_cosmos
from aleph.sdk.chains import nuls1 as sdk_nuls1
from aleph.sdk.chains import nuls2 as sdk_nuls2
from aleph.sdk.chains.common import get_verification_buffer
from aleph.sdk.chains.ethereum import ETHAccount
from aleph.sdk.chains.solana import SOLAccount
from aleph.sdk.chains.substrate import DOTAccount
from aleph.sdk.chains.svm import SVMAccount
from aleph.sdk.chains.tezos import TezosAccount
from aleph_message.models import Chain
from coincurve import PrivateKey
from cosmospy._wallet import privkey_to_pubkey, pubkey_to_address
from pytezos_crypto.key import Key as TezosKey

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "signatures.json"
SDK_VERSION = "2.4.0"

# EVM chains the reference verifies with its EVM/Ethereum verifier.
EVM_CHAINS = [
    "ETH", "ETHERLINK", "ARB", "BASE", "BLAST", "BOB", "BSC", "CYBER", "FRAX",
    "HYPE", "INK", "LENS", "LINEA", "LISK", "METIS", "MODE", "NEO", "OP", "POL",
    "SONIC", "UNICHAIN", "WLD", "ZORA",
]

# The substrate development phrase (public, used by every substrate test suite).
DOT_MNEMONIC = "bottom drive obey lake curtain smoke basket hold race lonely fit walk"

vectors = []


def item_hash(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def add(chain, sender, mtype, ihash, time, signature, note):
    vectors.append(
        {
            "chain": chain,
            "sender": sender,
            "type": mtype,
            "item_hash": ihash,
            "time": time,
            "signature": signature,
            "note": note,
        }
    )


def sdk_sign(account, chain, mtype, ihash, time, note, sender=None):
    """Signs through the SDK's own `sign_message`, as the SDK/CLI do."""
    message = {"chain": chain, "type": mtype, "item_hash": ihash, "time": time}
    if sender is not None:
        message["sender"] = sender
    signed = asyncio.run(account.sign_message(message))
    add(chain, signed["sender"], mtype, ihash, time, signed["signature"], note)
    return signed


def buffer_of(chain, sender, mtype, ihash) -> bytes:
    return get_verification_buffer(
        {"chain": chain, "sender": sender, "type": mtype, "item_hash": ihash}
    )


def spec_vectors():
    """The two vectors of protocol.md section 3.3; regenerated and compared."""
    eth = ETHAccount(bytes([1] * 32))
    s = sdk_sign(
        eth, "ETH", "POST",
        "acdcf62bccef79ac2df0627c0e1f82eb2a1ef8911e2a45003f61724d96f38be7",
        1700000000.0, "protocol.md 3.3 ETH vector (ETHAccount, key 0x01*32)",
    )
    assert s["sender"] == "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1"
    assert s["signature"] == (
        "0xe0c1fc646fae42532a805444e572bf1e1eeac801d74e34b50dca87d48b78eb17379e3ce09392"
        "8aa67f0491a143925151b469edf07aff0c2804cd811273f1897f1c"
    )
    sol = SOLAccount(bytes([2] * 32))
    s = sdk_sign(
        sol, "SOL", "POST",
        "f657fb968187e1ddb27c1c8fa73dae90cb291454de613e9b438b6e390373b716",
        1700000000.0, "protocol.md 3.3 SOL vector (SOLAccount, seed 0x02*32)",
    )
    assert s["sender"] == "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu"
    assert s["signature"] == (
        '{"publicKey": "9hSR6S7WPtxmTojgo6GG3k4yDPecgJY292j7xrsUGWBu", "signature": '
        '"58u7WoMoPxX38zesr5f5pmKLksb2j9Kc3ECT3fDnAaMgyrFNH5LVQxLjkXd3ATi4WmhTmPUwF1EzLRBUzuB3dMjw"}'
    )


def evm_vectors():
    eth = ETHAccount(bytes([0x11] * 32))
    for i, chain in enumerate(EVM_CHAINS):
        mtype = ["POST", "AGGREGATE", "STORE", "PROGRAM", "INSTANCE", "FORGET"][i % 6]
        sdk_sign(eth, chain, mtype, item_hash(f"evm-{chain}"), 1700000100.0 + i,
                 f"ETHAccount.sign_message on {chain}")
    # The SDK always writes 0x and v = 27/28; other wallets may not.
    sender = eth.get_address()
    ihash = item_hash("evm-variants")
    sig = asyncio.run(eth.sign_raw(buffer_of("ETH", sender.lower(), "POST", ihash)))
    add("ETH", sender.lower(), "POST", ihash, 1700000200.0, "0x" + sig.hex(),
        "ETHAccount.sign_raw over a buffer with the sender in lower case")
    sig = asyncio.run(eth.sign_raw(buffer_of("ETH", sender, "POST", ihash)))
    add("ETH", sender, "POST", ihash, 1700000200.0, sig.hex(),
        "ETHAccount.sign_raw, hex written without 0x prefix")
    v01 = sig[:64] + bytes([sig[64] - 27])
    add("ETH", sender, "POST", ihash, 1700000200.0, "0x" + v01.hex(),
        "ETHAccount.sign_raw with v rewritten from 27/28 to 0/1 (eth_account accepts both)")


def solana_vectors():
    sol = SOLAccount(bytes([0x22] * 32))
    for i, mtype in enumerate(["POST", "AGGREGATE", "STORE"]):
        sdk_sign(sol, "SOL", mtype, item_hash(f"sol-{mtype}"), 1700000300.0 + i,
                 "SOLAccount.sign_message")
    es = SVMAccount(bytes([0x23] * 32), chain=Chain.ECLIPSE)
    for i, mtype in enumerate(["POST", "INSTANCE"]):
        sdk_sign(es, "ES", mtype, item_hash(f"es-{mtype}"), 1700000400.0 + i,
                 "SVMAccount(chain=ES).sign_message")


def substrate_vectors():
    dot = DOTAccount(DOT_MNEMONIC)
    s = sdk_sign(dot, "DOT", "POST", item_hash("dot-post"), 1700000500.0,
                 "DOTAccount.sign_message (data hex without 0x, as the SDK writes it)")
    s = sdk_sign(dot, "DOT", "AGGREGATE", item_hash("dot-aggregate"), 1700000501.0,
                 "DOTAccount.sign_message, then data re-written with a 0x prefix (polkadot-js form)")
    sig = json.loads(vectors[-1]["signature"])
    vectors[-1]["signature"] = json.dumps({"curve": sig["curve"], "data": "0x" + sig["data"]})
    sender = s["sender"]
    ihash = item_hash("dot-wrapped")
    wrapped = b"<Bytes>" + buffer_of("DOT", sender, "STORE", ihash) + b"</Bytes>"
    sig = asyncio.run(dot.sign_raw(wrapped))
    add("DOT", sender, "STORE", ihash, 1700000502.0,
        json.dumps({"curve": "sr25519", "data": "0x" + sig.hex()}),
        "substrate-interface Keypair.sign over <Bytes>buffer</Bytes> (polkadot-js extension form)")


def cosmos_vectors():
    # CSDKAccount.sign_message in SDK 2.4.0 crashes (it .decode()s the raw
    # public key bytes), so the document, the signature and the address come from
    # the SDK's and cosmospy's functions, assembled like sign_message intends.
    for hrp, key, label in [("cosmos", bytes([0x33] * 32), "cosmos"), ("osmo", bytes([0x34] * 32), "osmo")]:
        account = sdk_cosmos.CSDKAccount(private_key=key, hrp=hrp)
        pub = privkey_to_pubkey(key)
        sender = pubkey_to_address(pub, hrp=hrp)
        for i, mtype in enumerate(["POST", "STORE"]):
            ihash = item_hash(f"csdk-{label}-{mtype}")
            message = {"chain": "CSDK", "sender": sender, "type": mtype, "item_hash": ihash}
            doc = sdk_cosmos.get_verification_string(message)
            sig = asyncio.run(account.sign_raw(doc.encode("utf-8")))
            signature = json.dumps(
                {
                    "signature": sig.decode("utf-8"),
                    "pub_key": {"type": "tendermint/PubKeySecp256k1", "value": base64.b64encode(pub).decode()},
                    "account_number": "0",
                    "sequence": "0",
                }
            )
            add("CSDK", sender, mtype, ihash, 1700000600.0 + i, signature,
                f"CSDKAccount.sign_raw over aleph.sdk.chains.cosmos.get_verification_string, hrp {hrp}")


def nuls_vectors():
    for chain_id, key in [(1, bytes([0x44] * 32)), (2, bytes([0x45] * 32))]:
        account = sdk_nuls2.NULSAccount(private_key=key, chain_id=chain_id)
        for i, mtype in enumerate(["POST", "AGGREGATE"]):
            sdk_sign(account, "NULS2", mtype, item_hash(f"nuls2-{chain_id}-{mtype}"),
                     1700000700.0 + i, f"nuls2 NULSAccount(chain_id={chain_id}).sign_message")
    account = sdk_nuls1.NULSAccount(private_key=bytes([0x46] * 32))
    for i, mtype in enumerate(["POST", "STORE"]):
        sdk_sign(account, "NULS", mtype, item_hash(f"nuls1-{mtype}"), 1700000800.0 + i,
                 "nuls1 NULSAccount(chain_id=8964).sign_message (legacy NULS)")


def avalanche_vectors():
    # The SDK signs AVAX with its Ethereum account, which the reference rejects;
    # these follow pyaleph chains/avalanche.py with coincurve, as the TS SDK does.
    key = PrivateKey(bytes([0x55] * 32))
    ripe = hashlib.new("ripemd160", hashlib.sha256(key.public_key.format()).digest()).digest()
    sender = "X-" + bech32.bech32_encode("avax", bech32.convertbits(ripe, 8, 5))
    for i, mtype in enumerate(["POST", "AGGREGATE"]):
        ihash = item_hash(f"avax-{mtype}")
        buffer = buffer_of("AVAX", sender, mtype, ihash)
        message = b"\x1aAvalanche Signed Message:\n" + struct.pack(">I", len(buffer)) + buffer
        sig = key.sign_recoverable(message)  # sha256, r || s || recid
        cb58 = base58.b58encode(sig + hashlib.sha256(sig).digest()[-4:]).decode()
        add("AVAX", sender, mtype, ihash, 1700000900.0 + i, cb58,
            "coincurve sign_recoverable per pyaleph chains/avalanche.py (cb58)")


def micheline(buffer: bytes, time: float, dapp_url: str) -> bytes:
    """pyaleph chains/tezos.py micheline_verification_buffer (envelope time)."""
    import datetime as dt

    d = dt.datetime.fromtimestamp(time, dt.timezone.utc)
    stamp = f"{d.strftime('%Y-%m-%d')}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}.{d.microsecond // 1000:03d}Z"
    payload = b" ".join((b"Tezos Signed Message:", dapp_url.encode(), stamp.encode(), buffer))
    return b"\x05" + b"\x01\x00" + str(len(payload.hex())).encode() + payload


def tezos_vectors():
    account = TezosAccount(bytes([0x66] * 32))
    for i, mtype in enumerate(["POST", "STORE"]):
        sdk_sign(account, "TEZOS", mtype, item_hash(f"tezos-{mtype}"), 1700001000.0 + i,
                 "TezosAccount.sign_message (ed25519, raw)")
    for curve, name in [(b"sp", "secp256k1"), (b"p2", "p256")]:
        key = TezosKey.from_secret_exponent(bytes([0x67] * 32), curve=curve)
        sender = key.public_key_hash()
        ihash = item_hash(f"tezos-{name}")
        sig = key.sign(buffer_of("TEZOS", sender, "POST", ihash))
        add("TEZOS", sender, "POST", ihash, 1700001100.0,
            json.dumps({"publicKey": key.public_key(), "signature": sig}),
            f"pytezos-crypto Key.sign ({name}, raw)")
    key = TezosKey.from_secret_exponent(bytes([0x68] * 32))
    sender = key.public_key_hash()
    ihash = item_hash("tezos-generic")
    sig = key.sign(buffer_of("TEZOS", sender, "AGGREGATE", ihash), generic=True)
    add("TEZOS", sender, "AGGREGATE", ihash, 1700001200.0,
        json.dumps({"publicKey": key.public_key(), "signature": sig}),
        "pytezos-crypto Key.sign(generic=True): 'sig' prefix, ed25519")
    for i, (time, dapp) in enumerate([(1663944079.029, None), (1700001300.0005, "example.org")]):
        ihash = item_hash(f"tezos-micheline-{i}")
        signed = micheline(buffer_of("TEZOS", sender, "POST", ihash), time, dapp or "aleph.im")
        sig = key.sign(signed)
        body = {"signingType": "micheline", "signature": sig, "publicKey": key.public_key()}
        if dapp:
            body["dAppUrl"] = dapp
        add("TEZOS", sender, "POST", ihash, time, json.dumps(body),
            "pytezos-crypto Key.sign over the pyaleph micheline buffer (envelope time)")


def main():
    if version("aleph-sdk-python") != SDK_VERSION:
        sys.exit(f"need aleph-sdk-python {SDK_VERSION}, found {version('aleph-sdk-python')}")
    spec_vectors()
    evm_vectors()
    solana_vectors()
    substrate_vectors()
    cosmos_vectors()
    nuls_vectors()
    avalanche_vectors()
    tezos_vectors()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(vectors, indent=2) + "\n")
    print(f"wrote {len(vectors)} vectors to {OUT}")


if __name__ == "__main__":
    main()
