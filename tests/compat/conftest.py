"""Fixtures for the raleph compatibility suite.

The suite starts one raleph node per test session (``$RALEPH_BIN node --data-dir <tmp>
--api-addr 127.0.0.1:0``) and talks to it only through the published Python clients
(aleph-sdk-python, and the ``aleph`` CLI from aleph-client) plus raw HTTP where the
clients give no handle on the wire (tampered signatures, exact status codes).

Every test uses fresh random accounts and unique channels, so tests are independent of
each other although they share one node.
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import aiohttp
import pytest
import pytest_asyncio

from aleph.sdk.chains.ethereum import ETHAccount
from aleph.sdk.chains.solana import SOLAccount
from aleph.sdk.client import AlephHttpClient, AuthenticatedAlephHttpClient

from compat_helpers import new_eth_account, new_sol_account

NODE_START_TIMEOUT = 30.0
LISTEN_RE = re.compile(r"api listening on (http://127\.0\.0\.1:\d+)")
LOG_TAIL_LINES = 80


# --------------------------------------------------------------------------------------
# the node
# --------------------------------------------------------------------------------------


@dataclass
class Node:
    url: str
    proc: subprocess.Popen
    log_path: Path
    data_dir: Path
    _tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LOG_TAIL_LINES))

    def log_tail(self, n: int = LOG_TAIL_LINES) -> str:
        lines = list(self._tail)[-n:]
        return "".join(lines) if lines else "(node printed nothing)\n"

    def alive(self) -> bool:
        return self.proc.poll() is None


def _start_node(tmp_root: Path) -> Node:
    bin_path = os.environ.get("RALEPH_BIN")
    if not bin_path:
        pytest.exit(
            "RALEPH_BIN is not set: point it at the raleph binary to test, e.g.\n"
            "    RALEPH_BIN=target/debug/raleph $(scripts/python-env.sh)/bin/pytest tests/compat",
            returncode=3,
        )
    bin_file = Path(bin_path)
    if not bin_file.is_file() or not os.access(bin_file, os.X_OK):
        pytest.exit(f"RALEPH_BIN={bin_path!r} is not an executable file", returncode=3)

    data_dir = tmp_root / "node-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = tmp_root / "node.log"
    cmd = [str(bin_file.resolve()), "node", "--data-dir", str(data_dir), "--api-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"]
    # Python programs run in microVMs when a runtime is given (scripts/build-python-runtime.sh).
    runtime_dir = os.environ.get("RALEPH_PYTHON_RUNTIME_DIR")
    if runtime_dir:
        config = tmp_root / "node.toml"
        config.write_text(f'[compute]\npython_runtime_dir = "{runtime_dir}"\n')
        cmd += ["--config", str(config)]

    env = dict(os.environ)
    env.setdefault("RUST_BACKTRACE", "1")
    env.setdefault("NO_COLOR", "1")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(tmp_root),
        start_new_session=True,  # our own process group: killed as a group at the end
    )
    node = Node(url="", proc=proc, log_path=log_path, data_dir=data_dir)
    found = threading.Event()
    url_box: list[str] = []

    def drain() -> None:
        # Reads every line the node prints, forever (until EOF), so the pipe never fills.
        with open(log_path, "ab", buffering=0) as log:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                line = raw.decode("utf-8", "replace")
                node._tail.append(line)
                if not found.is_set():
                    m = LISTEN_RE.search(line)
                    if m:
                        url_box.append(m.group(1))
                        found.set()
        found.set()  # EOF: unblock the waiter

    threading.Thread(target=drain, name="raleph-node-log", daemon=True).start()

    if not found.wait(NODE_START_TIMEOUT) or not url_box:
        code = proc.poll()
        state = f"exited with code {code}" if code is not None else "still running, killed"
        _stop_process(proc)
        pytest.exit(
            f"raleph node did not print 'api listening on http://127.0.0.1:PORT' within "
            f"{NODE_START_TIMEOUT:.0f}s ({state}).\ncommand: {' '.join(cmd)}\n"
            f"--- tail of {log_path} ---\n{node.log_tail()}",
            returncode=3,
        )
    node.url = url_box[0]
    return node


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


_NODE: Optional[Node] = None


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory):
    """The running raleph node (one per test session)."""
    global _NODE
    tmp_root = tmp_path_factory.mktemp("raleph-node")
    n = _start_node(tmp_root)
    _NODE = n
    try:
        yield n
    finally:
        crashed = not n.alive()
        _stop_process(n.proc)
        _NODE = None
        if crashed:
            sys.stderr.write(
                f"\nraleph node exited by itself during the run (code {n.proc.returncode}).\n"
                f"--- tail of {n.log_path} ---\n{n.log_tail()}\n"
            )
        else:
            sys.stderr.write(f"\nraleph node log: {n.log_path}\n")


@pytest.fixture
def node_url(node: Node) -> str:
    """Base URL of the node, e.g. http://127.0.0.1:40123 (no trailing slash)."""
    if not node.alive():
        pytest.fail(
            f"raleph node is no longer running (exit code {node.proc.returncode})\n"
            f"--- tail of {node.log_path} ---\n{node.log_tail()}",
            pytrace=False,
        )
    return node.url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failing test, attach the tail of the node's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _NODE is not None and call.when in ("setup", "call"):
        state = "running" if _NODE.alive() else f"EXITED with code {_NODE.proc.returncode}"
        report.sections.append(
            (f"raleph node log tail ({state}; full log: {_NODE.log_path})", _NODE.log_tail(40))
        )


# --------------------------------------------------------------------------------------
# accounts and clients
# --------------------------------------------------------------------------------------


@pytest.fixture
def eth_account() -> ETHAccount:
    """A fresh Ethereum account with a random key (nobody else ever posts with it)."""
    return new_eth_account()


@pytest.fixture
def sol_account() -> SOLAccount:
    """A fresh Solana account with a random key."""
    return new_sol_account()


@pytest.fixture
def channel() -> str:
    """A channel name unique to the test."""
    return f"RALEPH-COMPAT-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def client(node_url: str):
    """Read-only SDK client."""
    async with AlephHttpClient(api_server=node_url) as c:
        yield c


@pytest_asyncio.fixture
async def auth_client(node_url: str, eth_account: ETHAccount):
    """SDK client that signs with ``eth_account``."""
    async with AuthenticatedAlephHttpClient(account=eth_account, api_server=node_url) as c:
        yield c


@pytest_asyncio.fixture
async def http(node_url: str):
    """Raw aiohttp session rooted at the node URL."""
    async with aiohttp.ClientSession(base_url=node_url) as s:
        yield s


# --------------------------------------------------------------------------------------
# the `aleph` CLI (aleph-client)
# --------------------------------------------------------------------------------------


def _find_aleph_cli() -> Optional[Path]:
    """aleph-client cannot share a venv with aleph-sdk-python 2.4.0 (conflicting pins), so
    scripts/python-env.sh installs it in the sibling venv ``<this venv>-cli``."""
    env = os.environ.get("RALEPH_ALEPH_CLI")
    if env:
        return Path(env)
    candidates = [
        Path(sys.prefix + "-cli") / "bin" / "aleph",
        Path(sys.prefix) / "bin" / "aleph",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which("aleph")
    return Path(found) if found else None


@dataclass
class Cli:
    exe: Path
    home: Path
    key_file: Path
    account: ETHAccount
    env: dict

    def run(self, *args: str, input: Optional[str] = None, timeout: float = 120, check: bool = True):
        """Run ``aleph --no-format <args>``; returns the CompletedProcess (text mode)."""
        cmd = [str(self.exe), "--no-format", *args]
        proc = subprocess.run(
            cmd,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            cwd=str(self.home),  # the SDK settings read a .env file from the working directory
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"command failed with code {proc.returncode}: {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc


@pytest.fixture
def cli(node_url: str, tmp_path: Path) -> Cli:
    """The ``aleph`` CLI bound to a fresh ETH key and to the test node.

    How aleph-client 1.9.x finds its key (aleph.sdk.conf / aleph_client.utils.load_account):
    settings come from env vars prefixed ``ALEPH_`` (and a ``.env`` in the cwd); CONFIG_HOME
    defaults to ``$XDG_DATA_HOME/.aleph-im`` or ``~/.aleph-im``; without
    ``$CONFIG_HOME/config.json`` the CLI falls back to ``--private-key`` /
    ``ALEPH_PRIVATE_KEY_STRING`` or ``--private-key-file`` / ``ALEPH_PRIVATE_KEY_FILE``
    (default ``$CONFIG_HOME/private-keys/ethereum.key``), a file holding the raw 32 key
    bytes; the chain defaults to ETH. The API host is ``ALEPH_API_HOST`` (no flag exists).
    HOME is a temp dir so the user's own config and keys are never read or written.
    """
    exe = _find_aleph_cli()
    if exe is None or not exe.is_file():
        pytest.fail(
            "the `aleph` CLI (aleph-client) was not found: run scripts/python-env.sh, which installs "
            "it in the venv next to this one (<venv>-cli), or set RALEPH_ALEPH_CLI",
            pytrace=False,
        )
    home = tmp_path / "cli-home"
    keys = home / ".aleph-im" / "private-keys"
    keys.mkdir(parents=True)
    key = secrets.token_bytes(32)
    key_file = keys / "ethereum.key"
    key_file.write_bytes(key)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ALEPH_") and k not in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "VIRTUAL_ENV")
    }
    env.update(
        HOME=str(home),
        ALEPH_API_HOST=node_url,
        ALEPH_PRIVATE_KEY_FILE=str(key_file),
        COLUMNS="200",
        TERM="dumb",
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return Cli(exe=exe, home=home, key_file=key_file, account=ETHAccount(private_key=key), env=env)
