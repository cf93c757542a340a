"""File storage through the published clients: uploads, downloads, STORE semantics, garbage
collection, and hostile input.

What each client really sends (read from the installed sources, SDK 2.4.0 / aleph-client 1.9.3
on SDK 2.3.4):

- ``AuthenticatedAlephHttpClient.storage_push_file(bytes)`` / ``ipfs_push_file(bytes)``: multipart
  POST /api/v0/storage/add_file or /api/v0/ipfs/add_file, one part ``file`` (filename "file",
  application/octet-stream), no metadata: an unauthenticated upload.
- ``storage_push(dict)`` / ``ipfs_push(dict)``: JSON POST /api/v0/storage/add_json, /ipfs/add_json.
- ``create_store(file_content=…, storage_engine=storage)``: sha256 computed locally, an inline
  STORE signed, multipart POST /api/v0/storage/add_file with part ``metadata`` (JSON
  ``{"message": message.model_dump(exclude_none=True), "sync": …}``) then part ``file``; then the
  SAME message is POSTed again to /api/v0/messages and create_store returns that second answer.
  ``storage_engine=ipfs`` (SDK 2.4): the kubo CIDv0 is computed locally (aleph_cid) and the same
  two requests go to /api/v0/ipfs/add_file. ``create_store(file_hash=…)``: POST /messages only.
- ``AlephHttpClient.download_file(hash)``: GET /api/v0/storage/raw/{hash} (404 →
  ResourceNotFoundError). ``download_file_ipfs(cid)`` GETs ``https://ipfs.aleph.im/ipfs/{cid}``, an
  external gateway, never the node: the node's own gateway route GET /ipfs/{cid} is therefore
  tested with raw HTTP (see test_sdk_download_file_ipfs_uses_external_gateway).
- ``get_account_files(address)``: GET /api/v0/addresses/{address}/files, items parsed with
  extra="forbid".
- CLI ``aleph file upload PATH``: POST /api/v0/price/estimate and GET
  /api/v0/addresses/{a}/balance first; then a file ≤ 4 MiB goes through create_store (storage
  engine: authenticated add_file + re-broadcast); a larger one, or ``--storage-engine ipfs``, is
  an UNAUTHENTICATED /api/v0/ipfs/add_file followed by POST /messages (SDK 2.3.4 has no
  authenticated IPFS upload). It prints the STORE message as JSON; on an HTTP error it prints
  the error and still exits 0, so tests parse the output.
- CLI ``aleph file download HASH --output-path D --file-name N``: GET /api/v0/storage/raw/{hash}
  into D/N (it writes an empty file on 404 and exits 0, so tests compare bytes);
  ``--use-ipfs`` goes to the external gateway (not tested).
- CLI ``aleph file list --address A [--json]``.

Expectations beyond the reference node (from the storage issue): Range requests on
/storage/raw and /ipfs (pyaleph answers ``Accept-Ranges: none``), a JSON body limit of 1 MiB on
add_json (pyaleph allows 25 MiB there), and garbage collection configurable in seconds
(``[storage] grace_period_secs``, ``gc_interval_secs``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import io
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import aiohttp
import aleph_cid
import pytest
import pytest_asyncio
import yarl
from aleph_message.models import (
    Chain,
    ItemHash,
    ItemType,
    MessageType,
    Payment,
    PaymentType,
    StoreContent,
    StoreMessage,
)
from aleph_message.status import MessageStatus

from aleph.sdk.client import AlephHttpClient, AuthenticatedAlephHttpClient
from aleph.sdk.client.http import AlephHttpClient as _HttpClientImpl
from aleph.sdk.exceptions import ResourceNotFoundError
from aleph.sdk.query.filters import AccountFilesFilter, SortOrder
from aleph.sdk.types import StorageEnum
from aleph.sdk.utils import extended_json_encoder

from compat_helpers import (
    get_json,
    new_eth_account,
    parse_json_output,
    post_message_raw,
    random_item_hash,
    wait_until,
)

KiB = 1024
MiB = 1024 * 1024
GiB = 1024 * MiB

# Limits of the issue / spec appendix.
STORAGE_UNAUTH_LIMIT = 25 * MiB
STORAGE_AUTH_LIMIT = 100 * MiB
IPFS_UNAUTH_LIMIT = 25 * MiB
IPFS_AUTH_LIMIT = 1 * GiB
JSON_BODY_LIMIT = 1 * MiB

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_CID_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
HELLO_JSON_SHA256 = "93a23971a914e5eacbf0a8d25154cda309c3c1c72fbb9914d47c60f3cb681588"
HELLO_JSON_CID_V0 = "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen"

ERR_FILE_UNAVAILABLE = 4
ERR_STORE_UPDATE_UPDATE = 201


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unique_bytes(size: int) -> bytes:
    """Random bytes of exactly ``size`` (so every test file is new to the node)."""
    return secrets.token_bytes(size)


def unique_text(size: int = 2000) -> bytes:
    line = f"raleph compat file {uuid.uuid4()} ".encode()
    return (line * (size // len(line) + 1))[:size]


async def read_body(resp: aiohttp.ClientResponse) -> Any:
    raw = await resp.read()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def show(status: Any, body: Any, limit: int = 600) -> str:
    text = body if isinstance(body, str) else json.dumps(body) if not isinstance(body, bytes) else repr(body[:200])
    return f"HTTP {status}: {text[:limit]}"


async def post_file(
    http: aiohttp.ClientSession,
    path: str,
    data: bytes,
    *,
    metadata: Optional[str] = None,
    filename: Optional[str] = "file",
    content_type: str = "application/octet-stream",
    params: Optional[dict] = None,
) -> tuple[int, Any]:
    """Multipart upload exactly as the SDK builds it (metadata part first, then file)."""
    form = aiohttp.FormData()
    if metadata is not None:
        form.add_field("metadata", metadata, content_type="application/json")
    form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    async with http.post(path, data=form, params=params) as resp:
        return resp.status, await read_body(resp)


async def get_raw(http: aiohttp.ClientSession, path: str, headers: Optional[dict] = None):
    async with http.get(path, headers=headers) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


async def pin_count(http: aiohttp.ClientSession, file_hash: str) -> int:
    status, body = await get_json(http, f"/api/v0/storage/count/{file_hash}")
    assert status == 200, f"GET /api/v0/storage/count/{file_hash}: {show(status, body)}"
    assert isinstance(body, int) and not isinstance(body, bool), f"count must be a bare integer, got {body!r}"
    return body


async def assert_served(http: aiohttp.ClientSession, file_hash: str, data: bytes) -> None:
    status, headers, body = await get_raw(http, f"/api/v0/storage/raw/{file_hash}")
    assert status == 200, f"GET /api/v0/storage/raw/{file_hash}: HTTP {status} {body[:300]!r}"
    assert body == data, f"raw/{file_hash}: {len(body)} bytes differ from the {len(data)} uploaded"
    assert headers.get("Content-Length") == str(len(data)), dict(headers)


async def assert_absent(http: aiohttp.ClientSession, file_hash: str) -> None:
    status, _, body = await get_raw(http, f"/api/v0/storage/raw/{file_hash}")
    assert status == 404, f"GET /api/v0/storage/raw/{file_hash}: expected 404, got HTTP {status} {body[:200]!r}"


async def message_state(http: aiohttp.ClientSession, item_hash: str) -> tuple[int, Any]:
    return await get_json(http, f"/api/v0/messages/{item_hash}")


def default_payment() -> Payment:
    return Payment(chain=Chain.ETH, type=PaymentType.hold, receiver=None)


async def signed_store(
    ac: AuthenticatedAlephHttpClient,
    *,
    item_hash: str,
    item_type: ItemType = ItemType.storage,
    channel: str,
    ref: Optional[str] = None,
    **extra: Any,
) -> StoreMessage:
    """A signed inline STORE, built like SDK create_store builds it."""
    content = StoreContent(
        address=ac.account.get_address(),
        item_type=item_type,
        item_hash=ItemHash(item_hash),
        time=time.time(),
        payment=default_payment(),
        ref=ref,
        **extra,
    )
    return await ac.generate_signed_message(
        message_type=MessageType.store, content=content.model_dump(exclude_none=True), channel=channel
    )


def store_metadata(message: StoreMessage, sync: bool = True) -> str:
    """The multipart ``metadata`` part, byte for byte as the SDK sends it."""
    return json.dumps({"message": message.model_dump(exclude_none=True), "sync": sync}, default=extended_json_encoder)


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


def upload_leftovers(data_dir: Path) -> list[str]:
    """Files inside any ``tmp``-like directory of the node's data dir (uploads in progress)."""
    found = []
    for root, dirs, _files in os.walk(data_dir):
        for d in dirs:
            if d in ("tmp", "incoming", "uploads", "partial"):
                for r2, _d2, f2 in os.walk(os.path.join(root, d)):
                    found += [os.path.join(r2, f) for f in f2]
    return found


async def assert_nothing_left_behind(data_dir: Path, before: int, *, slack: int = 2 * MiB, what: str = "") -> None:
    """No upload leftovers and no growth of the data dir beyond ``slack`` bytes (index
    journal noise), within 10 s (the node may clean up asynchronously)."""
    deadline = time.monotonic() + 10
    while True:
        left = upload_leftovers(data_dir)
        grown = dir_bytes(data_dir) - before
        if not left and grown < slack:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: the node kept data after refusing the upload: data dir grew by {grown} bytes, "
                f"leftover upload files: {left[:5]}"
            )
        await asyncio.sleep(0.2)


# --------------------------------------------------------------------------------------
# raw HTTP over a socket: for bodies that aiohttp will not send (truncated, over a limit
# with an early answer) and to read the answer while the body is still being sent
# --------------------------------------------------------------------------------------


@dataclass
class Stream:
    """A body part of known size produced lazily (never held in memory)."""

    size: int
    chunks: Callable[[], Iterator[bytes]]


def pattern_stream(size: int, seed: bytes, chunk: int = MiB) -> Stream:
    block = hashlib.shake_256(seed).digest(chunk)

    def chunks() -> Iterator[bytes]:
        off, i = 0, 0
        while off < size:
            n = min(chunk, size - off)
            yield (i.to_bytes(8, "big") + block[8:])[:n]
            off += n
            i += 1

    return Stream(size, chunks)


def stream_sha256(s: Stream) -> str:
    h = hashlib.sha256()
    for c in s.chunks():
        h.update(c)
    return h.hexdigest()


def stream_cid(s: Stream) -> str:
    h = aleph_cid.CidHasher.for_ipfs()
    for c in s.chunks():
        h.update(c)
    return h.finalize()


@dataclass
class Part:
    name: str
    data: Union[bytes, Stream]
    filename: Optional[str] = None
    content_type: str = "application/octet-stream"


def multipart(parts: list[Part], boundary: Optional[str] = None, close: bool = True) -> tuple[str, int, Iterator[bytes]]:
    """(Content-Type, total length, body chunks) of a multipart/form-data body."""
    boundary = boundary or "raleph" + secrets.token_hex(12)
    pieces: list[Union[bytes, Stream]] = []
    for p in parts:
        disp = f'form-data; name="{p.name}"' + (f'; filename="{p.filename}"' if p.filename is not None else "")
        pieces.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {p.content_type}\r\n\r\n".encode())
        pieces.append(p.data)
        pieces.append(b"\r\n")
    if close:
        pieces.append(f"--{boundary}--\r\n".encode())
    size = sum(len(x) if isinstance(x, bytes) else x.size for x in pieces)

    def gen() -> Iterator[bytes]:
        for x in pieces:
            if isinstance(x, bytes):
                yield x
            else:
                yield from x.chunks()

    return f"multipart/form-data; boundary={boundary}", size, gen()


@dataclass
class RawResponse:
    status: Optional[int]  # None: the connection ended without an HTTP response
    headers: dict = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    sent: int = 0  # body bytes written before the answer / the end
    send_error: Optional[str] = None

    def __str__(self) -> str:
        if self.status is None:
            return f"no HTTP response (connection closed; {self.sent} body bytes sent; send error {self.send_error})"
        return f"HTTP {self.status} {self.body[:400]!r} ({self.sent} body bytes sent)"

    def json(self) -> Any:
        return json.loads(self.body)


async def _read_response(reader: asyncio.StreamReader) -> tuple[Optional[int], dict, bytes]:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return None, {}, b""
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if status != 100:
            break
    body = b""
    try:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                if size == 0:
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        body += getattr(e, "partial", b"")
    return status, headers, body


async def raw_request(
    node_url: str,
    method: str,
    path: str,
    headers: dict,
    body: Iterable[bytes] = (),
    *,
    half_close: bool = False,
    timeout: float = 300.0,
) -> RawResponse:
    """Send a request by hand; read the answer concurrently (so an early 413 is seen even
    while the body is still going out; sending stops once the answer is in)."""
    u = yarl.URL(node_url)
    reader, writer = await asyncio.open_connection(u.host, u.port, limit=1 << 20)
    head = [f"{method} {path} HTTP/1.1", f"Host: {u.host}:{u.port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    result = RawResponse(status=None)

    async def send() -> None:
        try:
            for chunk in body:
                writer.write(chunk)
                await writer.drain()
                result.sent += len(chunk)
            if half_close and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError) as e:
            result.send_error = repr(e)

    sender = asyncio.create_task(send())
    try:
        status, hdrs, data = await asyncio.wait_for(_read_response(reader), timeout)
        result.status, result.headers, result.body = status, hdrs, data
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return result


def chunked_encoding(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for c in chunks:
        if c:
            yield f"{len(c):x}\r\n".encode() + c + b"\r\n"
    yield b"0\r\n\r\n"


async def raw_multipart(node_url: str, path: str, parts: list[Part], *, chunked: bool = False, **kw) -> RawResponse:
    """POST a multipart body: with a Content-Length, or chunked (size unknown up front)."""
    ctype, size, chunks = multipart(parts)
    if chunked:
        headers = {"Content-Type": ctype, "Transfer-Encoding": "chunked"}
        return await raw_request(node_url, "POST", path, headers, chunked_encoding(chunks), **kw)
    return await raw_request(node_url, "POST", path, {"Content-Type": ctype, "Content-Length": str(size)}, chunks, **kw)


# ======================================================================================
# 1. uploads and downloads
# ======================================================================================


@pytest.mark.timeout(60)
async def test_storage_push_file_unauthenticated(auth_client, client, http):
    data = unique_bytes(300 * KiB)
    file_hash = await auth_client.storage_push_file(data)
    assert file_hash == sha256_hex(data)

    assert await client.download_file(file_hash) == data
    status, headers, body = await get_raw(http, f"/api/v0/storage/raw/{file_hash}")
    assert status == 200
    assert body == data
    assert headers["Content-Length"] == str(len(data))
    assert headers["Content-Type"].split(";")[0] == "application/octet-stream"
    async with http.head(f"/api/v0/storage/raw/{file_hash}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(data))
        assert await resp.read() == b""
    # pyaleph counts the 24 h grace-period pin of an unauthenticated upload.
    assert await pin_count(http, file_hash) == 1


@pytest.mark.timeout(60)
async def test_storage_add_file_raw_body(http):
    """Spec §6.7: storage/add_file also takes the file as the raw request body."""
    data = unique_bytes(10 * KiB)
    async with http.post(
        "/api/v0/storage/add_file", data=data, headers={"Content-Type": "application/octet-stream"}
    ) as resp:
        body = await read_body(resp)
        assert resp.status == 200, show(resp.status, body)
    assert body == {"status": "success", "hash": sha256_hex(data)}
    await assert_served(http, sha256_hex(data), data)


@pytest.mark.timeout(60)
async def test_zero_byte_files(http, client):
    status, body = await post_file(http, "/api/v0/storage/add_file", b"")
    assert status == 200, show(status, body)
    assert body["hash"] == EMPTY_SHA256
    status, headers, raw = await get_raw(http, f"/api/v0/storage/raw/{EMPTY_SHA256}")
    assert (status, raw, headers.get("Content-Length")) == (200, b"", "0")
    assert await client.download_file(EMPTY_SHA256) == b""

    status, body = await post_file(http, "/api/v0/ipfs/add_file", b"")
    assert status == 200, show(status, body)
    assert body["hash"] == EMPTY_CID_V0
    assert body["size"] == 0
    status, headers, raw = await get_raw(http, f"/ipfs/{EMPTY_CID_V0}")
    assert (status, raw) == (200, b""), f"/ipfs/{EMPTY_CID_V0}: HTTP {status}"


@pytest.mark.timeout(60)
async def test_storage_get_base64(auth_client, http):
    data = unique_bytes(5000)
    file_hash = await auth_client.storage_push_file(data)
    status, body = await get_json(http, f"/api/v0/storage/{file_hash}")
    assert status == 200, show(status, body)
    assert body["status"] == "success"
    assert body["hash"] == file_hash
    assert body["engine"] == "storage"
    assert base64.b64decode(body["content"]) == data  # pyaleph uses encodebytes (newlines): tolerated

    cid = await auth_client.ipfs_push_file(data)
    status, body = await get_json(http, f"/api/v0/storage/{cid}")
    assert status == 200, show(status, body)
    assert (body["hash"], body["engine"]) == (cid, "ipfs")
    assert base64.b64decode(body["content"]) == data


@pytest.mark.timeout(60)
async def test_add_json_storage_and_ipfs(auth_client, http):
    # The SDK pushes non-inline message content this way; known vectors.
    assert await auth_client.storage_push({"hello": "world"}) == HELLO_JSON_SHA256
    status, _, raw = await get_raw(http, f"/api/v0/storage/raw/{HELLO_JSON_SHA256}")
    assert (status, raw) == (200, b'{"hello":"world"}')

    assert await auth_client.ipfs_push({"hello": "world"}) == HELLO_JSON_CID_V0
    for path in (f"/api/v0/storage/raw/{HELLO_JSON_CID_V0}", f"/ipfs/{HELLO_JSON_CID_V0}"):
        status, _, raw = await get_raw(http, path)
        assert (status, raw) == (200, b'{"hello":"world"}'), f"{path}: HTTP {status} {raw[:100]!r}"

    # canonical form: keys sorted, compact; the hash is of exactly the bytes stored
    doc = {"z": [1, {"b": 2, "a": "é"}], "a": None, "n": str(uuid.uuid4())}
    h = await auth_client.storage_push(doc)
    status, _, raw = await get_raw(http, f"/api/v0/storage/raw/{h}")
    assert status == 200
    assert sha256_hex(raw) == h
    assert json.loads(raw) == doc
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.timeout(60)
async def test_ipfs_push_file_unauthenticated(auth_client, client, http):
    data = unique_bytes(600 * KiB)  # 3 chunks: a real DAG
    cid = await auth_client.ipfs_push_file(data)
    assert cid == aleph_cid.compute_cid(data)

    status, body = await post_file(http, "/api/v0/ipfs/add_file", data, filename="photo.bin")
    assert status == 200, show(status, body)
    assert body == {"status": "success", "hash": cid, "name": "photo.bin", "size": len(data)}

    assert await client.download_file(cid) == data  # /storage/raw/{cid}
    status, headers, raw = await get_raw(http, f"/ipfs/{cid}")
    assert status == 200 and raw == data, f"/ipfs/{cid}: HTTP {status}, {len(raw)} bytes"
    assert headers["Content-Length"] == str(len(data))


@pytest.mark.timeout(30)
async def test_sdk_download_file_ipfs_uses_external_gateway():
    """SDK 2.4.0's download_file_ipfs ignores api_server and fetches from a public gateway;
    the node's equivalent (GET /ipfs/{cid}) is covered by the raw-HTTP tests in this file."""
    import inspect

    src = inspect.getsource(_HttpClientImpl.download_file_ipfs_to_buffer)
    if "https://ipfs.aleph.im/ipfs/" in src:
        pytest.skip(
            "download_file_ipfs fetches https://ipfs.aleph.im/ipfs/{cid} (external, no network here), not the "
            "node; the node's /ipfs/{cid} route is tested with raw HTTP instead"
        )
    pytest.fail("the SDK's download_file_ipfs changed: it may now use the node, add a real test for it")


@pytest.mark.timeout(60)
async def test_raw_range_requests(auth_client, http):
    data = unique_bytes(700 * KiB)
    n = len(data)
    file_hash = await auth_client.storage_push_file(data)
    cid = await auth_client.ipfs_push_file(data)

    for path in (f"/api/v0/storage/raw/{file_hash}", f"/ipfs/{cid}"):
        status, headers, body = await get_raw(http, path)
        assert status == 200 and body == data, f"{path}: HTTP {status}"
        assert headers.get("Accept-Ranges") == "bytes", f"{path}: Accept-Ranges {headers.get('Accept-Ranges')!r}"

        cases = [
            ("bytes=0-99", 0, 99),
            ("bytes=1000-", 1000, n - 1),
            ("bytes=-500", n - 500, n - 1),
            (f"bytes={n - 10}-{n + 1000}", n - 10, n - 1),  # end past the size: clamped
            (f"bytes={262144 - 5}-{262144 + 5}", 262144 - 5, 262144 + 5),  # across a chunk boundary
            (f"bytes={n - 1}-{n - 1}", n - 1, n - 1),
        ]
        for rng, first, last in cases:
            status, headers, body = await get_raw(http, path, {"Range": rng})
            assert status == 206, f"{path} Range {rng}: HTTP {status}"
            assert headers.get("Content-Range") == f"bytes {first}-{last}/{n}", (rng, headers.get("Content-Range"))
            assert headers.get("Content-Length") == str(last - first + 1), (rng, headers.get("Content-Length"))
            assert body == data[first:last + 1], f"{path} Range {rng}: wrong bytes"

        status, headers, body = await get_raw(http, path, {"Range": f"bytes={n}-"})
        assert status == 416, f"{path} Range bytes={n}-: HTTP {status}"
        assert headers.get("Content-Range") == f"bytes */{n}", headers.get("Content-Range")


@pytest.mark.timeout(60)
async def test_gateway_route_errors(http):
    status, _, _ = await get_raw(http, f"/ipfs/{random_cid_v0()}")
    assert status == 404
    status, _, _ = await get_raw(http, "/ipfs/not-a-cid")
    assert status in (400, 404), status


def random_cid_v0() -> str:
    """A well-formed CIDv0 of random bytes nobody uploaded."""
    return aleph_cid.compute_cid(secrets.token_bytes(64))


@pytest.mark.timeout(60)
async def test_unknown_hashes(http, client):
    h = random_item_hash()
    cid = random_cid_v0()
    for path in (f"/api/v0/storage/raw/{h}", f"/api/v0/storage/{h}", f"/api/v0/storage/raw/{cid}", f"/api/v0/storage/{cid}"):
        status, _, body = await get_raw(http, path)
        assert status == 404, f"{path}: HTTP {status} {body[:200]!r}"
    async with http.head(f"/api/v0/storage/raw/{h}") as resp:
        assert resp.status == 404
    assert await pin_count(http, h) == 0
    with pytest.raises(ResourceNotFoundError):
        await client.download_file(h)
    for bad in ("not-a-hash", "zz" * 32, "A" * 64):
        for path in (f"/api/v0/storage/raw/{bad}", f"/api/v0/storage/{bad}"):
            status, _, body = await get_raw(http, path)
            assert status in (400, 404), f"{path}: HTTP {status} {body[:200]!r}"


# ======================================================================================
# 2. authenticated uploads through the SDK
# ======================================================================================


@pytest.mark.timeout(90)
async def test_create_store_storage_engine(auth_client, client, http, eth_account, channel):
    data = unique_bytes(200 * KiB)
    message, status = await auth_client.create_store(
        file_content=data, storage_engine=StorageEnum.storage, channel=channel, sync=True
    )
    # create_store returns the status of its SECOND post of the message (to /messages)
    assert status == MessageStatus.PROCESSED
    assert isinstance(message, StoreMessage)
    assert message.content.item_hash == sha256_hex(data)
    assert message.content.item_type == ItemType.storage

    fetched = await client.get_message(message.item_hash, message_type=StoreMessage)
    assert fetched.content.item_hash == sha256_hex(data)
    assert await client.download_file(sha256_hex(data)) == data
    # authenticated upload: the message pin only, no grace-period pin
    assert await pin_count(http, sha256_hex(data)) == 1

    status, body = await get_json(http, f"/api/v0/storage/by-message-hash/{message.item_hash}")
    assert status == 200, show(status, body)
    assert body == {
        "ref": message.item_hash,
        "owner": eth_account.get_address(),
        "file_hash": sha256_hex(data),
        "download_url": f"/api/v0/storage/raw/{sha256_hex(data)}",
        "size": len(data),
    }
    status, body = await get_json(http, f"/api/v0/storage/metadata/{sha256_hex(data)}")
    assert status == 200, show(status, body)
    assert (body["file_hash"], body["size"], body["type"]) == (sha256_hex(data), len(data), "file")


@pytest.mark.timeout(90)
async def test_create_store_not_sync(auth_client, client, channel):
    data = unique_bytes(1000)
    message, status = await auth_client.create_store(file_content=data, channel=channel, sync=False)
    assert status in (MessageStatus.PENDING, MessageStatus.PROCESSED)

    async def processed():
        return await client.get_message_status(message.item_hash) == MessageStatus.PROCESSED

    await wait_until(processed, timeout=30, message="STORE processed")
    assert await client.download_file(sha256_hex(data)) == data


@pytest.mark.timeout(90)
async def test_add_file_with_message_then_same_message_again(auth_client, http, channel):
    """What create_store does, step by step: the upload answers for the message, and the
    second post of the same message to /messages succeeds too."""
    data = unique_bytes(4096)
    message = await signed_store(auth_client, item_hash=sha256_hex(data), channel=channel)
    status, body = await post_file(http, "/api/v0/storage/add_file", data, metadata=store_metadata(message, sync=True))
    assert status == 200, show(status, body)
    assert body == {"status": "success", "hash": sha256_hex(data)}
    status, body = await message_state(http, message.item_hash)
    assert status == 200 and body["status"] == "processed", show(status, body)

    wire = json.loads(json.dumps(message.model_dump(include=set(AuthenticatedAlephHttpClient.BROADCAST_MESSAGE_FIELDS)), default=extended_json_encoder))
    t0 = time.monotonic()
    status, body = await post_message_raw(http, wire, sync=True)
    assert status == 200, show(status, body)
    assert body["message_status"] == "processed"
    assert time.monotonic() - t0 < 10, "re-posting a processed message with sync=true must answer at once"
    status, body = await post_message_raw(http, wire, sync=False)
    assert status in (200, 202), show(status, body)

    # and uploading the same file with the same message once more is idempotent
    status, body = await post_file(http, "/api/v0/storage/add_file", data, metadata=store_metadata(message, sync=True))
    assert status == 200, show(status, body)
    assert await pin_count(http, sha256_hex(data)) == 1


@pytest.mark.timeout(90)
async def test_create_store_ipfs_engine(auth_client, client, http, channel):
    data = unique_bytes(3 * 262144 + 17)
    message, status = await auth_client.create_store(
        file_content=data, storage_engine=StorageEnum.ipfs, channel=channel, sync=True
    )
    assert status == MessageStatus.PROCESSED
    cid = aleph_cid.compute_cid(data)
    assert message.content.item_hash == cid
    assert message.content.item_type == ItemType.ipfs
    assert await client.download_file(cid) == data
    status, _, raw = await get_raw(http, f"/ipfs/{cid}")
    assert status == 200 and raw == data
    assert await pin_count(http, cid) == 1


@pytest.mark.timeout(90)
async def test_ipfs_add_file_with_message_response(auth_client, http, channel):
    data = unique_bytes(1234)
    cid = aleph_cid.compute_cid(data)
    message = await signed_store(auth_client, item_hash=cid, item_type=ItemType.ipfs, channel=channel)
    status, body = await post_file(http, "/api/v0/ipfs/add_file", data, metadata=store_metadata(message), filename="a.txt")
    assert status == 200, show(status, body)
    assert body == {"status": "success", "hash": cid, "name": "a.txt", "size": len(data)}
    status, body = await message_state(http, message.item_hash)
    assert body["status"] == "processed", show(status, body)


@pytest.mark.timeout(90)
async def test_store_pins_previously_uploaded_file(auth_client, client, http, eth_account, channel):
    data = unique_bytes(2048)
    file_hash = await auth_client.storage_push_file(data)
    message, status = await auth_client.create_store(file_hash=file_hash, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    assert await pin_count(http, file_hash) >= 1
    files = await client.get_account_files(eth_account.get_address())
    assert [(f.file_hash, f.item_hash, f.size) for f in files.files] == [(file_hash, message.item_hash, len(data))]


@pytest.mark.timeout(120)
async def test_store_file_versions_by_hash_ref(auth_client, http, eth_account, channel):
    v1_data, v2_data, v3_data = unique_bytes(100), unique_bytes(200), unique_bytes(300)
    v1, status = await auth_client.create_store(file_content=v1_data, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    status, body = await get_json(http, f"/api/v0/storage/by-ref/{v1.item_hash}")
    assert status == 200, show(status, body)
    assert body["file_hash"] == sha256_hex(v1_data)

    v2, status = await auth_client.create_store(file_content=v2_data, ref=v1.item_hash, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    status, body = await get_json(http, f"/api/v0/storage/by-ref/{v1.item_hash}")
    assert status == 200, show(status, body)
    assert body == {
        "ref": v1.item_hash,
        "owner": eth_account.get_address(),
        "file_hash": sha256_hex(v2_data),
        "download_url": f"/api/v0/storage/raw/{sha256_hex(v2_data)}",
        "size": len(v2_data),
    }
    status, body = await get_json(http, f"/api/v0/storage/by-message-hash/{v2.item_hash}")
    assert status == 200 and body["ref"] == v1.item_hash, show(status, body)

    # A version of a version is refused: STORE_UPDATE_UPDATE (201).
    v3 = await signed_store(auth_client, item_hash=sha256_hex(v3_data), ref=v2.item_hash, channel=channel)
    status, body = await post_file(http, "/api/v0/storage/add_file", v3_data, metadata=store_metadata(v3))
    assert status == 422, show(status, body)
    status, body = await message_state(http, v3.item_hash)
    assert status == 200 and body["status"] == "rejected", show(status, body)
    assert body["error_code"] == ERR_STORE_UPDATE_UPDATE, show(status, body)
    # the tag still points at v2
    status, body = await get_json(http, f"/api/v0/storage/by-ref/{v1.item_hash}")
    assert body["file_hash"] == sha256_hex(v2_data)


@pytest.mark.timeout(120)
async def test_store_free_text_ref_tag(auth_client, http, eth_account, channel):
    ref = f"doc-{uuid.uuid4().hex[:8]}"
    a, b = unique_bytes(10), unique_bytes(20)
    _, status = await auth_client.create_store(file_content=a, ref=ref, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    _, status = await auth_client.create_store(file_content=b, ref=ref, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    address = eth_account.get_address()
    status, body = await get_json(http, f"/api/v0/storage/by-ref/{address}/{ref}")
    assert status == 200, show(status, body)
    assert (body["ref"], body["owner"], body["file_hash"]) == (ref, address, sha256_hex(b))
    # the same free-text ref of someone else is another tag
    status, body = await get_json(http, f"/api/v0/storage/by-ref/{new_eth_account().get_address()}/{ref}")
    assert status == 404, show(status, body)


@pytest.mark.timeout(90)
async def test_store_ref_to_unknown_store_stays_pending(auth_client, http, channel):
    """STORE_REF_NOT_FOUND (200) is a retry: the message is pending, not rejected."""
    data = unique_bytes(50)
    message, status = await auth_client.create_store(
        file_content=data, ref=random_item_hash(), channel=channel, sync=True
    )
    assert status == MessageStatus.PENDING
    status, body = await message_state(http, message.item_hash)
    assert status == 200 and body["status"] == "pending", show(status, body)


@pytest.mark.timeout(120)
async def test_account_files_listing(node_url, http, channel):
    account = new_eth_account()
    address = account.get_address()
    d1, d2 = unique_bytes(111), unique_bytes(222)
    async with AuthenticatedAlephHttpClient(account=account, api_server=node_url) as ac:
        m1, s1 = await ac.create_store(file_content=d1, channel=channel, sync=True)
        await asyncio.sleep(0.01)  # distinct content times
        m2, s2 = await ac.create_store(file_content=d2, channel=channel, sync=True, storage_engine=StorageEnum.ipfs)
    assert s1 == s2 == MessageStatus.PROCESSED
    cid2 = aleph_cid.compute_cid(d2)

    async with AlephHttpClient(api_server=node_url) as c:
        resp = await c.get_account_files(address)  # the SDK model forbids extra keys per file
        assert resp.address == address
        assert resp.total_size == len(d1) + len(d2)
        assert resp.pagination_total == 2
        assert [(f.file_hash, f.item_hash, f.size, f.type.value) for f in resp.files] == [
            (cid2, m2.item_hash, len(d2), "file"),  # most recent first by default
            (sha256_hex(d1), m1.item_hash, len(d1), "file"),
        ]
        one = await c.get_account_files(address, page_size=1, page=2)
        assert [f.file_hash for f in one.files] == [sha256_hex(d1)]
        assert (one.pagination_per_page, one.pagination_page, one.pagination_total) == (1, 2, 2)

    status, body = await get_json(http, f"/api/v0/addresses/{address}/files", sort_order="1")
    assert status == 200, show(status, body)
    assert [f["file_hash"] for f in body["files"]] == [sha256_hex(d1), cid2]
    # ISO datetime with a zone: the CLI parses it with "%Y-%m-%dT%H:%M:%S.%f%z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,6}(\+00:00|Z)", body["files"][0]["created"]), body["files"][0]
    async with AlephHttpClient(api_server=node_url) as c:
        asc = await c.get_account_files(address, filter=AccountFilesFilter(sort_order=SortOrder.ASCENDING))
        assert [f.file_hash for f in asc.files] == [sha256_hex(d1), cid2]  # sent as sortOrder=1
    # an address without files: the reference answers 404 (the SDK then raises); an empty
    # list is accepted too (the CLI shows an empty table either way)
    status, body = await get_json(http, f"/api/v0/addresses/{new_eth_account().get_address()}/files")
    assert status == 404 or (status == 200 and body["files"] == [] and body["total_size"] == 0), show(status, body)


@pytest.mark.timeout(120)
async def test_forget_store_unpins(node_url, auth_client, client, http, eth_account, channel):
    data = unique_bytes(5000)
    file_hash = sha256_hex(data)
    m1, status = await auth_client.create_store(file_content=data, channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    other = new_eth_account()
    async with AuthenticatedAlephHttpClient(account=other, api_server=node_url) as oc:
        m2, status = await oc.create_store(file_hash=file_hash, channel=channel, sync=True)
        assert status == MessageStatus.PROCESSED
        assert await pin_count(http, file_hash) == 2

        _, status = await oc.forget(hashes=[m2.item_hash], reason="unpin", channel=channel, sync=True)
        assert status == MessageStatus.PROCESSED
    assert await client.get_message_status(m2.item_hash) == MessageStatus.FORGOTTEN
    assert await pin_count(http, file_hash) == 1
    status, body = await get_json(http, f"/api/v0/addresses/{other.get_address()}/files")
    assert status == 404 or file_hash not in [f["file_hash"] for f in body.get("files", [])], show(status, body)
    await assert_served(http, file_hash, data)

    _, status = await auth_client.forget(hashes=[m1.item_hash], reason="unpin", channel=channel, sync=True)
    assert status == MessageStatus.PROCESSED
    status, body = await get_json(http, f"/api/v0/addresses/{eth_account.get_address()}/files")
    assert status == 404 or file_hash not in [f["file_hash"] for f in body.get("files", [])], show(status, body)
    status, body = await get_json(http, f"/api/v0/storage/by-message-hash/{m1.item_hash}")
    assert status == 404, show(status, body)
    # no pin left: kept for the grace period (24 h on this node), not deleted at once
    await assert_served(http, file_hash, data)


@pytest.mark.timeout(90)
async def test_store_of_unavailable_file_stays_pending(auth_client, http, channel):
    for item_hash, item_type in ((random_item_hash(), StorageEnum.storage), (random_cid_v0(), StorageEnum.ipfs)):
        message, status = await auth_client.create_store(
            file_hash=item_hash, storage_engine=item_type, channel=channel, sync=True
        )
        assert status == MessageStatus.PENDING, (item_type, status)
        status, body = await message_state(http, message.item_hash)
        assert status == 200 and body["status"] == "pending", show(status, body)


@pytest.mark.timeout(120)
async def test_pending_store_processed_once_file_arrives(auth_client, client, channel):
    """The fetch is retried: a STORE posted before its file is processed once the file is
    uploaded (first retries come within seconds with the default backoff)."""
    data = unique_bytes(3000)
    message, status = await auth_client.create_store(file_hash=sha256_hex(data), channel=channel, sync=False)
    assert status == MessageStatus.PENDING
    assert await auth_client.storage_push_file(data) == sha256_hex(data)

    async def processed():
        return await client.get_message_status(message.item_hash) == MessageStatus.PROCESSED

    await wait_until(processed, timeout=90, message="pending STORE processed after the file was uploaded")


# ======================================================================================
# 3. the CLI
# ======================================================================================


async def run_cli(cli, *args, **kw):
    return await asyncio.to_thread(cli.run, *args, **kw)


async def wait_processed(client, item_hash: str, timeout: float = 60):
    async def processed():
        return await client.get_message_status(item_hash) == MessageStatus.PROCESSED

    await wait_until(processed, timeout=timeout, message=f"{item_hash} processed")


@pytest.mark.cli
@pytest.mark.timeout(240)
async def test_cli_file_upload_download_storage(cli, client, channel):
    data = unique_text(3000)
    src = cli.home / "notes.txt"
    src.write_bytes(data)
    proc = await run_cli(cli, "file", "upload", str(src), "--channel", channel)
    sent = parse_json_output(proc.stdout)
    assert sent["type"] == "STORE", proc.stdout
    assert sent["content"]["item_type"] == "storage"
    assert sent["content"]["item_hash"] == sha256_hex(data)
    assert sent["sender"] == cli.account.get_address()
    await wait_processed(client, sent["item_hash"])

    out = cli.home / "out"
    await run_cli(cli, "file", "download", sha256_hex(data), "--output-path", str(out), "--file-name", "copy")
    assert (out / "copy").read_bytes() == data

    proc = await run_cli(cli, "file", "download", sent["item_hash"], "--only-info")
    assert f"Hash: {sha256_hex(data)}" in proc.stdout, proc.stdout
    assert f"/api/v0/storage/raw/{sha256_hex(data)}" in proc.stdout, proc.stdout

    proc = await run_cli(cli, "file", "list", "--address", cli.account.get_address(), "--json")
    listed = parse_json_output(proc.stdout)
    assert [(f["file_hash"], f["item_hash"]) for f in listed["files"]] == [(sha256_hex(data), sent["item_hash"])]
    proc = await run_cli(cli, "file", "list", "--address", cli.account.get_address())  # parses `created`
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "Failed to retrieve" not in proc.stdout, proc.stdout


@pytest.mark.cli
@pytest.mark.timeout(240)
async def test_cli_file_upload_large_goes_to_ipfs(cli, client, channel):
    """Above 4 MiB the CLI switches to IPFS: unauthenticated ipfs/add_file, then POST /messages."""
    data = unique_bytes(5 * MiB + 123)
    src = cli.home / "big.bin"
    src.write_bytes(data)
    proc = await run_cli(cli, "file", "upload", str(src), "--channel", channel)
    assert "Error uploading" not in proc.stdout, proc.stdout
    sent = parse_json_output(proc.stdout)
    cid = aleph_cid.compute_cid(data)
    assert sent["content"]["item_type"] == "ipfs"
    assert sent["content"]["item_hash"] == cid
    await wait_processed(client, sent["item_hash"])

    out = cli.home / "out"
    await run_cli(cli, "file", "download", cid, "--output-path", str(out), "--file-name", "big")
    assert (out / "big").read_bytes() == data
    src.unlink()
    (out / "big").unlink()


@pytest.mark.cli
@pytest.mark.timeout(240)
async def test_cli_file_upload_ipfs_engine_small(cli, client, http, channel):
    data = unique_text(777)
    src = cli.home / "small.txt"
    src.write_bytes(data)
    proc = await run_cli(cli, "file", "upload", str(src), "--storage-engine", "ipfs", "--channel", channel)
    sent = parse_json_output(proc.stdout)
    cid = aleph_cid.compute_cid(data)
    assert sent["content"]["item_hash"] == cid
    await wait_processed(client, sent["item_hash"])
    status, _, raw = await get_raw(http, f"/ipfs/{cid}")
    assert status == 200 and raw == data


# ======================================================================================
# 4. bad input
# ======================================================================================


@pytest.mark.timeout(60)
async def test_add_file_hash_mismatch_storage(auth_client, http, node, channel):
    data, claimed = unique_bytes(4000), unique_bytes(4000)
    message = await signed_store(auth_client, item_hash=sha256_hex(claimed), channel=channel)
    before = dir_bytes(node.data_dir)
    status, body = await post_file(http, "/api/v0/storage/add_file", data, metadata=store_metadata(message))
    assert status == 422, show(status, body)
    await assert_absent(http, sha256_hex(data))
    await assert_absent(http, sha256_hex(claimed))
    status, body = await message_state(http, message.item_hash)
    assert status == 404 or body.get("status") == "rejected", show(status, body)
    await assert_nothing_left_behind(node.data_dir, before, what="hash mismatch")


@pytest.mark.timeout(60)
async def test_add_file_hash_mismatch_ipfs(auth_client, http, channel):
    data, claimed = unique_bytes(4000), unique_bytes(4000)
    message = await signed_store(
        auth_client, item_hash=aleph_cid.compute_cid(claimed), item_type=ItemType.ipfs, channel=channel
    )
    status, body = await post_file(http, "/api/v0/ipfs/add_file", data, metadata=store_metadata(message))
    assert status == 422, show(status, body)
    await assert_absent(http, aleph_cid.compute_cid(data))
    await assert_absent(http, sha256_hex(data))
    status, body = await message_state(http, message.item_hash)
    assert status == 404 or body.get("status") == "rejected", show(status, body)

    # a storage-type STORE on the ipfs endpoint
    message = await signed_store(auth_client, item_hash=sha256_hex(data), channel=channel)
    status, body = await post_file(http, "/api/v0/ipfs/add_file", data, metadata=store_metadata(message))
    assert status == 422, show(status, body)


@pytest.mark.timeout(60)
async def test_add_file_bad_signature(auth_client, http, channel):
    data = unique_bytes(1000)
    message = await signed_store(auth_client, item_hash=sha256_hex(data), channel=channel)
    meta = json.loads(store_metadata(message))
    sig = meta["message"]["signature"]
    meta["message"]["signature"] = sig[:20] + ("0" if sig[20] != "0" else "1") + sig[21:]
    status, body = await post_file(http, "/api/v0/storage/add_file", data, metadata=json.dumps(meta))
    assert status == 403, show(status, body)
    await assert_absent(http, sha256_hex(data))
    status, body = await message_state(http, message.item_hash)
    assert status == 404 or body.get("status") == "rejected", show(status, body)


@pytest.mark.timeout(60)
async def test_add_file_bad_metadata_or_parts(http, auth_client, channel):
    """Refusals are HTTP answers the client can read, on a connection it can keep using:
    the SDK sends metadata before the file, so a node refusing on the metadata alone must
    still read (or drain) the file part rather than reset the connection under the client."""
    data = unique_bytes(2 * MiB)
    for path in ("/api/v0/storage/add_file", "/api/v0/ipfs/add_file"):
        try:
            status, body = await post_file(http, path, data, metadata="{not json")
        except aiohttp.ClientError as e:
            raise AssertionError(f"{path} with invalid metadata and a 2 MiB file: no HTTP answer, {e!r}") from None
        assert status == 422, f"{path} bad metadata: {show(status, body)}"
        # the same keep-alive session goes on working
        status, _ = await get_json(http, "/api/v0/version")
        assert status == 200

        message = await signed_store(auth_client, item_hash=sha256_hex(data), channel=channel)
        form = aiohttp.FormData()
        form.add_field("metadata", store_metadata(message), content_type="application/json")
        try:
            async with http.post(path, data=form) as resp:
                assert resp.status in (400, 422), f"{path} without a file part: HTTP {resp.status} {await resp.text()}"
        except aiohttp.ClientError as e:
            raise AssertionError(f"{path} without a file part: no HTTP answer, {e!r}") from None
    await assert_absent(http, sha256_hex(data))
    async with http.post("/api/v0/ipfs/add_file", data=b"x" * 100, headers={"Content-Type": "application/octet-stream"}) as resp:
        assert resp.status in (400, 415, 422), f"ipfs/add_file takes multipart only: HTTP {resp.status}"


@pytest.mark.timeout(120)
async def test_sdk_sees_413_over_the_unauthenticated_limit(auth_client, http):
    """What a client gets for a too-large upload: an HTTP 413 (aiohttp ClientResponseError),
    not a reset connection (the CLI tests e.status == 413 to advise `aleph file pin`)."""
    data = unique_bytes(STORAGE_UNAUTH_LIMIT + 1)
    for push in (auth_client.storage_push_file, auth_client.ipfs_push_file):
        with pytest.raises(aiohttp.ClientResponseError) as exc_info:
            await push(data)
        assert exc_info.value.status == 413, f"{push.__name__}: {exc_info.value!r}"
    await assert_absent(http, sha256_hex(data))
    await assert_absent(http, aleph_cid.compute_cid(data))


@pytest.mark.cli
@pytest.mark.timeout(240)
async def test_cli_file_upload_over_the_limit(cli, http, channel):
    """A file > 4 MiB goes to the unauthenticated IPFS upload (25 MiB limit): the CLI must
    get the 413 and print its advice."""
    data = unique_bytes(IPFS_UNAUTH_LIMIT + 1)
    src = cli.home / "huge.bin"
    src.write_bytes(data)
    proc = await run_cli(cli, "file", "upload", str(src), "--channel", channel)
    src.unlink()
    assert "File is too large to be uploaded" in proc.stdout, proc.stdout + proc.stderr
    await assert_absent(http, aleph_cid.compute_cid(data))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["/api/v0/storage/add_file", "/api/v0/ipfs/add_file"])
async def test_truncated_multipart_body(node_url, node, http, path):
    data = unique_bytes(3 * MiB)
    ctype, size, chunks = multipart([Part("file", data, filename="f.bin")])
    body = b"".join(chunks)
    before = dir_bytes(node.data_dir)

    # 1. the client promises Content-Length bytes, sends half and stops sending
    resp = await raw_request(
        node_url, "POST", path, {"Content-Type": ctype, "Content-Length": str(size)}, [body[: size // 2]],
        half_close=True, timeout=60,
    )
    assert resp.status is None or 400 <= resp.status < 500, f"truncated body: {resp}"
    # 2. chunked body whose last chunk never comes
    half = body[: size // 2]
    resp = await raw_request(
        node_url, "POST", path, {"Content-Type": ctype, "Transfer-Encoding": "chunked"},
        [f"{len(half):x}\r\n".encode() + half + b"\r\n"], half_close=True, timeout=60,
    )
    assert resp.status is None or 400 <= resp.status < 500, f"chunked body without its end: {resp}"
    # 3. a complete request whose multipart body lacks its closing boundary
    ctype2, size2, chunks2 = multipart([Part("file", data, filename="f.bin")], close=False)
    resp = await raw_request(node_url, "POST", path, {"Content-Type": ctype2, "Content-Length": str(size2)}, chunks2, timeout=60)
    assert resp.status is not None and 400 <= resp.status < 500, f"multipart without closing boundary: {resp}"

    await assert_absent(http, sha256_hex(data))
    await assert_absent(http, aleph_cid.compute_cid(data))
    await assert_nothing_left_behind(node.data_dir, before, what=f"truncated upload to {path}")
    assert node.alive()


@pytest.mark.timeout(120)
async def test_unauthenticated_storage_upload_limit(node_url, node, http):
    # exactly the limit: accepted
    at = pattern_stream(STORAGE_UNAUTH_LIMIT, secrets.token_bytes(16))
    resp = await raw_multipart(node_url, "/api/v0/storage/add_file", [Part("file", at, filename="f")])
    assert resp.status == 200, f"upload of exactly {STORAGE_UNAUTH_LIMIT} bytes: {resp}"
    assert resp.json()["hash"] == stream_sha256(at)

    # one byte more: 413, nothing stored, nothing left behind (multipart, then raw body)
    over = pattern_stream(STORAGE_UNAUTH_LIMIT + 1, secrets.token_bytes(16))
    before = dir_bytes(node.data_dir)
    resp = await raw_multipart(node_url, "/api/v0/storage/add_file", [Part("file", over, filename="f")])
    assert resp.status == 413, f"unauthenticated upload of {over.size} bytes: {resp}"
    resp = await raw_multipart(node_url, "/api/v0/storage/add_file", [Part("file", over, filename="f")], chunked=True)
    assert resp.status == 413, f"unauthenticated upload of {over.size} bytes, chunked: {resp}"
    resp = await raw_request(
        node_url, "POST", "/api/v0/storage/add_file",
        {"Content-Type": "application/octet-stream", "Content-Length": str(over.size)}, over.chunks(),
    )
    assert resp.status == 413, f"unauthenticated raw-body upload of {over.size} bytes: {resp}"
    await assert_absent(http, stream_sha256(over))
    await assert_nothing_left_behind(node.data_dir, before, what="unauthenticated upload over the limit")


@pytest.mark.timeout(120)
async def test_unauthenticated_ipfs_upload_limit(node_url, node, http):
    over = pattern_stream(IPFS_UNAUTH_LIMIT + 1, secrets.token_bytes(16))
    before = dir_bytes(node.data_dir)
    resp = await raw_multipart(node_url, "/api/v0/ipfs/add_file", [Part("file", over, filename="f")])
    assert resp.status == 413, f"unauthenticated ipfs upload of {over.size} bytes: {resp}"
    resp = await raw_multipart(node_url, "/api/v0/ipfs/add_file", [Part("file", over, filename="f")], chunked=True)
    assert resp.status == 413, f"unauthenticated ipfs upload of {over.size} bytes, chunked: {resp}"
    await assert_absent(http, stream_cid(over))
    await assert_nothing_left_behind(node.data_dir, before, what="unauthenticated ipfs upload over the limit")


@pytest.mark.timeout(400)
async def test_authenticated_storage_upload_limit(node_url, node, http, auth_client, channel):
    # one byte over 100 MiB with a valid STORE for those bytes: 413, message not stored
    over = pattern_stream(STORAGE_AUTH_LIMIT + 1, secrets.token_bytes(16))
    message = await signed_store(auth_client, item_hash=stream_sha256(over), channel=channel)
    before = dir_bytes(node.data_dir)
    resp = await raw_multipart(
        node_url, "/api/v0/storage/add_file",
        [Part("metadata", store_metadata(message).encode(), content_type="application/json"), Part("file", over, filename="f")],
    )
    assert resp.status == 413, f"authenticated upload of {over.size} bytes: {resp}"
    resp = await raw_multipart(
        node_url, "/api/v0/storage/add_file",
        [Part("metadata", store_metadata(message).encode(), content_type="application/json"), Part("file", over, filename="f")],
        chunked=True,
    )
    assert resp.status == 413, f"authenticated upload of {over.size} bytes, chunked: {resp}"
    await assert_absent(http, stream_sha256(over))
    status, body = await message_state(http, message.item_hash)
    assert status == 404 or body.get("status") == "rejected", show(status, body)
    await assert_nothing_left_behind(node.data_dir, before, what="authenticated upload over the limit")

    # above the unauthenticated limit but within the authenticated one: accepted
    mid = pattern_stream(STORAGE_UNAUTH_LIMIT + 5 * MiB, secrets.token_bytes(16))
    message = await signed_store(auth_client, item_hash=stream_sha256(mid), channel=channel)
    resp = await raw_multipart(
        node_url, "/api/v0/storage/add_file",
        [Part("metadata", store_metadata(message).encode(), content_type="application/json"), Part("file", mid, filename="f")],
    )
    assert resp.status == 200, f"authenticated upload of {mid.size} bytes: {resp}"
    status, body = await message_state(http, message.item_hash)
    assert body["status"] == "processed", show(status, body)


@pytest.mark.timeout(900)
async def test_authenticated_ipfs_upload_limit(node_url, node, http, auth_client, channel):
    """1 GiB + 1 bytes with a STORE: 413. Sent once with a Content-Length (the node may refuse
    up front) and once chunked (the limit must hold while streaming)."""
    over = pattern_stream(IPFS_AUTH_LIMIT + 1, secrets.token_bytes(16))
    # any valid CID works as the claim: the size limit must stop the upload first
    message = await signed_store(auth_client, item_hash=random_cid_v0(), item_type=ItemType.ipfs, channel=channel)
    parts = [Part("metadata", store_metadata(message).encode(), content_type="application/json"), Part("file", over, filename="f")]
    before = dir_bytes(node.data_dir)
    resp = await raw_multipart(node_url, "/api/v0/ipfs/add_file", parts, timeout=800)
    assert resp.status == 413, f"authenticated ipfs upload of {over.size} bytes: {resp}"
    resp = await raw_multipart(node_url, "/api/v0/ipfs/add_file", parts, chunked=True, timeout=800)
    assert resp.status == 413, f"authenticated ipfs upload of {over.size} bytes, chunked: {resp}"
    await assert_nothing_left_behind(node.data_dir, before, what="authenticated ipfs upload over the limit")


@pytest.mark.timeout(60)
async def test_add_json_body_limit(node_url, node, http):
    """The issue's JSON body limit (1 MiB) applies to add_json (pyaleph allows 25 MiB there)."""
    before = dir_bytes(node.data_dir)
    big = json.dumps({"pad": "x" * JSON_BODY_LIMIT}).encode()
    for path in ("/api/v0/storage/add_json", "/api/v0/ipfs/add_json"):
        resp = await raw_request(
            node_url, "POST", path, {"Content-Type": "application/json", "Content-Length": str(len(big))}, [big]
        )
        assert resp.status == 413, f"{path} with {len(big)} bytes: {resp}"
        resp = await raw_request(node_url, "POST", path, {"Content-Type": "application/json", "Content-Length": "9"}, [b"{not json"])
        assert resp.status in (400, 422), f"{path} with invalid JSON: {resp}"
    await assert_nothing_left_behind(node.data_dir, before, what="add_json over the limit")

    for path in ("/api/v0/storage/add_json", "/api/v0/ipfs/add_json"):
        doc = {"pad": "y" * (JSON_BODY_LIMIT - 100 * KiB), "id": str(uuid.uuid4())}
        ok = json.dumps(doc).encode()
        resp = await raw_request(
            node_url, "POST", path, {"Content-Type": "application/json", "Content-Length": str(len(ok))}, [ok]
        )
        assert resp.status == 200, f"{path} with {len(ok)} bytes: {resp}"
        status, _, raw = await get_raw(http, f"/api/v0/storage/raw/{resp.json()['hash']}")
        assert status == 200 and json.loads(raw) == doc


@pytest.mark.timeout(60)
async def test_path_tricks(node_url, node, http, tmp_path):
    """File names from clients are never paths: uploads named like traversals land in the
    content store only, and download routes never serve anything but stored files."""
    escaped = f"escaped-{uuid.uuid4().hex}"
    target = tmp_path / escaped
    names = [
        "../" * 12 + str(target).lstrip("/"),
        str(target),
        "..\\..\\..\\" + escaped,
        f"a/../../{escaped}",
        f"../{escaped}",
    ]
    for name in names:
        data = unique_bytes(256)
        for path in ("/api/v0/storage/add_file", "/api/v0/ipfs/add_file"):
            status, body = await post_file(http, path, data, filename=name)
            assert status == 200 or 400 <= status < 500, f"{path} filename {name!r}: {show(status, body)}"
            if status == 200:
                want = sha256_hex(data) if "storage" in path else aleph_cid.compute_cid(data)
                assert body["hash"] == want
    # nowhere on disk near the node or the test: pytest's base temp dir holds both
    base = node.data_dir.parents[1]
    hits = [str(p) for p in base.rglob(f"*{escaped}*")] + [str(p) for p in Path("/tmp").glob(f"*{escaped}*")]
    assert not target.exists() and not hits, f"an upload's file name became a path: {hits}"

    # traversal in the hash of download routes: a 4xx, never a file's bytes
    for path in (
        "/api/v0/storage/raw/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v0/storage/raw/..%2Findex.sqlite",
        "/api/v0/storage/raw/..%2F..%2Findex.sqlite",
        "/api/v0/storage/..%2F..%2Fetc%2Fpasswd",
        "/ipfs/..%2F..%2Fetc%2Fpasswd",
        "/api/v0/storage/raw/%2Fetc%2Fpasswd",
        "/api/v0/storage/raw/../../../../etc/passwd",
        "/ipfs/../../../../etc/passwd",
        "/api/v0/storage/raw/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ):
        resp = await raw_request(node_url, "GET", path, {})
        assert resp.status is not None and 400 <= resp.status < 500, f"GET {path}: {resp}"
        assert b"root:" not in resp.body and b"SQLite format" not in resp.body, f"GET {path} leaked a file"
    resp = await raw_request(node_url, "GET", "/api/v0/storage/count/..%2F..%2Fetc%2Fpasswd", {})
    assert resp.status is not None and (400 <= resp.status < 500 or resp.body.strip() == b"0"), f"count: {resp}"


# ======================================================================================
# 5. nodes with short timers: retries and garbage collection
# ======================================================================================


@dataclass
class OwnNode:
    url: str
    proc: subprocess.Popen
    data_dir: Path
    log_path: Path
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))

    def log_tail(self) -> str:
        return "".join(self.tail) or "(node printed nothing)\n"


def _start_own_node(tmp_root: Path, config_text: str) -> OwnNode:
    bin_path = os.environ.get("RALEPH_BIN")
    if not bin_path:
        pytest.fail("RALEPH_BIN is not set", pytrace=False)
    data_dir = tmp_root / "node-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = tmp_root / "node.toml"
    config.write_text(config_text)
    log_path = tmp_root / "node.log"
    cmd = [str(Path(bin_path).resolve()), "node", "--config", str(config), "--data-dir", str(data_dir), "--api-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"]
    env = dict(os.environ, NO_COLOR="1", RUST_BACKTRACE="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, cwd=str(tmp_root), start_new_session=True,
    )
    node = OwnNode(url="", proc=proc, data_dir=data_dir, log_path=log_path)
    found = threading.Event()

    def drain() -> None:
        with open(log_path, "ab", buffering=0) as log:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                line = raw.decode("utf-8", "replace")
                node.tail.append(line)
                m = re.search(r"api listening on (http://127\.0\.0\.1:\d+)", line)
                if m and not found.is_set():
                    node.url = m.group(1)
                    found.set()
        found.set()

    threading.Thread(target=drain, daemon=True).start()
    if not found.wait(30) or not node.url:
        _stop_own_node(node)
        pytest.fail(
            f"raleph node with config\n{config_text}\ndid not start (code {proc.poll()}): {' '.join(cmd)}\n"
            f"--- log tail ---\n{node.log_tail()}",
            pytrace=False,
        )
    return node


def _stop_own_node(node: OwnNode) -> None:
    if node.proc.poll() is not None:
        return
    try:
        os.killpg(node.proc.pid, signal.SIGTERM)
        node.proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(timeout=10)


GC_CONFIG = """\
[storage]
grace_period_secs = 1
gc_interval_secs = 1
"""

RETRY_CONFIG = """\
[pipeline]
max_retries = 3
max_backoff_secs = 0.5
"""


@pytest.fixture(scope="module")
def gc_node(tmp_path_factory):
    """A node of its own whose unpinned files are deleted 1 s after losing their last pin."""
    n = _start_own_node(tmp_path_factory.mktemp("raleph-gc-node"), GC_CONFIG)
    yield n
    _stop_own_node(n)


@pytest.fixture(scope="module")
def retry_node(tmp_path_factory):
    """A node of its own that gives up on a retryable message after 3 quick retries."""
    n = _start_own_node(tmp_path_factory.mktemp("raleph-retry-node"), RETRY_CONFIG)
    yield n
    _stop_own_node(n)


@pytest_asyncio.fixture
async def gc_http(gc_node):
    async with aiohttp.ClientSession(base_url=gc_node.url) as s:
        yield s


@pytest.mark.timeout(90)
async def test_store_of_unavailable_file_rejected_after_retries(retry_node):
    async with AuthenticatedAlephHttpClient(account=new_eth_account(), api_server=retry_node.url) as ac:
        async with aiohttp.ClientSession(base_url=retry_node.url) as http:
            message, status = await ac.create_store(file_hash=random_item_hash(), channel="RALEPH-COMPAT-RETRY", sync=True)
            assert status == MessageStatus.PENDING

            async def rejected():
                st, body = await message_state(http, message.item_hash)
                return body if st == 200 and body.get("status") == "rejected" else None

            try:
                body = await wait_until(rejected, timeout=60, message="STORE of a missing file rejected")
            except AssertionError:
                raise AssertionError(
                    f"{await message_state(http, message.item_hash)}\n--- node log ---\n{retry_node.log_tail()}"
                )
            assert body["error_code"] == ERR_FILE_UNAVAILABLE, body


@pytest.mark.timeout(120)
async def test_gc_deletes_unpinned_uploads(gc_node, gc_http):
    data = unique_bytes(10 * KiB)
    status, body = await post_file(gc_http, "/api/v0/storage/add_file", data)
    assert status == 200, show(status, body) + "\n" + gc_node.log_tail()
    h = body["hash"]
    jh = None
    async with gc_http.post("/api/v0/storage/add_json", json={"gc": str(uuid.uuid4())}) as resp:
        assert resp.status == 200
        jh = (await resp.json())["hash"]
    cid_data = unique_bytes(300 * KiB)
    status, body = await post_file(gc_http, "/api/v0/ipfs/add_file", cid_data)
    assert status == 200, show(status, body)
    cid = body["hash"]

    async def all_gone():
        for path in (f"/api/v0/storage/raw/{h}", f"/api/v0/storage/raw/{jh}", f"/api/v0/storage/raw/{cid}", f"/ipfs/{cid}"):
            st, _, _ = await get_raw(gc_http, path)
            if st != 404:
                return False
        return True

    await wait_until(all_gone, timeout=30, message="unpinned uploads deleted by the GC")
    for x in (h, jh, cid):
        assert await pin_count(gc_http, x) == 0
    # the store layout holds no copy (or trace) of the bytes any more
    names = {p.name for p in gc_node.data_dir.rglob("*") if p.is_file()}
    assert not ({h, jh, cid, sha256_hex(cid_data)} & names), names

    # and the same bytes can be uploaded again
    status, body = await post_file(gc_http, "/api/v0/storage/add_file", data)
    assert status == 200 and body["hash"] == h
    await assert_served(gc_http, h, data)


@pytest.mark.timeout(120)
async def test_gc_keeps_pinned_files_until_forget(gc_node, gc_http):
    async with AuthenticatedAlephHttpClient(account=new_eth_account(), api_server=gc_node.url) as ac:
        data = unique_bytes(20 * KiB)
        message, status = await ac.create_store(file_content=data, channel="RALEPH-COMPAT-GC", sync=True)
        assert status == MessageStatus.PROCESSED, gc_node.log_tail()
        # an unauthenticated upload pinned by a STORE within its grace period
        data2 = unique_bytes(20 * KiB)
        h2 = await ac.storage_push_file(data2)
        m2, status = await ac.create_store(file_hash=h2, channel="RALEPH-COMPAT-GC", sync=True)
        assert status == MessageStatus.PROCESSED

        await asyncio.sleep(4)  # several GC rounds past the grace period
        await assert_served(gc_http, sha256_hex(data), data)
        await assert_served(gc_http, h2, data2)

        _, status = await ac.forget(hashes=[message.item_hash, m2.item_hash], reason="gc", channel="RALEPH-COMPAT-GC", sync=True)
        assert status == MessageStatus.PROCESSED

        async def gone():
            a, _, _ = await get_raw(gc_http, f"/api/v0/storage/raw/{sha256_hex(data)}")
            b, _, _ = await get_raw(gc_http, f"/api/v0/storage/raw/{h2}")
            return a == 404 and b == 404

        await wait_until(gone, timeout=30, message="forgotten STORE files deleted by the GC")
