"""AGGREGATE messages through the SDK: shallow top-level merge, later wins, nulls kept."""

from __future__ import annotations

import uuid

import pytest
from aleph_message.models import AggregateMessage, ItemType
from aleph_message.status import MessageStatus

from compat_helpers import get_json, new_eth_account


def _key(prefix: str = "compat") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.mark.timeout(60)
async def test_aggregate_shallow_merge_later_wins_null_kept(auth_client, client, eth_account, channel):
    key = _key()
    address = eth_account.get_address()

    first, status = await auth_client.create_aggregate(
        key=key,
        content={"a": 1, "b": {"x": 1, "y": 1}, "c": "keep", "gone": "soon null"},
        channel=channel,
        sync=True,
    )
    assert status == MessageStatus.PROCESSED
    assert first.item_type == ItemType.inline
    assert await client.fetch_aggregate(address, key) == {
        "a": 1, "b": {"x": 1, "y": 1}, "c": "keep", "gone": "soon null",
    }

    second, status = await auth_client.create_aggregate(
        key=key,
        content={"a": 2, "b": {"z": 3}, "gone": None, "d": [1, 2, {"e": None}]},
        channel=channel,
        sync=True,
    )
    assert status == MessageStatus.PROCESSED

    value = await client.fetch_aggregate(address, key)
    assert value == {
        "a": 2,                      # later wins
        "b": {"z": 3},               # top-level only: nested object replaced, not deep-merged
        "c": "keep",                 # untouched keys survive
        "gone": None,                # a null value is kept as a key with value null
        "d": [1, 2, {"e": None}],
    }
    assert "gone" in value

    # The same through fetch_aggregates / get_aggregate
    assert (await client.fetch_aggregates(address, keys=[key])) == {key: value}
    assert (await client.get_aggregate(address, key)) == value

    # Each element is a processed AGGREGATE message of its own
    fetched = await client.get_message(second.item_hash, message_type=AggregateMessage)
    assert fetched.content.key == key
    assert fetched.content.content == {"a": 2, "b": {"z": 3}, "gone": None, "d": [1, 2, {"e": None}]}
    assert fetched.content.address == address


@pytest.mark.timeout(60)
async def test_aggregate_several_keys(auth_client, client, eth_account, channel):
    address = eth_account.get_address()
    k1, k2 = _key("one"), _key("two")
    for key, content in ((k1, {"v": 1}), (k2, {"w": [1]}), (k1, {"v2": True})):
        _, status = await auth_client.create_aggregate(key=key, content=content, channel=channel, sync=True)
        assert status == MessageStatus.PROCESSED

    assert await client.fetch_aggregates(address) == {k1: {"v": 1, "v2": True}, k2: {"w": [1]}}
    assert await client.fetch_aggregates(address, keys=[k2]) == {k2: {"w": [1]}}
    assert await client.fetch_aggregates(address, keys=[k1, k2]) == {
        k1: {"v": 1, "v2": True}, k2: {"w": [1]},
    }
    assert await client.fetch_aggregate(address, k1) == {"v": 1, "v2": True}
    # A key the address never wrote: get_aggregate maps the node's 404 (or an absent key) to None
    assert await client.get_aggregate(address, _key("missing")) is None


@pytest.mark.timeout(30)
async def test_aggregate_unknown_address_is_404(client, http):
    stranger = new_eth_account().get_address()
    assert await client.get_aggregate(stranger, "anything") is None
    assert await client.get_aggregates(stranger) is None
    status, _ = await get_json(http, f"/api/v0/aggregates/{stranger}.json")
    assert status == 404


@pytest.mark.timeout(30)
async def test_aggregate_http_shape(auth_client, http, eth_account, channel):
    key = _key()
    address = eth_account.get_address()
    _, status = await auth_client.create_aggregate(key=key, content={"x": 1}, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    status, body = await get_json(http, f"/api/v0/aggregates/{address}.json", keys=key)
    assert status == 200, body
    assert body["address"] == address
    assert body["data"] == {key: {"x": 1}}


@pytest.mark.timeout(60)
async def test_aggregate_non_inline_via_storage(auth_client, client, eth_account, channel):
    """inline=False (what the CLI always does): content goes through /api/v0/storage/add_json
    and the message is item_type=storage."""
    key = _key("storage")
    address = eth_account.get_address()
    message, status = await auth_client.create_aggregate(
        key=key, content={"stored": "yes", "n": [1, 2, 3]}, channel=channel, inline=False, sync=True
    )
    assert status == MessageStatus.PROCESSED
    assert message.item_type == ItemType.storage
    assert message.item_content is None
    assert await client.fetch_aggregate(address, key) == {"stored": "yes", "n": [1, 2, 3]}

    # mixing inline and storage elements in one aggregate
    _, status = await auth_client.create_aggregate(
        key=key, content={"n": None, "inline": 1}, channel=channel, inline=True, sync=True
    )
    assert status == MessageStatus.PROCESSED
    assert await client.fetch_aggregate(address, key) == {"stored": "yes", "n": None, "inline": 1}

    fetched = await client.get_message(message.item_hash, message_type=AggregateMessage)
    assert fetched.item_type == ItemType.storage
    assert fetched.content.key == key
    assert fetched.content.content == {"stored": "yes", "n": [1, 2, 3]}


@pytest.mark.timeout(60)
async def test_aggregate_of_other_owner_is_rejected_without_authorization(node_url, client, eth_account, channel):
    """content.address != sender and no `security` authorization → PERMISSION_DENIED (422)."""
    from aleph.sdk.client import AuthenticatedAlephHttpClient
    from aleph.sdk.exceptions import InvalidMessageError

    key = _key("perm")
    owner = eth_account.get_address()
    intruder = new_eth_account()
    async with AuthenticatedAlephHttpClient(account=intruder, api_server=node_url) as c:
        with pytest.raises(InvalidMessageError):
            await c.create_aggregate(key=key, content={"owned": False}, address=owner, channel=channel, sync=True)
    assert await client.get_aggregate(owner, key) is None
