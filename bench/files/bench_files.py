#!/usr/bin/env python3
"""File storage benchmark: one large upload and two downloads through a raleph node, with the
node's memory sampled all along.

  1. writes a file of --size-mib random bytes (default 1024 = 1 GiB) in a temp dir,
  2. starts a node (release build by default) with a temp data dir and upload limits raised
     to fit the file,
  3. uploads it with curl, streamed from disk: POST /api/v0/storage/add_file, multipart
     `metadata` (a signed STORE, as SDK create_store sends it) + `file` (with --unauth: the
     file alone, unauthenticated),
  4. downloads it twice with curl: GET /api/v0/storage/raw/{sha256} (the first read after the
     upload is "cold" for the node; the OS page cache is NOT dropped), then once more untimed
     to check the sha256,
  5. samples VmRSS and VmHWM of the node from /proc/<pid>/status every 50 ms,
  6. prints upload MB/s, download MB/s (cold/warm), idle RSS, peak RSS during the upload and
     the delta; stops the node and deletes every temp file (also on Ctrl-C / errors).

Bounded: each phase has a timeout and the whole run stops after --timeout seconds.
MB = 10^6 bytes, MiB = 2^20 bytes.

Usage (see README.md):
  cargo build --release -p raleph
  $(scripts/python-env.sh)/bin/python bench/files/bench_files.py [--size-mib 1024] [--unauth]
Env: RALEPH_BIN (default /root/.cache/raleph/target/release/raleph).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MiB = 1024 * 1024
DEFAULT_BIN = "/root/.cache/raleph/target/release/raleph"
SAMPLE_EVERY = 0.05
LISTEN_RE = re.compile(r"api listening on (http://127\.0\.0\.1:\d+)")
REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------
# memory sampling
# --------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    phase: str
    rss_kib: int
    hwm_kib: int


@dataclass
class Sampler:
    pid: int
    samples: list = field(default_factory=list)
    phase: str = "start"
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: Optional[threading.Thread] = None

    def _read(self) -> Optional[tuple[int, int]]:
        rss = hwm = None
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            return None
        if rss is None or hwm is None:
            return None
        return rss, hwm

    def _run(self) -> None:
        while not self._stop.is_set():
            v = self._read()
            if v is not None:
                self.samples.append(Sample(time.monotonic(), self.phase, v[0], v[1]))
            self._stop.wait(SAMPLE_EVERY)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)

    def of(self, phase: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == phase]


def mib(kib: int) -> float:
    return kib / 1024


# --------------------------------------------------------------------------------------
# the node
# --------------------------------------------------------------------------------------


class Node:
    def __init__(self, binary: Path, work: Path, config: str):
        self.data_dir = work / "node-data"
        self.data_dir.mkdir()
        self.config_path = work / "node.toml"
        self.config_path.write_text(config)
        self.log_path = work / "node.log"
        self.url = ""
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "node", "--config", str(self.config_path), "--data-dir", str(self.data_dir),
             "--api-addr", "127.0.0.1:0",
             "--p2p-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(work), start_new_session=True, env=dict(os.environ, NO_COLOR="1"),
        )
        found = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for raw in iter(self.proc.stdout.readline, b""):
                self._log.write(raw)
                m = LISTEN_RE.search(raw.decode("utf-8", "replace"))
                if m and not found.is_set():
                    self.url = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(30) or not self.url:
            self.stop()
            raise SystemExit(f"the node did not start; log:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()


# --------------------------------------------------------------------------------------
# steps
# --------------------------------------------------------------------------------------


def write_random_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    chunk = 4 * MiB
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(chunk, left))
            h.update(b)
            f.write(b)
            left -= len(b)
    return h.hexdigest()


def signed_store_metadata(sha256: str) -> str:
    """The `metadata` part of an authenticated upload, built with the SDK exactly as
    create_store builds it (needs the compat venv)."""
    import asyncio
    import secrets

    from aleph.sdk.chains.ethereum import ETHAccount
    from aleph.sdk.client import AuthenticatedAlephHttpClient
    from aleph.sdk.utils import extended_json_encoder
    from aleph_message.models import Chain, ItemHash, ItemType, MessageType, Payment, PaymentType, StoreContent

    async def build() -> str:
        account = ETHAccount(private_key=secrets.token_bytes(32))
        # no request is made: generate_signed_message only signs an inline message
        async with AuthenticatedAlephHttpClient(account=account, api_server="http://127.0.0.1:9") as ac:
            content = StoreContent(
                address=account.get_address(), item_type=ItemType.storage, item_hash=ItemHash(sha256),
                time=time.time(), payment=Payment(chain=Chain.ETH, type=PaymentType.hold, receiver=None),
            )
            message = await ac.generate_signed_message(
                message_type=MessageType.store, content=content.model_dump(exclude_none=True), channel="RALEPH-BENCH"
            )
        return json.dumps({"message": message.model_dump(exclude_none=True), "sync": True}, default=extended_json_encoder)

    return asyncio.run(build())


def curl(args: list[str], timeout: float) -> dict:
    """Runs curl; returns its -w JSON (http_code, time_total, size_* ...)."""
    cmd = ["curl", "-sS", "--noproxy", "*", "-w", "%{json}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"curl failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout)  # with -o, stdout holds only the -w output


def verify_download(url: str, want_sha256: str, size: int, timeout: float) -> None:
    h = hashlib.sha256()
    n = 0
    with subprocess.Popen(["curl", "-sS", "--noproxy", "*", url], stdout=subprocess.PIPE) as p:
        assert p.stdout is not None
        deadline = time.monotonic() + timeout
        while chunk := p.stdout.read(4 * MiB):
            h.update(chunk)
            n += len(chunk)
            if time.monotonic() > deadline:
                p.kill()
                raise SystemExit("verification download timed out")
    if (n, h.hexdigest()) != (size, want_sha256):
        raise SystemExit(f"downloaded {n} bytes with sha256 {h.hexdigest()}, expected {size} bytes {want_sha256}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="file size in MiB (default 1024)")
    ap.add_argument("--bin", default=os.environ.get("RALEPH_BIN", DEFAULT_BIN), help="raleph binary (env RALEPH_BIN)")
    ap.add_argument("--build", action="store_true", help="run `cargo build --release -p raleph` first")
    ap.add_argument("--unauth", action="store_true", help="upload without a STORE message (no SDK needed)")
    ap.add_argument("--timeout", type=float, default=1800, help="stop the whole run after this many seconds")
    ap.add_argument("--tmpdir", default=None, help="where the temp dir goes (default $TMPDIR or /tmp)")
    args = ap.parse_args()

    size = args.size_mib * MiB
    started = time.monotonic()

    def left() -> float:
        remaining = args.timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise SystemExit(f"stopped: the run exceeded --timeout {args.timeout:.0f}s")
        return remaining

    if args.build:
        env = dict(os.environ)
        env.setdefault("CARGO_TARGET_DIR", "/root/.cache/raleph/target")
        print("building: cargo build --release -p raleph", file=sys.stderr)
        subprocess.run(["cargo", "build", "--release", "-p", "raleph"], cwd=REPO, env=env, check=True, timeout=left())
    binary = Path(args.bin)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(
            f"no raleph binary at {binary}: build it (cargo build --release -p raleph, or pass --build) "
            f"or point RALEPH_BIN at one",
            file=sys.stderr,
        )
        return 2
    if shutil.which("curl") is None:
        print("curl is needed for the transfers", file=sys.stderr)
        return 2

    base = Path(args.tmpdir or tempfile.gettempdir())
    need = 2 * size + 256 * MiB  # the source file + the node's copy
    free = shutil.disk_usage(base).free
    if free < need:
        print(f"not enough disk in {base}: {free / MiB:.0f} MiB free, {need / MiB:.0f} MiB needed", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="raleph-bench-files-", dir=base))
    node: Optional[Node] = None
    sampler: Optional[Sampler] = None
    # a SIGTERM ends the run through the same cleanup as Ctrl-C
    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        src = work / "bench.bin"
        t0 = time.monotonic()
        digest = write_random_file(src, size)
        print(f"file: {args.size_mib} MiB of random bytes, sha256 {digest} (written in {time.monotonic() - t0:.1f}s)")
        left()

        limit = max(size + MiB, 100 * MiB)
        config = "[storage]\n"
        config += f"max_unauthenticated_upload_bytes = {limit}\n" if args.unauth else f"max_upload_bytes = {limit}\n"
        node = Node(binary, work, config)
        sampler = Sampler(node.pid)
        sampler.phase = "idle"
        sampler.start()
        time.sleep(2.0)  # idle baseline

        form = ["-F", f"file=@{src};filename=bench.bin;type=application/octet-stream"]
        if not args.unauth:
            meta = work / "metadata.json"
            meta.write_text(signed_store_metadata(digest))
            form = ["-F", f"metadata=<{meta};type=application/json"] + form
        resp_path = work / "upload-response.json"

        sampler.phase = "upload"
        up = curl(["-o", str(resp_path), "-H", "Expect:", *form, f"{node.url}/api/v0/storage/add_file"], timeout=left())
        sampler.phase = "after-upload"
        body = resp_path.read_text(errors="replace")
        if up["http_code"] != 200:
            raise SystemExit(f"upload: HTTP {up['http_code']}: {body[:500]}")
        answered = json.loads(body).get("hash")
        if answered != digest:
            raise SystemExit(f"upload answered hash {answered}, expected {digest}")
        time.sleep(0.5)

        raw_url = f"{node.url}/api/v0/storage/raw/{digest}"
        downloads = []
        for phase in ("download-cold", "download-warm"):
            sampler.phase = phase
            d = curl(["-o", "/dev/null", raw_url], timeout=left())
            if d["http_code"] != 200 or int(d["size_download"]) != size:
                raise SystemExit(f"{phase}: HTTP {d['http_code']}, {d['size_download']} bytes")
            downloads.append(d)
        sampler.phase = "verify"
        verify_download(raw_url, digest, size, timeout=left())
        sampler.phase = "end"
        time.sleep(0.2)
        sampler.stop()

        # ---------------- report ----------------
        idle = sampler.of("idle")
        upload = sampler.of("upload")
        dl = sampler.of("download-cold") + sampler.of("download-warm")
        idle_rss = max(s.rss_kib for s in idle) if idle else 0
        peak_up = max((s.rss_kib for s in upload), default=0)
        hwm_up = max((s.hwm_kib for s in upload), default=0)
        peak_dl = max((s.rss_kib for s in dl), default=0)
        up_secs = float(up["time_total"])
        mode = "unauthenticated" if args.unauth else "with a signed STORE (processed: sync=true)"
        print(f"node: {binary} (pid {node.pid})")
        print(f"upload:         {size / up_secs / 1e6:8.1f} MB/s  ({up_secs:.2f} s, POST /api/v0/storage/add_file, {mode})")
        for name, d in zip(("cold", "warm"), downloads):
            secs = float(d["time_total"])
            print(f"download {name}:  {size / secs / 1e6:8.1f} MB/s  ({secs:.2f} s, GET /api/v0/storage/raw/<sha256>)")
        print("download check: sha256 of a third download matches")
        print(f"RSS idle:            {mib(idle_rss):8.1f} MiB")
        print(f"RSS peak (upload):   {mib(peak_up):8.1f} MiB   (VmHWM {mib(hwm_up):.1f} MiB)")
        print(f"RSS delta (upload):  {mib(peak_up - idle_rss):8.1f} MiB")
        print(f"RSS peak (downloads):{mib(peak_dl):8.1f} MiB   (delta {mib(peak_dl - idle_rss):.1f} MiB)")
        print(f"samples: {len(sampler.samples)} every {int(SAMPLE_EVERY * 1000)} ms; total run {time.monotonic() - started:.1f} s")
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except subprocess.TimeoutExpired as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 1
    finally:
        if sampler:
            sampler.stop()
        if node:
            if node.proc.poll() not in (None, 0, -signal.SIGTERM):
                print(f"the node exited with {node.proc.returncode}; log tail:\n"
                      f"{node.log_path.read_text(errors='replace')[-2000:]}", file=sys.stderr)
            node.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
