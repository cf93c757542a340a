"""Signatures: Solana-signed messages are processed; tampered signatures are rejected and
never become visible, and do not block the genuine message."""

from __future__ import annotations

import json
import time

import base58
import pytest
from aleph_message.models import Chain, MessageType, PostContent, PostMessage
from aleph_message.status import MessageStatus

from aleph.sdk.chains.common import get_verification_buffer
from aleph.sdk.client import AuthenticatedAlephHttpClient
from aleph.sdk.exceptions import MessageNotFoundError
from aleph.sdk.query.filters import MessageFilter, PostFilter

from compat_helpers import new_eth_account, new_sol_account, post_message_raw, wire_message


@pytest.mark.timeout(60)
async def test_solana_post_processed(node_url, client, sol_account, channel):
    address = sol_account.get_address()
    async with AuthenticatedAlephHttpClient(account=sol_account, api_server=node_url) as ac:
        message, status = await ac.create_post(
            post_content={"from": "solana", "n": 7}, post_type="compat-sol", channel=channel, sync=True
        )
        assert status == MessageStatus.PROCESSED
        assert message.chain == Chain.SOL
        sig = json.loads(message.signature)  # {"publicKey": <base58>, "signature": <base58>}
        assert sig["publicKey"] == address

        agg, status = await ac.create_aggregate(key="compat-sol", content={"sol": True}, channel=channel, sync=True)
        assert status == MessageStatus.PROCESSED

    fetched = await client.get_message(message.item_hash, message_type=PostMessage)
    assert fetched.chain == Chain.SOL
    assert fetched.sender == address
    assert fetched.signature == message.signature
    assert fetched.content.content == {"from": "solana", "n": 7}

    posts = await client.get_posts(post_filter=PostFilter(addresses=[address]))
    assert [p.item_hash for p in posts.posts] == [message.item_hash]
    assert posts.posts[0].chain == Chain.SOL
    assert posts.posts[0].content == {"from": "solana", "n": 7}

    msgs = await client.get_messages(message_filter=MessageFilter(addresses=[address], chains=["SOL"]))
    assert {m.item_hash for m in msgs.messages} == {message.item_hash, agg.item_hash}
    assert await client.fetch_aggregate(address, "compat-sol") == {"sol": True}


# --------------------------------------------------------------------------------------
# tampered signatures, posted raw to /api/v0/messages with sync=true
# --------------------------------------------------------------------------------------


def _flip_hex(sig: str, pos: int = 20) -> str:
    c = sig[pos]
    return sig[:pos] + ("0" if c != "0" else "1") + sig[pos + 1:]


async def _tamper(variant: str, message: dict) -> dict:
    m = dict(message)
    if variant == "eth-flipped-byte":
        m["signature"] = _flip_hex(m["signature"])
    elif variant == "eth-signed-by-other-key":
        other = new_eth_account()
        m["signature"] = "0x" + (await other.sign_raw(get_verification_buffer(m))).hex()
    elif variant == "eth-sender-swapped":
        m["sender"] = new_eth_account().get_address()
    elif variant == "eth-garbage":
        m["signature"] = "0xdeadbeef"
    elif variant == "eth-null":
        m["signature"] = None
    elif variant == "sol-signed-by-other-key":
        other = new_sol_account()
        sig = await other.sign_raw(get_verification_buffer(m))
        # keeps the genuine publicKey, so only the signature bytes are wrong
        m["signature"] = json.dumps(
            {"publicKey": json.loads(m["signature"])["publicKey"], "signature": base58.b58encode(sig).decode()}
        )
    elif variant == "sol-other-public-key":
        other = new_sol_account()
        sig = await other.sign_raw(get_verification_buffer(m))
        # self-consistent signature of another key, but the sender is unchanged
        m["signature"] = json.dumps({"publicKey": other.get_address(), "signature": base58.b58encode(sig).decode()})
    else:
        raise AssertionError(variant)
    return m


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "variant",
    [
        "eth-flipped-byte",
        "eth-signed-by-other-key",
        "eth-sender-swapped",
        "eth-garbage",
        "eth-null",
        "sol-signed-by-other-key",
        "sol-other-public-key",
    ],
)
async def test_tampered_signature_rejected(node_url, client, http, channel, variant):
    account = new_sol_account() if variant.startswith("sol") else new_eth_account()
    async with AuthenticatedAlephHttpClient(account=account, api_server=node_url) as ac:
        content = PostContent(
            type="compat-forged", address=account.get_address(),
            content={"variant": variant, "t": time.time()}, time=time.time(),
        ).model_dump(exclude_none=True)
        signed = await ac.generate_signed_message(
            message_type=MessageType.post, content=content, channel=channel, allow_inlining=True
        )
    genuine = wire_message(signed)
    forged = await _tamper(variant, genuine)
    h = genuine["item_hash"]

    code, body = await post_message_raw(http, forged, sync=True)
    assert code == 422, (
        f"a message with a bad signature must be answered 422 (rejected) so that the SDK "
        f"reports REJECTED; got {code}: {body!r}\nrequest message: {json.dumps(forged)}"
    )
    if isinstance(body, dict) and "message_status" in body:
        assert body["message_status"] == "rejected", body

    # Never visible
    assert (await client.get_messages(message_filter=MessageFilter(hashes=[h]))).messages == []
    assert (await client.get_posts(post_filter=PostFilter(hashes=[h]))).posts == []
    assert (await client.get_messages(message_filter=MessageFilter(channels=[channel]))).messages == []
    try:
        status = await client.get_message_status(h)
    except MessageNotFoundError:
        status = None  # never stored at all: fine
    assert status in (None, MessageStatus.REJECTED), status
    if status == MessageStatus.REJECTED and variant != "eth-null":
        error = await client.get_message_error(h)
        assert error is not None and error["error_code"] == 1, f"expected INVALID_SIGNATURE (1): {error}"

    # The genuine message (same item_hash) is still accepted afterwards.
    code, body = await post_message_raw(http, genuine, sync=True)
    assert code == 200, f"genuine message after a forged copy: {code} {body!r}"
    assert body["message_status"] == "processed"
    posts = await client.get_posts(post_filter=PostFilter(hashes=[h]))
    assert [(p.item_hash, p.signature, p.sender) for p in posts.posts] == [
        (h, genuine["signature"], account.get_address())
    ]


@pytest.mark.timeout(30)
async def test_resubmitting_processed_message_is_200(node_url, http, eth_account, channel):
    """Re-broadcasting an already processed message with sync=true must answer 200 processed
    at once (the SDK re-broadcasts every natively uploaded STORE message)."""
    async with AuthenticatedAlephHttpClient(account=eth_account, api_server=node_url) as ac:
        message, status = await ac.create_post(
            post_content={"again": 1}, post_type="compat-dup", channel=channel, sync=True
        )
    assert status == MessageStatus.PROCESSED
    started = time.monotonic()
    code, body = await post_message_raw(http, wire_message(message), sync=True)
    assert code == 200, body
    assert body["message_status"] == "processed"
    assert body["publication_status"]["status"] in ("success", "warning")
    assert time.monotonic() - started < 10, "duplicate sync submission should not wait for a timeout"
