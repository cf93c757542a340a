"""raleph's IPFS CIDs against an independent implementation.

The reference is the JS UnixFS importer (ipfs-unixfs-importer, pinned in package-lock.json),
configured like kubo's ``ipfs add`` and run by ``cid.mjs``: CIDv0 = dag-pb UnixFS leaves,
256 KiB fixed chunks, balanced DAG of at most 174 links per node, a one-chunk file is its own
root; CIDv1 = the same with raw leaves (``ipfs add --cid-version=1``). The SDK's own aleph_cid
(Python bindings of a Rust crate) is printed beside it on a mismatch as a third opinion.

Each file is uploaded to the node through POST /api/v0/ipfs/add_file (files above the 25 MiB
unauthenticated limit with a signed STORE whose item_hash is the JS CID, as the SDK's
create_store does), the answered hash is compared with the JS CID, and the bytes are read
back from the node's gateway GET /ipfs/{cid}.

CIDv1: raleph answers the CIDv1 (raw leaves) when asked with ``?cid_version=1`` (pyaleph has
no such parameter). The module probes that once; a node without it is checked for serving
the JS CIDv1 at /ipfs/{cid}, and the v1 tests are skipped with the reason if it does neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

import aiohttp
import aleph_cid
import pytest
from aleph_message.models import Chain, ItemHash, ItemType, MessageType, Payment, PaymentType, StoreContent

from aleph.sdk.client import AuthenticatedAlephHttpClient
from aleph.sdk.utils import extended_json_encoder

from compat_helpers import new_eth_account

HERE = Path(__file__).resolve().parent
CID_JS = HERE / "cid.mjs"
MiB = 1024 * 1024
CHUNK = 262144
UNAUTH_LIMIT = 25 * MiB

EMPTY_CID_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
HELLO_JSON_CID_V0 = "QmNrEidQrAbxx3FzxNt9E6qjEDZrtvzxUVh47BXm55Zuen"

SIZES = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    174 * CHUNK,  # a root with exactly 174 leaves
    174 * CHUNK + 1,  # one more leaf: a second DAG level
    50 * MiB + 12345,  # ~50 MiB, above the unauthenticated limit
]
SEED = 20260101


# --------------------------------------------------------------------------------------
# the JS reference
# --------------------------------------------------------------------------------------


def js_cid(path: Path, v1: bool = False) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("`node` (Node.js >= 20) is not installed: it runs the reference cid.mjs", pytrace=False)
    if not (HERE / "node_modules" / "ipfs-unixfs-importer").is_dir():
        pytest.fail(
            f"the pinned npm packages are not installed in {HERE}: run tests/cid/run.sh (or `npm ci` there)",
            pytrace=False,
        )
    cmd = [node, str(CID_JS), str(path)] + (["--v1"] if v1 else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout.strip()


def sdk_cid(path: Path, v1: bool = False) -> str:
    h = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves() if v1 else aleph_cid.CidHasher.for_ipfs()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.finalize()


def make_file(directory: Path, size: int) -> Path:
    """Seeded random bytes (the same file every run), written in 1 MiB pieces."""
    path = directory / f"data-{size}.bin"
    rng = random.Random(SEED + size)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(MiB, left)
            f.write(rng.randbytes(n))
            left -= n
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# the node
# --------------------------------------------------------------------------------------


async def upload(http: aiohttp.ClientSession, node_url: str, path: Path, *, claim: str, cid_version: Optional[int] = None):
    """POST /api/v0/ipfs/add_file, streamed from disk. Above the unauthenticated limit the
    upload carries a signed STORE naming ``claim`` (the JS CIDv0). Returns (status, body)."""
    size = path.stat().st_size
    params = {"cid_version": str(cid_version)} if cid_version is not None else None
    form = aiohttp.FormData()
    if size > UNAUTH_LIMIT:
        async with AuthenticatedAlephHttpClient(account=new_eth_account(), api_server=node_url) as ac:
            content = StoreContent(
                address=ac.account.get_address(),
                item_type=ItemType.ipfs,
                item_hash=ItemHash(claim),
                time=time.time(),
                payment=Payment(chain=Chain.ETH, type=PaymentType.hold, receiver=None),
            )
            message = await ac.generate_signed_message(
                message_type=MessageType.store, content=content.model_dump(exclude_none=True), channel="RALEPH-CID"
            )
        metadata = json.dumps({"message": message.model_dump(exclude_none=True), "sync": True}, default=extended_json_encoder)
        form.add_field("metadata", metadata, content_type="application/json")
    with open(path, "rb") as f:
        form.add_field("file", f, filename=path.name, content_type="application/octet-stream")
        async with http.post("/api/v0/ipfs/add_file", data=form, params=params) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


async def served_sha256(http: aiohttp.ClientSession, cid: str) -> tuple[int, str, int]:
    """GET /ipfs/{cid}: (status, sha256 of the body, body length), streamed."""
    h = hashlib.sha256()
    n = 0
    async with http.get(f"/ipfs/{cid}") as resp:
        if resp.status != 200:
            await resp.read()
            return resp.status, "", 0
        async for chunk in resp.content.iter_chunked(MiB):
            h.update(chunk)
            n += len(chunk)
        return resp.status, h.hexdigest(), n


def verdict(what: str, path: Path, node_cid: str, js: str, v1: bool) -> str:
    return (
        f"{what} of {path.stat().st_size} bytes: node {node_cid!r} != JS importer {js!r} "
        f"(SDK aleph_cid says {sdk_cid(path, v1)!r})"
    )


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cid-files")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def v1_mode(node, tmp_path_factory) -> str:
    """How the node exposes CIDv1: "param" (ipfs/add_file?cid_version=1 answers it),
    "gateway" (only served at /ipfs/{v1}), or "none"."""
    import asyncio

    d = tmp_path_factory.mktemp("cid-probe")
    path = d / "probe.bin"
    path.write_bytes(os.urandom(3 * CHUNK))  # several chunks: a bafy… CID
    js_v1 = js_cid(path, v1=True)

    async def probe() -> str:
        async with aiohttp.ClientSession(base_url=node.url) as http:
            status, body = await upload(http, node.url, path, claim="", cid_version=1)
            if status == 200 and isinstance(body, dict) and str(body.get("hash", "")).startswith("b"):
                return "param"
            st, _, _ = await served_sha256(http, js_v1)
            return "gateway" if st == 200 else "none"

    return asyncio.run(probe())


# --------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_js_reference_known_vectors(tmp_path):
    """The reference itself: kubo's CIDs of two well-known inputs."""
    hello = tmp_path / "hello.json"
    hello.write_bytes(b'{"hello":"world"}')
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert js_cid(hello) == HELLO_JSON_CID_V0
    assert js_cid(empty) == EMPTY_CID_V0
    assert js_cid(empty, v1=True) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.timeout(60)
async def test_node_known_vectors(http, node_url, tmp_path):
    async with http.post("/api/v0/ipfs/add_json", json={"hello": "world"}) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 200, body
        assert body["hash"] == HELLO_JSON_CID_V0
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    status, body = await upload(http, node_url, empty, claim=EMPTY_CID_V0)
    assert status == 200, body
    assert body["hash"] == EMPTY_CID_V0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
async def test_cid_v0_matches_js(http, node_url, files_dir, size):
    path = make_file(files_dir, size)
    try:
        js = js_cid(path)
        status, body = await upload(http, node_url, path, claim=js)
        assert status == 200, f"ipfs/add_file of {size} bytes: HTTP {status} {body}"
        assert body["hash"] == js, verdict("CIDv0", path, body["hash"], js, False)
        assert body.get("size") == size, body
        st, digest, n = await served_sha256(http, js)
        assert st == 200, f"GET /ipfs/{js}: HTTP {st}"
        assert (digest, n) == (file_sha256(path), size), f"GET /ipfs/{js} served other bytes"
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
async def test_cid_v1_raw_leaves_matches_js(http, node_url, files_dir, v1_mode, size):
    if v1_mode == "none":
        pytest.skip(
            "the node exposes no CIDv1: POST /api/v0/ipfs/add_file?cid_version=1 answered no CIDv1 and "
            "GET /ipfs/<JS CIDv1> of an uploaded file was not found"
        )
    path = make_file(files_dir, size)
    try:
        js_v0 = js_cid(path)
        js_v1 = js_cid(path, v1=True)
        if v1_mode == "param":
            status, body = await upload(http, node_url, path, claim=js_v0, cid_version=1)
            assert status == 200, f"ipfs/add_file?cid_version=1 of {size} bytes: HTTP {status} {body}"
            assert body["hash"] == js_v1, verdict("CIDv1", path, body["hash"], js_v1, True)
        else:
            status, body = await upload(http, node_url, path, claim=js_v0)
            assert status == 200, f"ipfs/add_file of {size} bytes: HTTP {status} {body}"
        st, digest, n = await served_sha256(http, js_v1)
        assert st == 200, f"GET /ipfs/{js_v1} (CIDv1 of {size} bytes): HTTP {st}"
        assert (digest, n) == (file_sha256(path), size), f"GET /ipfs/{js_v1} served other bytes"
    finally:
        path.unlink(missing_ok=True)
