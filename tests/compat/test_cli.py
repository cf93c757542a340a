"""The `aleph` CLI (aleph-client 1.9.x, on aleph-sdk-python 2.3.x) against the node; results
read back with the SDK. The CLI publishes with sync=False (the node answers 202 pending),
so results are polled with wait_until.

Commands and flags as installed (aleph_client/commands/message.py, aggregate.py):
  aleph message post [--path FILE | content on stdin] --type T [--ref R] [--channel C]
  aleph message get HASH
  aleph message find [--addresses A] [--channels C] [--content-types T] ...
  aleph message forget HASHES [--reason R] [--channel C]
  aleph aggregate post KEY CONTENT_JSON [--subkey S] [--channel C] [--inline/--no-inline]
                       [--sync/--no-sync] [--print-message]      (inline defaults to False)
  aleph aggregate get KEY [--subkeys a,b]
  aleph aggregate forget KEY [--subkeys a,b]     (posts {sub: null, ...})
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aleph_message.models import ItemType, PostMessage
from aleph_message.status import MessageStatus

from aleph.sdk.query.filters import PostFilter

from compat_helpers import parse_json_output, wait_until

pytestmark = pytest.mark.cli


async def run(cli, *args, **kw):
    """Run the CLI without blocking the event loop."""
    return await asyncio.to_thread(cli.run, *args, **kw)


async def wait_processed(client, item_hash: str, timeout: float = 30):
    async def processed():
        return await client.get_message_status(item_hash) == MessageStatus.PROCESSED

    await wait_until(processed, timeout=timeout, message=f"{item_hash} processed")


@pytest.mark.timeout(120)
async def test_cli_message_post_from_file(cli, client, channel):
    content = {"cli": True, "text": "posted by aleph-client", "list": [1, 2, 3]}
    path = cli.home / "post.json"
    path.write_text(json.dumps(content))

    proc = await run(cli, "message", "post", "--path", str(path), "--type", "compat-cli", "--channel", channel)
    sent = parse_json_output(proc.stdout)
    item_hash = sent["item_hash"]
    assert sent["sender"] == cli.account.get_address()
    assert sent["item_type"] == "inline"

    await wait_processed(client, item_hash)
    posts = await client.get_posts(post_filter=PostFilter(hashes=[item_hash]))
    assert len(posts.posts) == 1
    post = posts.posts[0]
    assert post.content == content
    assert post.type == "compat-cli"
    assert post.channel == channel
    assert post.sender == cli.account.get_address()

    # `aleph message get` reads it back through the CLI's own SDK
    proc = await run(cli, "message", "get", item_hash)
    assert "processed" in proc.stdout
    got = parse_json_output(proc.stdout)
    assert got["item_hash"] == item_hash
    assert got["content"]["content"] == content


@pytest.mark.timeout(120)
async def test_cli_message_post_from_stdin_and_amend_via_ref(cli, client, channel):
    proc = await run(cli, "message", "post", "--type", "compat-cli-stdin", "--channel", channel,
                     input=json.dumps({"v": 1}) + "\n")
    original = parse_json_output(proc.stdout)["item_hash"]
    await wait_processed(client, original)

    # An amend is a post of type "amend" with --ref
    proc = await run(cli, "message", "post", "--type", "amend", "--ref", original, "--channel", channel,
                     input=json.dumps({"v": 2}) + "\n")
    amend = parse_json_output(proc.stdout)["item_hash"]
    await wait_processed(client, amend)

    posts = await client.get_posts(post_filter=PostFilter(hashes=[original]))
    assert [(p.content, p.original_item_hash, p.item_hash) for p in posts.posts] == [({"v": 2}, original, amend)]


@pytest.mark.timeout(180)
async def test_cli_aggregate_post_get_forget(cli, client, channel):
    key = f"compat-cli-{uuid.uuid4().hex[:8]}"
    address = cli.account.get_address()

    proc = await run(cli, "aggregate", "post", key, json.dumps({"a": 1, "b": {"c": 2}}),
                     "--channel", channel, "--print-message")
    first = parse_json_output(proc.stdout)
    assert first["item_type"] == "storage", "the CLI posts aggregates with inline=False (storage/add_json)"
    await wait_processed(client, first["item_hash"])
    assert await client.fetch_aggregate(address, key) == {"a": 1, "b": {"c": 2}}

    # --subkey wraps the (JSON or plain string) content under that subkey
    proc = await run(cli, "aggregate", "post", key, "plain text", "--subkey", "s",
                     "--channel", channel, "--print-message")
    second = parse_json_output(proc.stdout)
    await wait_processed(client, second["item_hash"])
    assert await client.fetch_aggregate(address, key) == {"a": 1, "b": {"c": 2}, "s": "plain text"}

    # `aggregate get` reads it back through the CLI
    proc = await run(cli, "aggregate", "get", key)
    assert parse_json_output(proc.stdout) == {"a": 1, "b": {"c": 2}, "s": "plain text"}

    # `aggregate forget --subkeys` posts {"a": null}: the key stays, with value null
    await run(cli, "aggregate", "forget", key, "--subkeys", "a", "--channel", channel)

    async def a_is_null():
        value = await client.fetch_aggregate(address, key)
        return value == {"a": None, "b": {"c": 2}, "s": "plain text"} and value

    await wait_until(a_is_null, timeout=30, message="aggregate forget --subkeys a")


@pytest.mark.timeout(120)
async def test_cli_message_forget(cli, client, channel):
    proc = await run(cli, "message", "post", "--type", "compat-cli-forget", "--channel", channel,
                     input=json.dumps({"bye": True}) + "\n")
    item_hash = parse_json_output(proc.stdout)["item_hash"]
    await wait_processed(client, item_hash)

    await run(cli, "message", "forget", item_hash, "--reason", "compat", "--channel", channel)

    async def forgotten():
        return await client.get_message_status(item_hash) == MessageStatus.FORGOTTEN

    await wait_until(forgotten, timeout=30, message="forgotten through the CLI")
    posts = await client.get_posts(post_filter=PostFilter(hashes=[item_hash]))
    assert posts.posts == []


@pytest.mark.timeout(120)
async def test_cli_message_find(cli, auth_client, channel):
    message, status = await auth_client.create_post(
        post_content={"find": "me"}, post_type="compat-cli-find", channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED
    assert isinstance(message, PostMessage) and message.item_type == ItemType.inline

    proc = await run(cli, "message", "find", "--channels", channel, "--pagination", "10")
    found = parse_json_output(proc.stdout)
    assert [m["item_hash"] for m in found["messages"]] == [message.item_hash]
    assert found["messages"][0]["content"]["content"] == {"find": "me"}
    assert found["pagination_total"] == 1
