"""POST messages through the SDK: create, read back, amend, non-inline (storage) content."""

from __future__ import annotations

import hashlib
import json

import pytest
from aleph_message.models import ItemType, PostMessage
from aleph_message.status import MessageStatus

from aleph.sdk.query.filters import PostFilter
from aleph.sdk.types import StorageEnum

from compat_helpers import ts

# Non-ASCII on purpose: the SDK serialises with ensure_ascii (\u escapes) and hashes that
# exact string; the node must keep item_content byte-exact.
POST_BODY = {
    "title": "hello raleph",
    "body": "caf\u00e9 \u2615 \U0001F680",
    "n": 42,
    "ratio": 0.125,
    "nested": {"list": [1, "two", None, True], "empty": {}},
}


@pytest.mark.timeout(60)
async def test_create_post_sync_processed_and_listed(auth_client, client, eth_account, channel):
    message, status = await auth_client.create_post(
        post_content=POST_BODY, post_type="compat-post", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED, "POST /api/v0/messages sync=true must answer 200 (processed)"
    assert message.item_type == ItemType.inline
    assert message.item_hash == hashlib.sha256(message.item_content.encode()).hexdigest()

    posts = await client.get_posts(post_filter=PostFilter(hashes=[message.item_hash]))
    assert len(posts.posts) == 1, posts
    post = posts.posts[0]
    assert post.content == POST_BODY
    assert post.item_hash == message.item_hash
    assert post.original_item_hash == message.item_hash
    assert post.hash == message.item_hash
    assert post.original_type == "compat-post"
    assert post.type == "compat-post"
    assert post.sender == eth_account.get_address()
    assert post.address == eth_account.get_address()
    assert post.channel == channel
    assert post.chain.value == "ETH"
    assert post.item_type == ItemType.inline
    assert post.item_content == message.item_content
    assert post.signature == message.signature
    assert post.original_signature == message.signature
    assert post.confirmed is False
    assert post.confirmations == []
    assert post.ref is None
    assert post.time == pytest.approx(ts(message), abs=1e-5), "v0 post time = envelope time"
    assert post.size == len(message.item_content)
    assert posts.pagination_total == 1
    assert posts.pagination_page == 1

    # The other filters of /api/v0/posts.json find it too.
    for f in (
        PostFilter(addresses=[eth_account.get_address()]),
        PostFilter(channels=[channel]),
        PostFilter(types=["compat-post"], addresses=[eth_account.get_address()]),
        PostFilter(chains=["ETH"], channels=[channel]),
    ):
        found = await client.get_posts(post_filter=f)
        assert [p.item_hash for p in found.posts] == [message.item_hash], f.as_http_params()

    # A filter that excludes it.
    none = await client.get_posts(post_filter=PostFilter(types=["other-type"], channels=[channel]))
    assert none.posts == []


@pytest.mark.timeout(60)
async def test_get_message_returns_exact_post(auth_client, client, eth_account, channel):
    message, status = await auth_client.create_post(
        post_content=POST_BODY, post_type="compat-post", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED

    fetched, fetched_status = await client.get_message(message.item_hash, with_status=True)
    assert fetched_status == "processed"
    assert isinstance(fetched, PostMessage)
    assert fetched.item_hash == message.item_hash
    assert fetched.item_content == message.item_content
    assert fetched.signature == message.signature
    assert fetched.sender == eth_account.get_address()
    assert fetched.chain == message.chain
    assert fetched.channel == channel
    assert ts(fetched) == pytest.approx(ts(message), abs=1e-5)
    assert fetched.content.content == POST_BODY
    assert fetched.content.type == "compat-post"
    assert fetched.content.address == eth_account.get_address()
    assert fetched.content.time == pytest.approx(message.content.time, abs=1e-5)

    # message_type check passes for the right class
    again = await client.get_message(message.item_hash, message_type=PostMessage)
    assert again.item_hash == message.item_hash

    assert await client.get_message_status(message.item_hash) == MessageStatus.PROCESSED


@pytest.mark.timeout(90)
async def test_amend_replaces_content(auth_client, client, eth_account, channel):
    original, status = await auth_client.create_post(
        post_content={"version": 1, "keep": "only in v1"}, post_type="compat-amendable",
        channel=channel, sync=True,
    )
    assert status == MessageStatus.PROCESSED

    amend, status = await auth_client.create_post(
        post_content={"version": 2}, post_type="amend", ref=original.item_hash,
        channel=channel, sync=True,
    )
    assert status == MessageStatus.PROCESSED
    assert amend.content.ref == original.item_hash

    posts = await client.get_posts(post_filter=PostFilter(hashes=[original.item_hash]))
    assert len(posts.posts) == 1, "amends fold into the original: one post listed"
    post = posts.posts[0]
    assert post.content == {"version": 2}, "an amend replaces the payload wholesale (no merge)"
    assert post.original_item_hash == original.item_hash
    assert post.hash == original.item_hash
    assert post.item_hash == amend.item_hash
    assert post.original_type == "compat-amendable"
    assert post.original_signature == original.signature
    assert post.signature == amend.signature
    assert post.type == "amend", "v0 post type is the latest version's content.type"
    assert post.item_content == amend.item_content
    assert post.time == pytest.approx(ts(amend), abs=1e-5), "v0 post time = latest version's envelope time"

    # Only originals are listed: the channel holds exactly one post.
    by_channel = await client.get_posts(post_filter=PostFilter(channels=[channel]))
    assert [p.original_item_hash for p in by_channel.posts] == [original.item_hash]
    # types filter matches the original's type
    by_type = await client.get_posts(
        post_filter=PostFilter(types=["compat-amendable"], addresses=[eth_account.get_address()])
    )
    assert [p.content for p in by_type.posts] == [{"version": 2}]

    # The amend itself is a processed message of its own.
    fetched = await client.get_message(amend.item_hash, message_type=PostMessage)
    assert fetched.content.type == "amend"
    assert fetched.content.ref == original.item_hash
    assert fetched.content.content == {"version": 2}

    # A second amend: the latest (by content time) wins.
    amend2, status = await auth_client.create_post(
        post_content={"version": 3}, post_type="amend", ref=original.item_hash,
        channel=channel, sync=True,
    )
    assert status == MessageStatus.PROCESSED
    posts = await client.get_posts(post_filter=PostFilter(hashes=[original.item_hash]))
    assert [(p.content, p.item_hash, p.original_item_hash) for p in posts.posts] == [
        ({"version": 3}, amend2.item_hash, original.item_hash)
    ]


@pytest.mark.timeout(60)
async def test_amend_by_another_account_is_rejected(node_url, auth_client, client, channel):
    from aleph.sdk.client import AuthenticatedAlephHttpClient
    from aleph.sdk.exceptions import InvalidMessageError

    from compat_helpers import new_eth_account

    original, status = await auth_client.create_post(
        post_content={"v": 1}, post_type="compat-owned", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED

    intruder = new_eth_account()
    async with AuthenticatedAlephHttpClient(account=intruder, api_server=node_url) as other:
        with pytest.raises(InvalidMessageError):
            # 422 -> the SDK raises InvalidMessageError (raise_on_rejected defaults to True)
            await other.create_post(
                post_content={"v": "hijacked"}, post_type="amend", ref=original.item_hash,
                channel=channel, sync=True,
            )
    posts = await client.get_posts(post_filter=PostFilter(hashes=[original.item_hash]))
    assert [p.content for p in posts.posts] == [{"v": 1}]


@pytest.mark.timeout(60)
async def test_non_inline_post_via_storage(auth_client, client, http, eth_account, channel):
    """inline=False: the SDK POSTs the content to /api/v0/storage/add_json and publishes a
    message with item_type=storage and item_hash = the returned sha256."""
    body = {"big": "not inline", "list": list(range(10)), "unicode": "\u00e9\u00e8"}
    message, status = await auth_client.create_post(
        post_content=body, post_type="compat-storage", channel=channel, inline=False,
        storage_engine=StorageEnum.storage, sync=True,
    )
    assert status == MessageStatus.PROCESSED
    assert message.item_type == ItemType.storage
    assert message.item_content is None
    assert len(message.item_hash) == 64

    posts = await client.get_posts(post_filter=PostFilter(hashes=[message.item_hash]))
    assert len(posts.posts) == 1
    assert posts.posts[0].content == body
    assert posts.posts[0].item_type == ItemType.storage

    fetched = await client.get_message(message.item_hash, message_type=PostMessage)
    assert fetched.item_type == ItemType.storage
    assert fetched.content.content == body
    assert fetched.content.type == "compat-storage"
    assert fetched.content.address == eth_account.get_address()

    # The stored document is served raw, and its sha256 is the item hash.
    async with http.get(f"/api/v0/storage/raw/{message.item_hash}") as resp:
        assert resp.status == 200, await resp.text()
        raw = await resp.read()
    assert hashlib.sha256(raw).hexdigest() == message.item_hash
    stored = json.loads(raw)
    assert stored == {
        "type": "compat-storage",
        "address": eth_account.get_address(),
        "content": body,
        "time": pytest.approx(message.content.time, abs=1e-6),
    }


@pytest.mark.timeout(30)
async def test_storage_add_json_hash_is_sha256_of_compact_sorted_json(http):
    """/api/v0/storage/add_json stores the orjson serialisation (sorted keys, compact, UTF-8
    not escaped) and answers {"status": "success", "hash": sha256(bytes)}."""
    doc = {"zeta": 1, "alpha": {"b": [1, 2], "a": "\u00e9"}, "mid": None}
    async with http.post("/api/v0/storage/add_json", json=doc) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body.get("status") == "success"
    expected_bytes = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert body["hash"] == hashlib.sha256(expected_bytes).hexdigest()

    async with http.get(f"/api/v0/storage/raw/{body['hash']}") as resp:
        assert resp.status == 200, await resp.text()
        assert await resp.read() == expected_bytes
