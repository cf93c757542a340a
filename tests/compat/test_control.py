"""The compute node API that `aleph program logs` and the SDK's VmClient talk to, driven by
the published clients: a WebAssembly program (raleph's test guest, built here with cargo) is
deployed with the SDK, called, then its owner reads its logs (HTTP and WebSocket), stops,
reboots and notifies it through `aleph.sdk.client.vm_client.VmClient`, and reads its logs with
`aleph program logs <hash> --domain <node>`; another wallet is refused.

VmClient signs for the hostname of the URL it is given (here 127.0.0.1), which is what the node
compares the signed domain with.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aleph_message.models import StoreMessage
from aleph_message.models.execution.base import Encoding
from aleph_message.status import MessageStatus

from aleph.sdk.chains.ethereum import ETHAccount
from aleph.sdk.client import AlephHttpClient, AuthenticatedAlephHttpClient
from aleph.sdk.client.vm_client import VmClient
from aleph.sdk.types import StorageEnum

from compat_helpers import new_eth_account

ROOT = Path(__file__).resolve().parents[2]
GUEST_MANIFEST = ROOT / "crates" / "raleph-compute" / "guest" / "Cargo.toml"


@pytest.fixture(scope="session")
def guest_wasm() -> bytes:
    """The test guest (crates/raleph-compute/guest), a wasi:http component: `/print?text=T`
    writes `to stdout: T` and `to stderr`."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is needed to build the WebAssembly test program")
    cache = Path(os.environ.get("RALEPH_CACHE_DIR", Path.home() / ".cache" / "raleph"))
    target = cache / "compat-guest-target"
    build = subprocess.run(
        [cargo, "build", "--release", "--target", "wasm32-wasip2", "--manifest-path", str(GUEST_MANIFEST)],
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"building the test guest failed:\n{build.stderr}"
    return (target / "wasm32-wasip2" / "release" / "raleph_test_guest.wasm").read_bytes()


async def wasm_runtime(node_url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{node_url}/api/v0/runtimes") as response:
            runtimes = await response.json()
    return next(r["ref"] for r in runtimes if r["kind"] == "wasm")


async def deploy(node_url: str, account, wasm: bytes, channel: str) -> str:
    """STORE the component and publish a PROGRAM running it, both signed by ``account``."""
    async with AuthenticatedAlephHttpClient(account=account, api_server=node_url) as client:
        store, status = await client.create_store(
            file_content=wasm, storage_engine=StorageEnum.storage, channel=channel, sync=True
        )
        assert isinstance(store, StoreMessage) and status == MessageStatus.PROCESSED
        program, status = await client.create_program(
            program_ref=store.item_hash,
            entrypoint="wasi:http/proxy",
            runtime=await wasm_runtime(node_url),
            encoding=Encoding.plain,
            internet=False,
            memory=64,
            vcpus=1,
            timeout_seconds=5,
            channel=channel,
            sync=True,
        )
        assert status == MessageStatus.PROCESSED
        return program.item_hash


async def call(node_url: str, program: str, text: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{node_url}/vm/{program}/print", params={"text": text}) as response:
            assert response.status == 200, await response.text()
            assert await response.text() == "printed"


@pytest.mark.timeout(300)
async def test_vm_client_reads_logs_stops_and_reboots(node_url, eth_account, guest_wasm, channel):
    program = await deploy(node_url, eth_account, guest_wasm, channel)
    await call(node_url, program, "sdk")

    async with VmClient(eth_account, node_url) as vm:
        # The JSON logs, as `aleph program logs` reads them.
        async with vm.operate(vm_id=program, operation="logs", method="GET") as response:
            assert response.status == 200, await response.text()
            entries = await response.json()
        messages = {(e["file"], e["MESSAGE"]) for e in entries}
        assert ("stdout", "to stdout: sdk") in messages
        assert ("stderr", "to stderr") in messages
        assert all(e["SYSLOG_IDENTIFIER"] == f"vm-{program}-{e['file']}" for e in entries)

        # The WebSocket stream, as `aleph instance logs` reads it.
        received = []
        async for message in vm.get_logs(program):
            received.append(json.loads(message))
            if len(received) == 3:
                break
        assert received == [
            {"status": "connected"},
            {"type": "stdout", "message": "to stdout: sdk"},
            {"type": "stderr", "message": "to stderr"},
        ]

        # The executions lists, validated by the SDK's own models.
        async with AlephHttpClient(api_server=node_url) as client:
            v2 = await client.crn.get_active_vms_v2(node_url)
            assert v2.root[program].running
            v1 = await client.crn.get_active_vms_v1(node_url)
            assert program in v1.root

        status, text = await vm.stop_instance(program)
        assert (status, text) == (200, f"Stopped VM with ref {program}")
        status, text = await vm.reboot_instance(program)
        assert (status, text) == (200, f"Starting VM (was not running) with ref {program}")
        status, text = await vm.reboot_instance(program)
        assert (status, text) == (200, f"Rebooted VM with ref {program}")
        assert (await vm.stop_instance(program))[0] == 200
        status, text = await vm.notify_allocation(program)
        assert status == 200, text
        assert json.loads(text)["success"] is True

    # Another wallet is not the owner.
    async with VmClient(new_eth_account(), node_url) as stranger:
        async with stranger.operate(vm_id=program, operation="logs", method="GET") as response:
            assert response.status == 403
            assert await response.json() == {"error": "Unauthorized sender"}
        assert (await stranger.stop_instance(program))[0] == 403


@pytest.mark.timeout(300)
async def test_vm_client_with_a_solana_wallet(node_url, sol_account, guest_wasm, channel):
    program = await deploy(node_url, sol_account, guest_wasm, channel)
    await call(node_url, program, "solana")
    async with VmClient(sol_account, node_url) as vm:
        async with vm.operate(vm_id=program, operation="logs", method="GET") as response:
            assert response.status == 200, await response.text()
            entries = await response.json()
    assert any(e["MESSAGE"] == "to stdout: solana" for e in entries)


@pytest.mark.cli
@pytest.mark.timeout(300)
async def test_cli_program_logs(cli, node_url, guest_wasm, channel):
    program = await deploy(node_url, cli.account, guest_wasm, channel)

    # Never executed here: the CLI says so.
    never = await asyncio.to_thread(cli.run, "program", "logs", program, "--domain", node_url)
    assert "Server didn't found any execution of this program" in never.stdout

    await call(node_url, program, "cli")
    logs = await asyncio.to_thread(cli.run, "program", "logs", program, "--domain", node_url)
    assert "Received logs" in logs.stdout, logs.stdout
    assert ">  to stdout: cli" in logs.stdout, logs.stdout
    assert ">  to stderr" in logs.stdout, logs.stdout

    other_key = ETHAccount(private_key=secrets.token_bytes(32))
    refused = await asyncio.to_thread(
        cli.run,
        "program",
        "logs",
        program,
        "--domain",
        node_url,
        "--private-key",
        other_key.private_key.hex(),
    )
    assert "You are not the owner of this VM" in refused.stdout, refused.stdout
