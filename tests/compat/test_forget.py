"""FORGET through the SDK: the target becomes `forgotten`, disappears from lists."""

from __future__ import annotations

import uuid

import pytest
from aleph_message.models import ForgetMessage
from aleph_message.status import MessageStatus

from aleph.sdk.client import AuthenticatedAlephHttpClient
from aleph.sdk.exceptions import ForgottenMessageError
from aleph.sdk.query.filters import MessageFilter, PostFilter

from compat_helpers import get_json, new_eth_account


@pytest.mark.timeout(60)
async def test_forget_post(auth_client, client, http, eth_account, channel):
    post, status = await auth_client.create_post(
        post_content={"to": "forget"}, post_type="compat-forget", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED
    keeper, status = await auth_client.create_post(
        post_content={"to": "keep"}, post_type="compat-forget", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED

    forget, status = await auth_client.forget(
        hashes=[post.item_hash], reason="compat test", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED
    assert isinstance(forget, ForgetMessage)

    assert await client.get_message_status(post.item_hash) == MessageStatus.FORGOTTEN
    with pytest.raises(ForgottenMessageError) as exc_info:
        await client.get_message(post.item_hash)
    assert forget.item_hash in str(exc_info.value)

    code, body = await get_json(http, f"/api/v0/messages/{post.item_hash}")
    assert code == 200, body
    assert body["status"] == "forgotten"
    assert body["item_hash"] == post.item_hash
    assert body["forgotten_by"] == [forget.item_hash]

    # Gone from the posts and messages lists; the other post is untouched.
    posts = await client.get_posts(post_filter=PostFilter(channels=[channel], types=["compat-forget"]))
    assert [p.item_hash for p in posts.posts] == [keeper.item_hash]
    msgs = await client.get_messages(message_filter=MessageFilter(hashes=[post.item_hash]))
    assert msgs.messages == []
    msgs = await client.get_messages(message_filter=MessageFilter(channels=[channel]))
    assert {m.item_hash for m in msgs.messages} == {keeper.item_hash, forget.item_hash}

    # The FORGET itself is a processed message
    fetched = await client.get_message(forget.item_hash, message_type=ForgetMessage)
    assert fetched.content.hashes == [post.item_hash]
    assert fetched.content.reason == "compat test"
    assert fetched.content.address == eth_account.get_address()


@pytest.mark.timeout(60)
async def test_forget_amended_post_forgets_amends(auth_client, client, channel):
    original, _ = await auth_client.create_post(
        post_content={"v": 1}, post_type="compat-forget-amended", channel=channel, sync=True
    )
    amend, status = await auth_client.create_post(
        post_content={"v": 2}, post_type="amend", ref=original.item_hash, channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED
    _, status = await auth_client.forget(hashes=[original.item_hash], reason=None, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED

    assert await client.get_message_status(original.item_hash) == MessageStatus.FORGOTTEN
    assert await client.get_message_status(amend.item_hash) == MessageStatus.FORGOTTEN
    posts = await client.get_posts(post_filter=PostFilter(hashes=[original.item_hash]))
    assert posts.posts == []


@pytest.mark.timeout(60)
async def test_forget_aggregate_element_recomputes(auth_client, client, eth_account, channel):
    key = f"compat-fa-{uuid.uuid4().hex[:8]}"
    address = eth_account.get_address()
    first, _ = await auth_client.create_aggregate(key=key, content={"a": 1, "b": 1}, channel=channel, sync=True)
    second, status = await auth_client.create_aggregate(key=key, content={"b": 2}, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    assert await client.fetch_aggregate(address, key) == {"a": 1, "b": 2}

    _, status = await auth_client.forget(hashes=[second.item_hash], reason=None, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    assert await client.fetch_aggregate(address, key) == {"a": 1, "b": 1}


@pytest.mark.timeout(60)
async def test_forget_by_stranger_is_rejected(node_url, auth_client, client, channel):
    post, _ = await auth_client.create_post(
        post_content={"mine": True}, post_type="compat-forget", channel=channel, sync=True
    )
    stranger = new_eth_account()
    async with AuthenticatedAlephHttpClient(account=stranger, api_server=node_url) as c:
        from aleph.sdk.exceptions import InvalidMessageError

        with pytest.raises(InvalidMessageError):
            await c.forget(hashes=[post.item_hash], reason="not yours", channel=channel, sync=True)
    assert await client.get_message_status(post.item_hash) == MessageStatus.PROCESSED
    posts = await client.get_posts(post_filter=PostFilter(hashes=[post.item_hash]))
    assert len(posts.posts) == 1
