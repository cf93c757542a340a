#!/usr/bin/python3
"""End-to-end smoke test of raleph's Python microVM runtime (QEMU, TCG or KVM), talking only to loopback.

    /usr/bin/python3 runtimes/python/smoke.py [--artifacts DIR] [--keep]

Needs root (QEMU user networking does not, but the image build does), Debian's python3-msgpack (or msgpack in the
interpreter used), qemu-system-x86 and busybox (the guest-API relay). It builds or reuses the artifacts with
scripts/build-python-runtime.sh, then runs these VMs one after another, each with a hard deadline and killed by PID:

  A  cold boot -> hello -> host disconnects -> QMP stop + migrate to a file ("waiting for config" template)
  B  cold boot, internet off -> config (zip made like `aleph program upload ./myapp main:app`) -> 50 requests and
     the checks below -> halt
  C  restore of A, internet off -> config -> first answer; guest API reachable, outside unreachable; then a warm
     snapshot of the configured program -> halt
  W  restore of C's warm snapshot -> hello says ready -> first answer -> halt
  D  restore of A, internet on -> outside reachable, guest API reachable -> halt
  E  restore of A -> executable program (entrypoint without ':') proxied to :8080 -> halt
  G  restore of A -> squashfs code made as the CLI makes it (loop-mounted), input_data zip in /data -> halt
  H  restore of A -> plain-encoded ASGI code -> halt
  F  restore of A -> a program whose import fails: success false, the VM still answers ping -> halt

Prints the timings at the end and exits non-zero on the first failed check.
"""

import argparse
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

try:
    import msgpack
except ImportError:  # e.g. started with a pyenv interpreter: re-run with Debian's, which has python3-msgpack
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    sys.exit("msgpack is missing: apt-get install python3-msgpack")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYNC = b"\x00RALEPH-SYNC-1\n"
PORT_NAME = "org.raleph.control"
API_ADDR = "10.0.2.100"
VM_HASH = "9c1dd8c7a6b0f1e8f3c1a1c5d9c2b4f0a7e6d5c4b3a2918f7e6d5c4b3a291807"
TOTAL_DEADLINE = 900
VERBOSE = False
T_START = time.monotonic()
FIGURES = {}


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)
    print(f"  ok   {what}", flush=True)


def remaining():
    left = TOTAL_DEADLINE - (time.monotonic() - T_START)
    if left <= 0:
        raise Failure("overall deadline exceeded")
    return left


# ---------------------------------------------------------------------------------------------------------------
# Host side of the protocol


def accelerator():
    """KVM only with a real VMX/SVM KVM module; a PVM /dev/kvm (kvm_pvm) runs only PVM guest kernels."""
    if os.path.exists("/dev/kvm") and (os.path.isdir("/sys/module/kvm_intel") or os.path.isdir("/sys/module/kvm_amd")):
        return "kvm"
    return "tcg,tb-size=64"


def tsc_khz():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return 2000000


class VM:
    def __init__(self, art, root, name, *, internet, api_port, incoming=None, memory=256):
        self.art, self.name = art, name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.ctl_path = os.path.join(self.dir, "ctl.sock")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.serial = os.path.join(self.dir, "serial.log")
        self.internet, self.api_port, self.incoming, self.memory = internet, api_port, incoming, memory
        self.proc = None
        self.sock = None
        self.frames = {}
        self.logs = []
        self.log_times = []
        self.unsolicited = []
        self.cond = threading.Condition()
        self.next_id = 1
        self.closed = False

    def argv(self):
        with open(os.path.join(self.art, "manifest.json")) as f:
            manifest = json.load(f)
        cmdline = manifest["cmdline"].replace("{tsc_khz}", str(tsc_khz()))
        relay = f"{shutil.which('busybox') or '/bin/busybox'} nc 127.0.0.1 {self.api_port}"
        netdev = (f"user,id=n0,net=10.0.2.0/24,restrict={'off' if self.internet else 'on'},"
                  f"guestfwd=tcp:{API_ADDR}:80-cmd:{relay}")
        argv = [
            "nice", "-n", "10", "qemu-system-x86_64",
            "-accel", accelerator(), "-cpu", "max" if "tcg" in accelerator() else "host",
            "-M", "microvm,acpi=on", "-m", str(self.memory), "-smp", "1",
            "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
            "-serial", f"file:{self.serial}",
            "-kernel", os.path.join(self.art, "vmlinuz"), "-initrd", os.path.join(self.art, "initrd.gz"),
            "-append", cmdline,
            "-drive", f"id=root,file={os.path.join(self.art, 'rootfs.squashfs')},format=raw,if=none,readonly=on",
            "-device", "virtio-blk-device,drive=root",
            "-netdev", netdev, "-device", "virtio-net-device,netdev=n0",
            "-device", "virtio-serial-device,id=vser0",
            "-chardev", f"socket,id=ctl,path={self.ctl_path},server=on,wait=off",
            "-device", f"virtserialport,bus=vser0.0,chardev=ctl,name={PORT_NAME}",
            "-device", "virtio-rng-device",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]
        if self.incoming:
            argv += ["-incoming", f"exec:cat {self.incoming}"]
        return argv

    def start(self):
        if VERBOSE:
            print("  $ " + " ".join(a if " " not in a and a else repr(a) for a in self.argv()), flush=True)
        self.t_launch = time.monotonic()
        with open(os.path.join(self.dir, "qemu.stderr"), "wb") as err:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        return self

    def rss_mb(self):
        # nice execs qemu in place, so the PID is QEMU's.
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None

    def kill(self):
        if self.sock:
            self.disconnect()
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def serial_tail(self, n=30):
        try:
            with open(self.serial, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def wait_path(self, path, timeout):
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise Failure(f"{self.name}: QEMU exited ({self.proc.returncode}): {self.stderr()}")
            if time.monotonic() > deadline:
                raise Failure(f"{self.name}: {path} did not appear")
            time.sleep(0.01)

    def stderr(self):
        with open(os.path.join(self.dir, "qemu.stderr"), errors="replace") as f:
            return f.read()[-2000:]

    # -- QMP
    def qmp(self, command, arguments=None, timeout=30):
        if not hasattr(self, "qmp_file"):
            self.wait_path(self.qmp_path, 10)
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(timeout)
            s.connect(self.qmp_path)
            self.qmp_file = s.makefile("rwb")
            json.loads(self.qmp_file.readline())  # greeting
            self.qmp("qmp_capabilities")
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.qmp_file.write(json.dumps(request).encode() + b"\n")
        self.qmp_file.flush()
        while True:
            answer = json.loads(self.qmp_file.readline())
            if "return" in answer:
                return answer["return"]
            if "error" in answer:
                raise Failure(f"{self.name}: QMP {command}: {answer['error']}")

    def wait_status(self, wanted, timeout):
        deadline = time.monotonic() + timeout
        while True:
            status = self.qmp("query-status")["status"]
            if status in wanted:
                return status
            if time.monotonic() > deadline:
                raise Failure(f"{self.name}: status {status}, wanted {wanted}")
            time.sleep(0.02)

    # -- control channel
    def connect(self, timeout=10):
        self.wait_path(self.ctl_path, timeout)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.ctl_path)
        self.closed = False
        self.hello = None
        self.t_connect = time.monotonic()
        threading.Thread(target=self._reader, args=(self.sock,), daemon=True).start()
        self.send({"command": "hello"})  # the guest answers with SYNC + hello even if it missed the reconnect

    def disconnect(self):
        # shutdown() first: close() alone does not end the connection while the reader thread is blocked in
        # recv() on it (the blocked call keeps the file open), and QEMU would never see the host leave.
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.sock = None

    def _reader(self, sock):
        buf = b""
        synced = False
        try:
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if not synced:
                    at = buf.find(SYNC)
                    if at < 0:
                        buf = buf[-len(SYNC):]
                        continue
                    buf = buf[at + len(SYNC):]
                    synced = True
                while len(buf) >= 4:
                    if buf[:1] == b"\x00" and buf[:len(SYNC)] == SYNC[:len(buf)]:
                        if len(buf) < len(SYNC):
                            break
                        buf = buf[len(SYNC):]  # another SYNC at a frame boundary: skip it
                        continue
                    (size,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    message = msgpack.unpackb(buf[4:4 + size], raw=False)
                    buf = buf[4 + size:]
                    with self.cond:
                        if "log" in message:
                            self.logs.append((message["log"], message["data"]))
                            self.log_times.append((time.monotonic(), message["data"]))
                        elif "id" in message:
                            self.frames[message["id"]] = (time.monotonic(), message)
                        elif "version" in message and self.hello is None:
                            self.hello = (time.monotonic(), message)
                        else:
                            self.unsolicited.append(message)
                        self.cond.notify_all()
        except OSError:
            pass

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + min(timeout, remaining())
        with self.cond:
            while True:
                value = predicate()
                if value is not None:
                    return value
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise Failure(f"{self.name}: no {what} (QEMU rc {self.proc.poll()})\n--- serial:\n"
                                  f"{self.serial_tail()}")
                self.cond.wait(min(left, 0.2))

    def wait_hello(self, timeout=60):
        return self._wait(lambda: self.hello, timeout, "hello")

    def send(self, message):
        payload = msgpack.packb(message, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def configure(self, config, timeout=90):
        t0 = time.monotonic()
        self.send(config)
        t, reply = self._wait_config(timeout)
        return reply, t - t0

    def _wait_config(self, timeout):
        def find():
            for i, message in enumerate(self.unsolicited):
                if "success" in message:
                    self.unsolicited.pop(i)
                    return time.monotonic(), message
            return None
        return self._wait(find, timeout, "config reply")

    def request(self, body, timeout=30):
        rid = self.submit(body)
        return self.result(rid, timeout)

    def submit(self, body):
        rid = self.next_id
        self.next_id += 1
        self.send({"id": rid, **body})
        return rid

    def result(self, rid, timeout=30):
        return self._wait(lambda: self.frames.pop(rid, (None, None))[1], timeout, f"reply to #{rid}")

    def halt(self, timeout=30):
        reply = self.request({"command": "halt"}, timeout)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name}: QEMU still running {timeout} s after halt")
        return reply

    def snapshot(self, path, timeout=60):
        """Host side of a snapshot: drop the control connection, pause, migrate to a file, quit."""
        self.disconnect()
        t0 = time.monotonic()
        self.qmp("stop")
        self.qmp("migrate", {"uri": f"exec:cat > {path}"})
        deadline = time.monotonic() + timeout
        while True:
            info = self.qmp("query-migrate")
            if info.get("status") == "completed":
                break
            if info.get("status") == "failed" or time.monotonic() > deadline:
                raise Failure(f"{self.name}: migration {info}")
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        try:
            self.qmp("quit")
        except Exception:
            pass
        self.proc.wait(10)
        return elapsed


def http_scope(method, path, query="", headers=(), body=b""):
    return {"scope": {"type": "http", "path": path, "method": method, "query_string": query,
                      "headers": [[k, v] for k, v in headers], "body": body}}


def header_values(reply, name):
    return [v for k, v in reply["headers"]["headers"] if k.lower() == name]


# ---------------------------------------------------------------------------------------------------------------
# Loopback servers and the test programs


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    hits = []

    def do_GET(self):
        ApiHandler.hits.append(self.path)
        if self.path.startswith("/api/v0/info/public.json"):
            body = json.dumps({"node": "raleph-smoke", "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = b"not found"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class OutsideHandler(ApiHandler):
    def do_GET(self):
        body = b"outside reached"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


ASGI_MAIN = r'''
import asyncio, hashlib, json, os
import aiohttp
from fastapi import FastAPI, Request, Response

http_app = FastAPI()
STATE = {"started": False, "messages": []}


@http_app.on_event("startup")
async def startup():
    STATE["started"] = True


@http_app.get("/")
async def index():
    return {"hello": "world", "started": STATE["started"]}


@http_app.api_route("/echo", methods=["GET", "POST", "PUT"])
async def echo(request: Request):
    body = await request.body()
    print(f"echo {request.method} {len(body)}")
    return {
        "method": request.method,
        "path": request.url.path,
        "q": request.query_params.getlist("q"),
        "x": request.headers.getlist("x-repeat"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "len": len(body),
    }


@http_app.get("/cookies")
async def cookies():
    response = Response("two cookies", media_type="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@http_app.get("/env")
async def env():
    return {k: os.environ.get(k) for k in ("SMOKE_VAR", "ALEPH_API_HOST", "ALEPH_VM_HASH", "HOSTNAME_CHECK")} | {
        "hostname": os.uname().nodename, "cwd": os.getcwd()}


@http_app.get("/boom")
async def boom():
    raise RuntimeError("boom as requested")


@http_app.get("/slow")
async def slow():
    await asyncio.sleep(0.5)
    return {"slept": 0.5}


@http_app.get("/api")
async def api():
    url = os.environ["ALEPH_API_HOST"] + "/api/v0/info/public.json"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(url) as response:
            return {"status": response.status, "json": await response.json()}


@http_app.get("/outside")
async def outside(port: int):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("10.0.2.2", port), 3)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        return {"reachable": True, "data": data.decode(errors="replace")[-40:]}
    except Exception as error:
        return {"reachable": False, "error": repr(error)}


@http_app.get("/messages")
async def messages():
    return STATE["messages"]


async def app(scope, receive, send):
    if scope["type"] == "aleph.message":
        event = await receive()
        STATE["messages"].append(event["body"])
        await send({"type": "aleph.message.result", "body": json.dumps({"seen": len(STATE["messages"])}).encode()})
        return
    await http_app(scope, receive, send)
'''

EXECUTABLE_MAIN = r'''#!/usr/bin/python3
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"exe {self.path} var={os.environ.get('SMOKE_VAR')}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Set-Cookie", "c=1")
        self.send_header("Set-Cookie", "d=2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(201)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[::-1])

    def log_message(self, fmt, *args):
        print("exe-log", fmt % args, flush=True)

print("executable starting", flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", 8080), Handler).serve_forever()
'''


RAW_ASGI_MAIN = r'''
import os


async def app(scope, receive, send):
    assert scope["type"] == "http"  # no lifespan support: the runtime must carry on without it
    await receive()
    with open("/data/hello.txt", "rb") as f:
        data = f.read()
    here = os.path.dirname(os.path.abspath(__file__)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": data + b" from " + here, "more_body": True})
    await send({"type": "http.response.body", "body": b" (streamed)"})
'''

PLAIN_APP = b'''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return
    await receive()
    await send({"type": "http.response.start", "status": 418, "headers": [[b"x-plain", b"yes"]]})
    await send({"type": "http.response.body", "body": b"plain code"})
'''


def make_squashfs_program(root, name, files):
    """The CLI's other path (mksquashfs on PATH): mksquashfs <dir> <dir>.squashfs -noappend, encoding "squashfs"."""
    path = os.path.join(root, name)
    os.makedirs(path)
    for rel, content in files.items():
        with open(os.path.join(path, rel), "w") as f:
            f.write(content)
    subprocess.run(["mksquashfs", path, f"{path}.squashfs", "-noappend", "-quiet", "-no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    with open(f"{path}.squashfs", "rb") as f:
        return f.read()


def make_zip(files):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def make_program(root, name, files):
    """Zip a directory exactly as the published CLI does for `aleph program upload ./myapp main:app` when
    mksquashfs is absent: shutil.make_archive(str(path), "zip", path) -> <path>.zip, encoding "zip"."""
    path = os.path.join(root, name)
    os.makedirs(path)
    for rel, (content, mode) in files.items():
        with open(os.path.join(path, rel), "w") as f:
            f.write(content)
        os.chmod(os.path.join(path, rel), mode)
    shutil.make_archive(str(path), "zip", path)
    with open(f"{path}.zip", "rb") as f:
        return f.read()


def config_for(code, entrypoint, *, variables=None, interface=None, encoding="zip", input_data=None,
               internet=False):
    config = {
        "vm_hash": VM_HASH,
        "encoding": encoding,
        "entrypoint": entrypoint,
        "code": code,
        "input_data": input_data,
        "variables": variables,
        "volumes": [],
        "ip": "10.0.2.15/24",
        "route": "10.0.2.2",
        # slirp's DNS only with internet: under restrict=on a query would time out instead of failing at once.
        "dns_servers": ["10.0.2.3"] if internet else [],
        "api_host": f"http://{API_ADDR}",
        "time": time.time(),
        "entropy": os.urandom(32),
    }
    if interface:
        config["interface"] = interface
    return config


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------------------------------------
# Scenarios


def scenario_requests(vm, outside_port):
    """The 50 requests and the functional checks (on a configured ASGI program)."""
    lat = []
    labelled = []

    def timed(body):
        t0 = time.monotonic()
        reply = vm.request(body)
        lat.append((time.monotonic() - t0) * 1000)
        scope = body["scope"]
        labelled.append((lat[-1], f"{scope['method']} {scope['path']} ({len(scope['body'])} B)"))
        return reply

    big = os.urandom(200_000)
    for i in range(50):
        kind = i % 5
        if kind == 0:
            r = timed(http_scope("GET", "/"))
            assert r["headers"]["status"] == 200 and json.loads(r["body"]["body"])["started"] is True, r
        elif kind == 1:
            r = timed(http_scope("GET", "/echo", f"q=a&q=b{i}", [(b"x-repeat", b"1"), (b"x-repeat", b"2")]))
            data = json.loads(r["body"]["body"])
            assert data["q"] == ["a", f"b{i}"] and data["x"] == ["1", "2"], data
        elif kind == 2:
            body = big if i == 2 else f"payload {i}".encode()
            r = timed(http_scope("POST", "/echo", "", [(b"content-type", b"application/octet-stream")], body))
            data = json.loads(r["body"]["body"])
            assert data["sha256"] == hashlib.sha256(body).hexdigest() and data["method"] == "POST", data
            assert "echo POST" in r["output"], r["output"]
        elif kind == 3:
            r = timed(http_scope("GET", "/cookies"))
            assert sorted(header_values(r, b"set-cookie"))[0].startswith(b"a=1"), r["headers"]
            assert len(header_values(r, b"set-cookie")) == 2, r["headers"]
        else:
            r = timed(http_scope("GET", "/env"))
            assert json.loads(r["body"]["body"])["SMOKE_VAR"] == "visible", r
    check(True, "50 requests: GET, GET with query + repeated headers, POST bodies (one of 200 kB), 2x Set-Cookie, env")
    FIGURES[f"{vm.name}: request latency p50 / p99 (ms, 50 sequential)"] = f"{pct(lat, 50):.1f} / {pct(lat, 99):.1f}"
    FIGURES[f"{vm.name}: slowest requests (ms)"] = ", ".join(f"{ms:.0f} {label}" for ms, label in
                                                               sorted(labelled, reverse=True)[:3])
    steady = lat[25:]
    FIGURES[f"{vm.name}: second half p50 / max (ms)"] = f"{pct(steady, 50):.1f} / {max(steady):.1f}"

    big = os.urandom(4 << 20)
    t0 = time.monotonic()
    r = vm.request(http_scope("POST", "/echo", "", [], big), timeout=60)
    took = time.monotonic() - t0
    check(json.loads(r["body"]["body"])["sha256"] == hashlib.sha256(big).hexdigest(), "a 4 MiB POST body arrives intact")
    FIGURES[f"{vm.name}: 4 MiB POST round trip (s)"] = f"{took:.2f}"

    t0 = time.monotonic()
    ids = [vm.submit(http_scope("GET", "/echo", f"q={i}")) for i in range(20)]
    replies = [vm.result(i) for i in ids]
    check(all(json.loads(r["body"]["body"])["q"] == [str(i)] for i, r in enumerate(replies)),
          f"20 pipelined requests, each reply matched by id ({time.monotonic() - t0:.2f} s)")

    vm.disconnect()
    vm.connect()
    _, hello = vm.wait_hello(30)
    r = vm.request(http_scope("GET", "/"))
    check(hello["state"] == "ready" and r["headers"]["status"] == 200, "host reconnect: hello (ready) then requests")

    env = json.loads(vm.request(http_scope("GET", "/env"))["body"]["body"])
    check(env["SMOKE_VAR"] == "visible", "a message variable is in the program's environment")
    check(env["ALEPH_API_HOST"] == f"http://{API_ADDR}" and env["ALEPH_VM_HASH"] == VM_HASH,
          "ALEPH_API_HOST / ALEPH_VM_HASH set")
    check(len(env["hostname"]) == 52, f"hostname is the base32 hash ({env['hostname']})")

    r = vm.request(http_scope("GET", "/boom"))
    check("error" in r and "boom as requested" in r["traceback"], "a raising handler gives an error reply")
    r = vm.request(http_scope("GET", "/"))
    check(r["headers"]["status"] == 200, "the VM still serves after the error")

    t0 = time.monotonic()
    ids = [vm.submit(http_scope("GET", "/slow")) for _ in range(4)]
    replies = [vm.result(i) for i in ids]
    took = time.monotonic() - t0
    check(all(r["headers"]["status"] == 200 for r in replies) and took < 1.9,
          f"4 concurrent 0.5 s requests answered together in {took:.2f} s")

    r = vm.request({"scope": {"type": "aleph.message", "body": {"item_hash": "abc", "type": "POST"}}})
    check("body" in r and json.loads(r["body"]["body"])["seen"] == 1, f"an aleph.message scope reaches the app {r if 'body' not in r else ''}")
    r = vm.request(http_scope("GET", "/messages"))
    check(json.loads(r["body"]["body"]) == [{"item_hash": "abc", "type": "POST"}], "the app stored the event body")

    r = vm.request({"command": "ping"})
    check(r.get("pong") and r["state"] == "ready", "ping")
    logs = b"".join(data for stream, data in vm.logs if stream == "stdout")
    check(b"echo POST" in logs, "program stdout arrives as log frames")


def check_network(vm, outside_port, internet):
    ApiHandler.hits.clear()
    r = vm.request(http_scope("GET", "/api"), timeout=30)
    data = json.loads(r["body"]["body"]) if "body" in r else r
    check(r.get("headers", {}).get("status") == 200 and data["status"] == 200
          and data["json"]["node"] == "raleph-smoke", f"guest API {API_ADDR}:80 reaches the host's loopback server")
    r = vm.request(http_scope("GET", "/outside", f"port={outside_port}"), timeout=30)
    data = json.loads(r["body"]["body"])
    if internet:
        check(data["reachable"] and "outside reached" in data["data"], "internet on: 10.0.2.2:<port> is reachable")
    else:
        check(not data["reachable"], f"internet off (restrict=on): 10.0.2.2:<port> unreachable ({data['error'][:40]})")


def main():
    global TOTAL_DEADLINE, VERBOSE
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifacts", help="use this runtime directory instead of building")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--deadline", type=int, default=TOTAL_DEADLINE)
    parser.add_argument("--verbose", action="store_true", help="print each QEMU command line")
    args = parser.parse_args()
    TOTAL_DEADLINE = args.deadline
    VERBOSE = args.verbose

    art = args.artifacts
    if not art:
        t0 = time.monotonic()
        out = subprocess.run([os.path.join(REPO, "scripts", "build-python-runtime.sh")], stdout=subprocess.PIPE,
                             check=True, timeout=1800).stdout.decode().strip().splitlines()
        art = out[-1]
        FIGURES["build (or reuse) of the artifacts (s)"] = f"{time.monotonic() - t0:.1f}"
    print(f"artifacts: {art}; accelerator {accelerator()}", flush=True)

    work = tempfile.mkdtemp(prefix="raleph-smoke-")
    api = serve(ApiHandler)
    outside = serve(OutsideHandler)
    api_port, outside_port = api.server_address[1], outside.server_address[1]
    vms = []

    def vm(name, **kw):
        remaining()
        v = VM(art, work, name, api_port=api_port, **kw)
        vms.append(v)
        return v

    asgi_zip = make_program(work, "myapp", {"main.py": (ASGI_MAIN, 0o644)})
    exe_zip = make_program(work, "myexe", {"server.py": (EXECUTABLE_MAIN, 0o755)})
    bad_zip = make_program(work, "badapp", {"main.py": ("import no_such_module_here\n", 0o644)})
    squash_code = make_squashfs_program(work, "sqapp", {"main.py": RAW_ASGI_MAIN})
    variables = {"SMOKE_VAR": "visible"}
    template = os.path.join(work, "template.state")
    warm = os.path.join(work, "warm.state")
    try:
        # A: cold boot to hello, then the "waiting for config" template.
        print("A: cold boot -> hello -> template snapshot", flush=True)
        a = vm("A", internet=False).start()
        a.connect()
        t_hello, hello = a.wait_hello(90)
        check(hello["state"] == "waiting_config" and hello["version"] == "2.0.0", f"hello {hello}")
        FIGURES["A: cold boot -> hello (s, includes the preload of fastapi/aiohttp)"] = f"{t_hello - a.t_launch:.2f}"
        FIGURES["A: QEMU RSS at hello (MB)"] = f"{a.rss_mb():.0f}"
        save = a.snapshot(template)
        FIGURES["A: snapshot save (s) / size (MB)"] = f"{save:.2f} / {os.path.getsize(template) / 1e6:.0f}"

        # B: cold boot, the full program path.
        print("B: cold boot, internet off, 50 requests and checks", flush=True)
        b = vm("B", internet=False).start()
        b.connect()
        t_hello, _ = b.wait_hello(90)
        FIGURES["B: cold boot -> hello (s)"] = f"{t_hello - b.t_launch:.2f}"
        reply, took = b.configure(config_for(asgi_zip, "main:app", variables=variables))
        check(reply == {"success": True}, f"config accepted ({reply if not reply.get('success') else 'ok'})")
        FIGURES["B: config -> ready (s, cold VM)"] = f"{took:.2f}"
        scenario_requests(b, outside_port)
        check_network(b, outside_port, internet=False)
        FIGURES["B: QEMU RSS after the requests (MB)"] = f"{b.rss_mb():.0f}"
        r = b.halt()
        check(r.get("halted") is True and b.proc.returncode is not None, "halt: reply then QEMU exits")

        # C: restore the template, internet off.
        print("C: restore template, internet off", flush=True)
        c = vm("C", internet=False, incoming=template).start()
        c.wait_status({"paused", "running"}, 30)
        t_restored = time.monotonic()
        c.connect()
        c.qmp("cont")
        t_hello, hello = c.wait_hello(30)
        check(hello["state"] == "waiting_config", "restored VM says hello (waiting_config) on the new connection")
        reply, took = c.configure(config_for(asgi_zip, "main:app", variables=variables))
        check(reply == {"success": True}, "config accepted after restore")
        r = c.request(http_scope("GET", "/"))
        t_first = time.monotonic()
        check(r["headers"]["status"] == 200, "first answer after restore")
        FIGURES["C: QEMU start -> incoming done (s)"] = f"{t_restored - c.t_launch:.2f}"
        FIGURES["C: restore -> hello (s)"] = f"{t_hello - c.t_launch:.2f}"
        FIGURES["C: config -> ready (s, restored)"] = f"{took:.2f}"
        FIGURES["C: QEMU start (restore) -> first answer (s)"] = f"{t_first - c.t_launch:.2f}"
        env = json.loads(c.request(http_scope("GET", "/env"))["body"]["body"])
        check(env["SMOKE_VAR"] == "visible", "variable visible after restore")
        check_network(c, outside_port, internet=False)
        FIGURES["C: QEMU RSS (MB)"] = f"{c.rss_mb():.0f}"
        # Warm snapshot of the configured program.
        save = c.snapshot(warm)
        FIGURES["C: warm snapshot save (s) / size (MB)"] = f"{save:.2f} / {os.path.getsize(warm) / 1e6:.0f}"

        print("W: restore the warm program snapshot", flush=True)
        w = vm("W", internet=False, incoming=warm).start()
        w.wait_status({"paused", "running"}, 30)
        w.connect()
        w.qmp("cont")
        t_hello, hello = w.wait_hello(30)
        check(hello["state"] == "ready", "warm restore: hello says ready (no config to send)")
        r = w.request({"command": "resume", "time": time.time(), "entropy": os.urandom(32)})
        check(r.get("resumed") is True, "resume command (clock + RNG refresh after a restore)")
        r = w.request(http_scope("GET", "/"))
        t_first = time.monotonic()
        check(r["headers"]["status"] == 200, "warm restore answers")
        FIGURES["W: QEMU start (warm restore) -> first answer (s)"] = f"{t_first - w.t_launch:.2f}"
        check_network(w, outside_port, internet=False)
        w.halt()

        print("D: restore template, internet on", flush=True)
        d = vm("D", internet=True, incoming=template).start()
        d.wait_status({"paused", "running"}, 30)
        d.connect()
        d.qmp("cont")
        d.wait_hello(30)
        reply, _ = d.configure(config_for(asgi_zip, "main:app", variables=variables, internet=True))
        check(reply == {"success": True}, "config accepted")
        check_network(d, outside_port, internet=True)
        d.halt()

        print("E: restore template, executable program", flush=True)
        e = vm("E", internet=False, incoming=template).start()
        e.wait_status({"paused", "running"}, 30)
        e.connect()
        e.qmp("cont")
        e.wait_hello(30)
        reply, took = e.configure(config_for(exe_zip, "server.py", variables=variables))
        check(reply == {"success": True}, "executable config accepted")
        t0 = time.monotonic()
        r = e.request(http_scope("GET", "/hello", "x=1"), timeout=60)
        started = [t for t, data in e.log_times if b"executable starting" in data]
        FIGURES["E: executable: config -> ready / its first output / first answer (s after ready)"] = \
            f"{took:.2f} / {(started[0] - t0) if started else -1:.2f} / {time.monotonic() - t0:.2f}"
        check(r["headers"]["status"] == 200 and r["body"]["body"] == b"exe /hello?x=1 var=visible",
              f"executable answers through :8080 ({r.get('body')})")
        check(len(header_values(r, b"set-cookie")) == 2, "executable: repeated Set-Cookie kept")
        r = e.request(http_scope("POST", "/p", "", [(b"content-length", b"3")], b"abc"))
        check(r["headers"]["status"] == 201 and r["body"]["body"] == b"cba", "executable: POST body proxied")
        logs = b"".join(data for _, data in e.logs)
        check(b"executable starting" in logs and b"exe-log" in logs, "executable stdout/stderr arrive as log frames")
        e.halt()

        print("G: restore template, squashfs code (as the CLI makes it) + input_data", flush=True)
        g = vm("G", internet=False, incoming=template).start()
        g.wait_status({"paused", "running"}, 30)
        g.connect()
        g.qmp("cont")
        g.wait_hello(30)
        reply, _ = g.configure(config_for(squash_code, "main:app", encoding="squashfs",
                                          input_data=make_zip({"hello.txt": "hi"})))
        check(reply == {"success": True}, f"squashfs code accepted ({reply})")
        r = g.request(http_scope("GET", "/"))
        check(r["body"]["body"] == b"hi from /opt/code (streamed)",
              f"squashfs code loop-mounted at /opt/code, input_data in /data, streamed body joined ({r})")
        g.halt()

        print("H: restore template, plain code", flush=True)
        h = vm("H", internet=False, incoming=template).start()
        h.wait_status({"paused", "running"}, 30)
        h.connect()
        h.qmp("cont")
        h.wait_hello(30)
        reply, _ = h.configure(config_for(PLAIN_APP, "app", encoding="plain", interface="asgi"))
        check(reply == {"success": True}, f"plain code accepted ({reply})")
        r = h.request(http_scope("GET", "/"))
        check(r["headers"]["status"] == 418 and r["body"]["body"] == b"plain code", "plain-encoded ASGI code serves")
        h.halt()

        print("F: restore template, failing program", flush=True)
        f = vm("F", internet=False, incoming=template).start()
        f.wait_status({"paused", "running"}, 30)
        f.connect()
        f.qmp("cont")
        f.wait_hello(30)
        reply, _ = f.configure(config_for(bad_zip, "main:app"))
        check(reply["success"] is False and "no_such_module_here" in reply["traceback"],
              "an import failure gives success=false with the traceback")
        r = f.request({"command": "ping"})
        check(r.get("state") == "failed", "the VM still answers (state failed)")
        r = f.request(http_scope("GET", "/"))
        check("error" in r, "a request to a failed program gets an error reply")
        f.halt()
    except Failure as failure:
        print(f"FAIL {failure}", flush=True)
        for v in vms:
            if v.proc and v.proc.poll() is None:
                print(f"--- {v.name} serial tail:\n{v.serial_tail()}")
        return 1
    finally:
        for v in vms:
            v.kill()
        api.shutdown()
        outside.shutdown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print("\nfigures:")
    for key, value in FIGURES.items():
        print(f"  {key}: {value}")
    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
