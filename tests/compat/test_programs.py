"""Python programs as users publish them today (`aleph program upload ./app main:app`: the
CLI's archive, the SDK's STORE and PROGRAM, the SDK's default runtime), run by the node in a
microVM and called over HTTP at /vm/<hash>/ and by host name. Needs the node started with
a Python runtime (RALEPH_PYTHON_RUNTIME_DIR, from scripts/build-python-runtime.sh)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

APP = '''
import os
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()

@app.get("/")
async def index():
    return {"hello": "from a microVM", "color": os.environ.get("COLOR")}

@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return {"length": len(body), "query": request.url.query, "header": request.headers.get("x-test")}

@app.get("/cookies")
async def cookies():
    response = JSONResponse({"cookies": 2}, status_code=201)
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response

@app.get("/fail")
async def fail():
    raise RuntimeError("secret traceback detail")
'''


def _upload(node_url: str, app_dir: Path, squashfs: bool) -> dict:
    python = Path(sys.prefix + "-cli") / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"{python}: the aleph-client venv is missing (scripts/python-env.sh makes it)")
    env = dict(os.environ, ALEPH_CODE_USES_SQUASHFS="true" if squashfs else "false", HOME=str(app_dir.parent))
    key = os.urandom(32).hex()
    proc = subprocess.run(
        [str(python), str(Path(__file__).with_name("program_upload.py")), node_url, key, str(app_dir)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("squashfs", [False, True], ids=["zip", "squashfs"])
async def test_a_published_python_program_answers(node_url, http, tmp_path, squashfs):
    if not os.environ.get("RALEPH_PYTHON_RUNTIME_DIR"):
        pytest.fail("RALEPH_PYTHON_RUNTIME_DIR is not set: the node has no Python runtime "
                    "(scripts/test.sh sets it from scripts/build-python-runtime.sh)")
    app_dir = tmp_path / "myapp"
    app_dir.mkdir()
    (app_dir / "main.py").write_text(APP)
    published = await asyncio.to_thread(_upload, node_url, app_dir, squashfs)
    assert published["encoding"] == ("squashfs" if squashfs else "zip")
    assert published["runtime"] == "63f07193e6ee9d207b7d1fcf8286f9aee34e6f12f101d2ec77c1229f92964696"
    program = published["program"]
    vm = f"/vm/{program}"

    async def call(method, path, **kw):
        async with http.request(method, path, **kw) as r:
            return r.status, r.headers, await r.text()

    # The first request starts the VM (from the node's snapshot; allow for a cold boot).
    status, headers, text = await call("GET", f"{vm}/", timeout=aiohttp.ClientTimeout(total=120))
    assert status == 200, text
    assert json.loads(text) == {"hello": "from a microVM", "color": "green"}
    assert headers["aleph-program-itemhash"] == program
    assert headers["aleph-program-code-ref"] == published["code"]

    status, _, text = await call("POST", f"{vm}/echo?a=1&b=2", data=b"x" * 5000, headers={"X-Test": "yes"})
    assert json.loads(text) == {"length": 5000, "query": "a=1&b=2", "header": "yes"}

    status, headers, _ = await call("GET", f"{vm}/cookies")
    assert status == 201
    assert len(headers.getall("set-cookie")) == 2

    # An exception is a 500 without the traceback; the program still answers after it.
    status, _, text = await call("GET", f"{vm}/fail")
    assert status == 500
    assert "secret" not in text and "Traceback" not in text
    assert (await call("GET", f"{vm}/"))[0] == 200

    # By host name: the base32 of the hash, as the CLI prints it.
    label = base64.b32encode(bytes.fromhex(program)).decode().strip("=").lower()
    status, _, text = await call("GET", "/", headers={"Host": f"{label}.localhost"})
    assert status == 200 and json.loads(text)["color"] == "green", text


# The network's pricing aggregate, as the CLI reads it (`aleph.sdk.client.services.pricing`):
# the CLI looks up tiers before publishing. A standalone node has no such aggregate, so the
# test publishes one from its own key and points the CLI's settings at it.
PRICING = {
    "program": {
        "price": {"storage": {"holding": "0.05"}, "compute_unit": {"holding": "200", "payg": "0.011"}},
        "compute_unit": {"vcpus": 1, "memory_mib": 2048, "disk_mib": 2048},
        "tiers": [{"id": "tier-1", "compute_units": 1}, {"id": "tier-2", "compute_units": 2}],
    },
    "program_persistent": {
        "price": {"storage": {"holding": "0.05"}, "compute_unit": {"holding": "1000", "payg": "0.055"}},
        "compute_unit": {"vcpus": 1, "memory_mib": 2048, "disk_mib": 20480},
        "tiers": [{"id": "tier-1", "compute_units": 1}],
    },
}


@pytest.mark.timeout(300)
async def test_aleph_program_upload_runs(node_url, auth_client, eth_account, cli, http, tmp_path):
    """`aleph program upload ./myapp main:app`, the command users run, unchanged."""
    if not os.environ.get("RALEPH_PYTHON_RUNTIME_DIR"):
        pytest.fail("RALEPH_PYTHON_RUNTIME_DIR is not set (scripts/test.sh sets it)")
    _, status = await auth_client.create_aggregate(key="pricing", content=PRICING, channel="TEST", sync=True)
    app_dir = tmp_path / "myapp"
    app_dir.mkdir()
    (app_dir / "main.py").write_text(APP)
    cli.env["ALEPH_ALEPH_AGGREGATE_ADDRESS"] = eth_account.get_address()
    proc = await asyncio.to_thread(
        cli.run, "program", "upload", str(app_dir), "main:app", "--name", "compat",
        "--skip-volume", "--env-vars", "COLOR=green", "--vcpus", "1", "--memory", "2048",
        "--runtime", "63f07193e6ee9d207b7d1fcf8286f9aee34e6f12f101d2ec77c1229f92964696",
        timeout=180,
    )
    hashes = [w for w in proc.stdout.replace("/", " ").split() if len(w) == 64 and all(c in "0123456789abcdef" for c in w)]
    assert hashes, proc.stdout
    program = hashes[0]
    async with http.get(f"/vm/{program}/", timeout=aiohttp.ClientTimeout(total=120)) as r:
        text = await r.text()
        assert r.status == 200, text
        assert json.loads(text) == {"hello": "from a microVM", "color": "green"}
