"""GET /api/v0/messages.json through AlephHttpClient.get_messages / get_messages_cursor:
filters, pagination, cursor, sort order; GET /api/v0/messages/{hash} and .../status."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aleph_message.models import MessageType, PostMessage
from aleph_message.status import MessageStatus

from aleph.sdk.client import AlephHttpClient, AuthenticatedAlephHttpClient
from aleph.sdk.exceptions import MessageNotFoundError
from aleph.sdk.query.filters import MessageFilter, PostFilter, SortOrder

from compat_helpers import get_json, new_eth_account, random_item_hash, ts


@dataclass
class Dataset:
    addr_a: str
    addr_b: str
    chan_a: str
    chan_b: str
    tag: str
    post_type: str
    comment_type: str
    agg_key: str
    a_messages: list  # every message of A, in creation order (ascending time)
    a_posts: list     # A's posts of post_type, creation order
    tagged: list      # hashes of A's posts carrying the tag
    comment: object   # A's post of comment_type referencing a_posts[0]
    aggregate: object
    b_messages: list


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dataset(node) -> Dataset:
    """Account A: 5 posts (2 tagged), 1 comment post with a ref, 1 aggregate, in channel A.
    Account B: 2 posts in channel B. Created one after the other with sync=True, so the
    envelope times are strictly increasing in creation order."""
    node_url = node.url
    uid = uuid.uuid4().hex[:10]
    a, b = new_eth_account(), new_eth_account()
    ds = Dataset(
        addr_a=a.get_address(), addr_b=b.get_address(),
        chan_a=f"RALEPH-COMPAT-A-{uid}", chan_b=f"RALEPH-COMPAT-B-{uid}",
        tag=f"tag-{uid}", post_type=f"compat-q-{uid}", comment_type=f"compat-c-{uid}",
        agg_key=f"qkey-{uid}",
        a_messages=[], a_posts=[], tagged=[], comment=None, aggregate=None, b_messages=[],
    )
    async with AuthenticatedAlephHttpClient(account=a, api_server=node_url) as ca:
        for i in range(5):
            body = {"i": i}
            if i in (1, 3):
                body["tags"] = [ds.tag, "other"]
            m, st = await ca.create_post(post_content=body, post_type=ds.post_type, channel=ds.chan_a, sync=True)
            assert st == MessageStatus.PROCESSED
            ds.a_messages.append(m)
            ds.a_posts.append(m)
            if "tags" in body:
                ds.tagged.append(m.item_hash)
        m, st = await ca.create_post(
            post_content={"comment": "on post 0"}, post_type=ds.comment_type,
            ref=ds.a_posts[0].item_hash, channel=ds.chan_a, sync=True,
        )
        assert st == MessageStatus.PROCESSED
        ds.comment = m
        ds.a_messages.append(m)
        m, st = await ca.create_aggregate(key=ds.agg_key, content={"q": 1}, channel=ds.chan_a, sync=True)
        assert st == MessageStatus.PROCESSED
        ds.aggregate = m
        ds.a_messages.append(m)
    async with AuthenticatedAlephHttpClient(account=b, api_server=node_url) as cb:
        for i in range(2):
            m, st = await cb.create_post(post_content={"b": i}, post_type=ds.post_type, channel=ds.chan_b, sync=True)
            assert st == MessageStatus.PROCESSED
            ds.b_messages.append(m)
    times = [ts(m) for m in ds.a_messages]
    assert times == sorted(times) and len(set(times)) == len(times)
    return ds


def hashes(resp) -> list:
    return [m.item_hash for m in resp.messages]


def newest_first(messages) -> list:
    return [m.item_hash for m in sorted(messages, key=ts, reverse=True)]


@pytest.mark.timeout(60)
async def test_filter_addresses(client, dataset):
    resp = await client.get_messages(message_filter=MessageFilter(addresses=[dataset.addr_a]))
    assert hashes(resp) == newest_first(dataset.a_messages), "default sort: time descending"
    assert resp.pagination_total == len(dataset.a_messages)
    assert resp.pagination_page == 1
    assert resp.pagination_per_page == 200  # the SDK's default page_size
    assert resp.pagination_item == "messages"

    both = await client.get_messages(message_filter=MessageFilter(addresses=[dataset.addr_a, dataset.addr_b]))
    assert set(hashes(both)) == {m.item_hash for m in dataset.a_messages + dataset.b_messages}
    assert both.pagination_total == len(dataset.a_messages) + len(dataset.b_messages)


@pytest.mark.timeout(60)
async def test_filter_channels(client, dataset):
    resp = await client.get_messages(message_filter=MessageFilter(channels=[dataset.chan_b]))
    assert hashes(resp) == newest_first(dataset.b_messages)
    resp = await client.get_messages(message_filter=MessageFilter(channels=[dataset.chan_a, dataset.chan_b]))
    assert set(hashes(resp)) == {m.item_hash for m in dataset.a_messages + dataset.b_messages}


@pytest.mark.timeout(60)
async def test_filter_message_types(client, dataset):
    resp = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], message_types=[MessageType.aggregate])
    )
    assert hashes(resp) == [dataset.aggregate.item_hash]
    resp = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], message_types=[MessageType.post])
    )
    assert set(hashes(resp)) == {m.item_hash for m in dataset.a_posts} | {dataset.comment.item_hash}
    resp = await client.get_messages(
        message_filter=MessageFilter(
            addresses=[dataset.addr_a], message_types=[MessageType.post, MessageType.aggregate]
        )
    )
    assert len(resp.messages) == len(dataset.a_messages)
    resp = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], message_types=[MessageType.store])
    )
    assert resp.messages == [] and resp.pagination_total == 0


@pytest.mark.timeout(60)
async def test_filter_content_types_and_keys(client, dataset):
    resp = await client.get_messages(message_filter=MessageFilter(content_types=[dataset.comment_type]))
    assert hashes(resp) == [dataset.comment.item_hash]
    resp = await client.get_messages(message_filter=MessageFilter(content_types=[dataset.post_type]))
    assert set(hashes(resp)) == {m.item_hash for m in dataset.a_posts + dataset.b_messages}
    resp = await client.get_messages(message_filter=MessageFilter(content_keys=[dataset.agg_key]))
    assert hashes(resp) == [dataset.aggregate.item_hash]


@pytest.mark.timeout(60)
async def test_filter_refs(client, dataset):
    resp = await client.get_messages(message_filter=MessageFilter(refs=[dataset.a_posts[0].item_hash]))
    assert hashes(resp) == [dataset.comment.item_hash]
    # same through the posts endpoint
    posts = await client.get_posts(post_filter=PostFilter(refs=[dataset.a_posts[0].item_hash]))
    assert [p.item_hash for p in posts.posts] == [dataset.comment.item_hash]


@pytest.mark.timeout(60)
async def test_filter_hashes(client, dataset):
    wanted = [dataset.a_posts[1].item_hash, dataset.b_messages[0].item_hash, dataset.aggregate.item_hash]
    resp = await client.get_messages(message_filter=MessageFilter(hashes=wanted))
    assert set(hashes(resp)) == set(wanted)
    assert resp.pagination_total == 3
    resp = await client.get_messages(message_filter=MessageFilter(hashes=[random_item_hash()]))
    assert resp.messages == [] and resp.pagination_total == 0


@pytest.mark.timeout(60)
async def test_filter_tags(client, dataset):
    resp = await client.get_messages(message_filter=MessageFilter(tags=[dataset.tag]))
    assert set(hashes(resp)) == set(dataset.tagged)
    posts = await client.get_posts(post_filter=PostFilter(tags=[dataset.tag]))
    assert {p.item_hash for p in posts.posts} == set(dataset.tagged)


@pytest.mark.timeout(60)
async def test_filter_chains(client, dataset):
    resp = await client.get_messages(message_filter=MessageFilter(addresses=[dataset.addr_a], chains=["ETH"]))
    assert len(resp.messages) == len(dataset.a_messages)
    resp = await client.get_messages(message_filter=MessageFilter(addresses=[dataset.addr_a], chains=["SOL"]))
    assert resp.messages == []


@pytest.mark.timeout(60)
async def test_filter_start_end_dates(client, dataset):
    """startDate is inclusive, endDate exclusive, both on the envelope time. Bounds are taken
    half-way between consecutive messages so that float rounding cannot matter."""
    ms = dataset.a_messages
    start = (ts(ms[0]) + ts(ms[1])) / 2
    end = (ts(ms[3]) + ts(ms[4])) / 2
    resp = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], start_date=start, end_date=end)
    )
    assert hashes(resp) == newest_first(ms[1:4])

    only_start = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], start_date=(ts(ms[-2]) + ts(ms[-1])) / 2)
    )
    assert hashes(only_start) == [ms[-1].item_hash]

    only_end = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], end_date=(ts(ms[0]) + ts(ms[1])) / 2)
    )
    assert hashes(only_end) == [ms[0].item_hash]

    # datetime objects are accepted by the SDK and sent as epoch floats too
    import datetime as dt

    dstart = dt.datetime.fromtimestamp(start, tz=dt.timezone.utc)
    resp = await client.get_messages(message_filter=MessageFilter(addresses=[dataset.addr_a], start_date=dstart))
    assert hashes(resp) == newest_first(ms[1:])


@pytest.mark.timeout(60)
async def test_date_bounds_exact(client, dataset):
    """With bounds equal to message times: startDate inclusive, endDate exclusive. The SDK
    sends str(float) of the epoch time, exactly the float it sent as the envelope time."""
    ms = dataset.a_messages
    resp = await client.get_messages(
        message_filter=MessageFilter(addresses=[dataset.addr_a], start_date=ts(ms[2]), end_date=ts(ms[4]))
    )
    assert hashes(resp) == newest_first(ms[2:4])


@pytest.mark.timeout(60)
async def test_pagination_pages(client, dataset):
    f = MessageFilter(addresses=[dataset.addr_a])
    expected = newest_first(dataset.a_messages)  # 7 messages
    p1 = await client.get_messages(page_size=3, page=1, message_filter=f)
    p2 = await client.get_messages(page_size=3, page=2, message_filter=f)
    p3 = await client.get_messages(page_size=3, page=3, message_filter=f)
    p4 = await client.get_messages(page_size=3, page=4, message_filter=f)
    assert hashes(p1) == expected[0:3]
    assert hashes(p2) == expected[3:6]
    assert hashes(p3) == expected[6:7]
    assert hashes(p4) == []
    for i, p in enumerate((p1, p2, p3, p4), start=1):
        assert p.pagination_page == i
        assert p.pagination_per_page == 3
        assert p.pagination_total == len(expected)

    p = await client.get_messages(page_size=5, page=2, message_filter=f)
    assert hashes(p) == expected[5:7]


@pytest.mark.timeout(60)
async def test_sort_order(client, dataset):
    f_asc = MessageFilter(addresses=[dataset.addr_a], sort_order=SortOrder.ASCENDING)
    resp = await client.get_messages(message_filter=f_asc)
    assert hashes(resp) == [m.item_hash for m in dataset.a_messages]
    page2 = await client.get_messages(page_size=2, page=2, message_filter=f_asc)
    assert hashes(page2) == [m.item_hash for m in dataset.a_messages[2:4]]

    f_desc = MessageFilter(addresses=[dataset.addr_a], sort_order=SortOrder.DESCENDING)
    resp = await client.get_messages(message_filter=f_desc)
    assert hashes(resp) == [m.item_hash for m in reversed(dataset.a_messages)]

    posts = await client.get_posts(
        post_filter=PostFilter(addresses=[dataset.addr_a], types=[dataset.post_type], sort_order=SortOrder.ASCENDING)
    )
    assert [p.item_hash for p in posts.posts] == [m.item_hash for m in dataset.a_posts]


@pytest.mark.timeout(60)
async def test_cursor_pagination(client, dataset):
    """get_messages_cursor sends cursor="" for the first page, then next_cursor until null."""
    f = MessageFilter(addresses=[dataset.addr_a])
    seen: list = []
    page_sizes: list = []
    cursor = ""
    for _ in range(10):
        resp = await client.get_messages_cursor(page_size=3, cursor=cursor, message_filter=f)
        assert resp.pagination_per_page == 3
        seen += hashes(resp)
        page_sizes.append(len(resp.messages))
        if not resp.next_cursor:
            break
        cursor = resp.next_cursor
    else:
        pytest.fail(f"cursor pagination did not terminate; pages: {page_sizes}")
    assert seen == newest_first(dataset.a_messages), f"page sizes: {page_sizes}"
    assert page_sizes[:3] == [3, 3, 1]

    # ascending order works with cursors too
    f_asc = MessageFilter(addresses=[dataset.addr_a], sort_order=SortOrder.ASCENDING)
    seen, cursor = [], ""
    for _ in range(10):
        resp = await client.get_messages_cursor(page_size=4, cursor=cursor, message_filter=f_asc)
        seen += hashes(resp)
        if not resp.next_cursor:
            break
        cursor = resp.next_cursor
    assert seen == [m.item_hash for m in dataset.a_messages]


@pytest.mark.timeout(60)
async def test_posts_cursor_pagination(client, dataset):
    """get_posts_cursor: same protocol on /api/v0/posts.json (cursor="" first)."""
    f = PostFilter(addresses=[dataset.addr_a], types=[dataset.post_type])
    seen, cursor = [], ""
    for _ in range(10):
        resp = await client.get_posts_cursor(page_size=2, cursor=cursor, post_filter=f)
        assert resp.pagination_per_page == 2
        seen += [p.item_hash for p in resp.posts]
        if not resp.next_cursor:
            break
        cursor = resp.next_cursor
    else:
        pytest.fail("posts cursor pagination did not terminate")
    assert seen == newest_first(dataset.a_posts)


@pytest.mark.timeout(60)
async def test_listed_messages_are_exact(client, dataset):
    """Messages in lists parse as aleph-message models and carry the exact envelope."""
    resp = await client.get_messages(message_filter=MessageFilter(hashes=[dataset.a_posts[1].item_hash]))
    (got,) = resp.messages
    sent = dataset.a_posts[1]
    assert isinstance(got, PostMessage)
    assert got.item_content == sent.item_content
    assert got.signature == sent.signature
    assert got.sender == sent.sender == dataset.addr_a
    assert got.channel == dataset.chan_a
    assert ts(got) == pytest.approx(ts(sent), abs=1e-5)
    assert got.content.content == {"i": 1, "tags": [dataset.tag, "other"]}
    assert got.confirmed is False


@pytest.mark.timeout(30)
async def test_get_message_and_status(client, http, dataset):
    h = dataset.aggregate.item_hash
    msg, status = await client.get_message(h, with_status=True)
    assert status == "processed"
    assert msg.item_hash == h and msg.type == MessageType.aggregate
    assert await client.get_message_status(h) == MessageStatus.PROCESSED
    assert await client.get_message_error(h) is None

    code, body = await get_json(http, f"/api/v0/messages/{h}")
    assert code == 200
    assert body["status"] == "processed"
    assert body["item_hash"] == h
    assert isinstance(body.get("reception_time"), str)
    assert body["message"]["item_hash"] == h

    code, body = await get_json(http, f"/api/v0/messages/{h}/status")
    assert code == 200
    assert body["status"] == "processed" and body["item_hash"] == h
    assert isinstance(body.get("reception_time"), str)


@pytest.mark.timeout(30)
async def test_unknown_hash_not_found(client, http):
    unknown = random_item_hash()
    with pytest.raises(MessageNotFoundError):
        await client.get_message(unknown)
    with pytest.raises(MessageNotFoundError):
        await client.get_message_status(unknown)
    with pytest.raises(MessageNotFoundError):
        await client.get_message_error(unknown)
    code, _ = await get_json(http, f"/api/v0/messages/{unknown}")
    assert code == 404
    code, _ = await get_json(http, f"/api/v0/messages/{unknown}/status")
    assert code == 404


@pytest.mark.timeout(30)
async def test_node_reachable_with_default_filters(node_url):
    """get_messages() with no filter at all (what `aleph message find` does by default)."""
    async with AlephHttpClient(api_server=node_url) as c:
        resp = await c.get_messages(page_size=5)
        assert resp.pagination_per_page == 5
        assert len(resp.messages) <= 5
        assert resp.pagination_total >= len(resp.messages)
