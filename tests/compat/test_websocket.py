"""AlephHttpClient.watch_messages over the /api/ws0/messages websocket."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aleph_message.models import MessageType
from aleph_message.status import MessageStatus

from aleph.sdk.client import AlephHttpClient, AuthenticatedAlephHttpClient
from aleph.sdk.query.filters import MessageFilter

from compat_helpers import new_eth_account


class Watcher:
    """Runs client.watch_messages(filter) in a task and queues what it yields."""

    def __init__(self, node_url: str, message_filter: MessageFilter):
        self.node_url = node_url
        self.filter = message_filter
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def _run(self):
        async with AlephHttpClient(api_server=self.node_url) as c:
            async for message in c.watch_messages(message_filter=self.filter):
                await self.queue.put(message)
        await self.queue.put(None)  # the server closed the socket

    async def __aenter__(self):
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc):
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    async def next(self, timeout: float):
        try:
            item = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            if self.task is not None and self.task.done() and self.task.exception():
                raise AssertionError(f"watch_messages failed: {self.task.exception()!r}")
            raise AssertionError(f"no message from the websocket within {timeout}s")
        if item is None:
            raise AssertionError("the node closed the websocket")
        return item


async def _until_first_delivery(watcher: Watcher, publish, attempts: int = 15, per_attempt: float = 2.0):
    """The SDK gives no signal when the websocket is connected, so publish (a new matching
    message each time) until one comes through. Returns (received message, published hashes)."""
    published: list = []
    for _ in range(attempts):
        published.append(await publish())
        try:
            return await watcher.next(timeout=per_attempt), published
        except AssertionError as exc:
            if "failed" in str(exc) or "closed" in str(exc):
                raise
    raise AssertionError(f"none of {len(published)} matching messages came through the websocket")


@pytest.mark.timeout(90)
async def test_watch_messages_receives_new_matching_message(node_url, eth_account, channel):
    other_channel = channel + "-other"
    async with AuthenticatedAlephHttpClient(account=eth_account, api_server=node_url) as ac:
        n = 0

        async def publish(ch=channel, post_type="compat-ws"):
            nonlocal n
            n += 1
            m, st = await ac.create_post(post_content={"n": n}, post_type=post_type, channel=ch, sync=True)
            assert st == MessageStatus.PROCESSED
            return m

        flt = MessageFilter(addresses=[eth_account.get_address()], channels=[channel])
        async with Watcher(node_url, flt) as w:
            first, published = await _until_first_delivery(w, publish)
            by_hash = {m.item_hash: m for m in published}
            assert first.item_hash in by_hash, "received a message that was never published"
            assert first.content.content == by_hash[first.item_hash].content.content

            async def next_new():
                # Skip late deliveries of messages published while connecting.
                while True:
                    got = await w.next(timeout=10)
                    if got.item_hash not in by_hash:
                        return got

            # Now the socket is live: a non-matching message (other channel) is filtered
            # out, the next matching one is delivered, with exact content.
            off_filter = await publish(ch=other_channel)
            wanted = await publish()
            got = await next_new()
            assert got.item_hash != off_filter.item_hash, "a message outside the channel filter was pushed"
            assert got.item_hash == wanted.item_hash
            assert got.type == MessageType.post
            assert got.channel == channel
            assert got.sender == eth_account.get_address()
            assert got.item_content == wanted.item_content
            assert got.signature == wanted.signature
            assert got.content.content == wanted.content.content

            # Other message types pass the same filter (an aggregate of the same sender)
            agg, st = await ac.create_aggregate(key="compat-ws", content={"w": 1}, channel=channel, sync=True)
            assert st == MessageStatus.PROCESSED
            got = await next_new()
            assert got.item_hash == agg.item_hash
            assert got.type == MessageType.aggregate


@pytest.mark.timeout(60)
async def test_watch_messages_sends_history_first(node_url, channel):
    """Without a `history` parameter (the SDK sends none) the node first replays the most
    recent matching messages (default 10), oldest first, then goes live."""
    account = new_eth_account()
    async with AuthenticatedAlephHttpClient(account=account, api_server=node_url) as ac:
        sent = []
        for i in range(3):
            m, st = await ac.create_post(post_content={"h": i}, post_type="compat-ws-hist", channel=channel, sync=True)
            assert st == MessageStatus.PROCESSED
            sent.append(m)
        flt = MessageFilter(addresses=[account.get_address()])
        async with Watcher(node_url, flt) as w:
            got = [await w.next(timeout=10) for _ in range(3)]
            assert [m.item_hash for m in got] == [m.item_hash for m in sent]
            assert [m.content.content for m in got] == [{"h": 0}, {"h": 1}, {"h": 2}]
