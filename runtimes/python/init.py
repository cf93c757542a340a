"""raleph guest init for Python programs (runs inside the microVM, started by init0 as a child of PID 1).

It speaks the message shapes of the reference program runtime (hello, config map, ASGI scopes, results, halt) over a
virtio-serial port instead of vsock. Every message is one frame: a 4-byte big-endian length followed by that many
bytes of msgpack (bin for bytes, str for text). The exact protocol is in PROTOCOL.md next to this file.

Threads: a reader thread parses frames from the port and hands them to the asyncio loop; a writer thread owns all
writes to the port; two threads forward the program's stdout/stderr (fds 1 and 2 are pipes) as log frames. The
asyncio loop applies the configuration and serves requests concurrently.
"""

def _uptime_now():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


_UPTIME_AT_IMPORT = _uptime_now()

import asyncio  # noqa: E402 (the imports are timed: under TCG they cost about a second)
import base64
import contextvars
import fcntl
import importlib
import io
import os
import queue
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

import msgpack

PROTOCOL_VERSION = "2.0.0"  # generation of the reference message shapes we speak
INIT_VERSION = "raleph-python/1"
PORT_NAME = "org.raleph.control"
SYNC = b"\x00RALEPH-SYNC-1\n"  # written before every hello (see PROTOCOL.md, "Connections")
MAX_FRAME = 64 << 20
LOG_BACKLOG_LIMIT = 4 << 20  # bytes of log frames queued while the host does not read; more is dropped
DEFAULT_PRELOAD = "fastapi,fastapi.responses,pydantic,starlette.applications,aiohttp,anyio,json,zipfile"
LOADING_PAGE = (
    b"<!DOCTYPE html><html><head><title>Loading</title><meta http-equiv='refresh' content='2'></head>"
    b"<body><p>The program is starting, please retry in a moment.</p></body></html>"
)
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"proxy-connection", b"upgrade", b"te", b"trailer"}

_console = None
T0 = time.monotonic()


def uptime() -> float:
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except OSError:
        return time.monotonic() - T0


def say(message: str) -> None:
    """Init diagnostics go to the serial console, never to the program's log stream."""
    line = f"[{uptime():8.3f}] raleph-init: {message}\n"
    try:
        _console.write(line)
        _console.flush()
    except Exception:
        pass


def kernel_params() -> dict:
    params = {}
    try:
        with open("/proc/cmdline") as f:
            for word in f.read().split():
                if word.startswith("raleph."):
                    key, _, value = word[len("raleph."):].partition("=")
                    params[key] = value
    except OSError:
        pass
    return params


# ---------------------------------------------------------------------------------------------------------------
# Control channel


def find_port(name: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            for entry in os.listdir("/sys/class/virtio-ports"):
                try:
                    with open(f"/sys/class/virtio-ports/{entry}/name") as f:
                        if f.read().strip() == name and os.path.exists(f"/dev/{entry}"):
                            return f"/dev/{entry}"
                except OSError:
                    continue
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"virtio-serial port {name!r} not found")
        time.sleep(0.01)


def pack(obj) -> bytes:
    payload = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


class Channel:
    """One virtio-serial port. The guest kernel blocks writes while no host is connected and returns EOF on reads
    once the host side closes; so after an EOF the reader re-announces itself (SYNC + hello) with a blocking write,
    which returns only when a host is connected again (e.g. after a snapshot restore)."""

    def __init__(self, path: str, hello, on_frame):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self.hello = hello  # callable returning the hello dict (the state can change between connections)
        self.on_frame = on_frame  # called in the reader thread with each decoded message
        self.out = queue.Queue()
        self.write_lock = threading.Lock()
        self.log_lock = threading.Lock()  # the two pump threads and the writer update the counters below
        self.log_backlog = 0
        self.log_dropped = 0
        self.connections = 0

    def start(self) -> None:
        threading.Thread(target=self._writer, name="ctl-writer", daemon=True).start()
        threading.Thread(target=self._reader, name="ctl-reader", daemon=True).start()

    def send(self, obj) -> None:
        self.out.put(pack(obj))

    def send_log(self, stream: str, data: bytes) -> None:
        with self.log_lock:
            if self.log_backlog + len(data) > LOG_BACKLOG_LIMIT:
                self.log_dropped += len(data)
                return
            dropped, self.log_dropped = self.log_dropped, 0
            self.log_backlog += len(data)
        if dropped:
            notice = f"[raleph: {dropped} bytes of log dropped while the host was not reading]\n"
            self.send({"log": "stderr", "data": notice.encode()})
        self.out.put((len(data), pack({"log": stream, "data": data})))

    def send_hello(self) -> None:
        """Answer a host's `hello` command: SYNC + hello, as one write unit."""
        self.out.put(SYNC + pack(self.hello()))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued frame was handed to the port."""
        done = threading.Event()
        self.out.put(done)
        done.wait(timeout)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)  # the port takes at most 32 KiB per call
            view = view[n:]

    def _writer(self) -> None:
        while True:
            item = self.out.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            if isinstance(item, tuple):
                size, item = item
                with self.log_lock:
                    self.log_backlog -= size
            try:
                with self.write_lock:
                    self._write_all(item)
            except OSError as error:
                say(f"control port write failed: {error}")
                time.sleep(0.1)

    def _announce(self) -> None:
        hello = self.hello()
        with self.write_lock:
            self._write_all(SYNC + pack(hello))  # blocks until a host is connected
        self.connections += 1
        say(f"host connected (#{self.connections}); hello sent, state {hello.get('state')}")

    def _reader(self) -> None:
        buf = bytearray()
        skip = 0  # bytes still to discard of an oversized frame
        self._announce()
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError as error:
                say(f"control port read failed: {error}")
                time.sleep(0.1)
                continue
            if not chunk:
                # Host side closed: drop any partial frame and wait for the next host.
                buf.clear()
                skip = 0
                say("host disconnected")
                time.sleep(0.01)
                self._announce()
                continue
            if skip:
                dropped = min(skip, len(chunk))
                skip -= dropped
                chunk = chunk[dropped:]
            buf += chunk
            while len(buf) >= 4:
                if buf[0] == 0 and buf[:len(SYNC)] == SYNC[:len(buf)]:
                    # A SYNC marker at a frame boundary (the host may send one when it connects): skip it.
                    if len(buf) < len(SYNC):
                        break
                    del buf[:len(SYNC)]
                    continue
                (size,) = struct.unpack_from(">I", buf)
                if size > MAX_FRAME:
                    say(f"frame of {size} bytes exceeds the limit of {MAX_FRAME}: skipped")
                    dropped = min(len(buf), 4 + size)
                    skip = 4 + size - dropped
                    del buf[:dropped]
                    continue
                if len(buf) < 4 + size:
                    break
                payload = bytes(buf[4:4 + size])
                del buf[:4 + size]
                try:
                    message = msgpack.unpackb(payload, raw=False, strict_map_key=False)
                except Exception as error:
                    say(f"undecodable frame dropped: {error}")
                    continue
                self.on_frame(message)


# ---------------------------------------------------------------------------------------------------------------
# Program output


current_output: contextvars.ContextVar = contextvars.ContextVar("raleph_output", default=None)


class TeeText(io.TextIOBase):
    """sys.stdout/sys.stderr replacement: everything goes to the underlying stream (fd 1/2, hence the log frames);
    what a request's task prints is also collected into that request's `output`."""

    def __init__(self, stream):
        self.stream = stream

    def writable(self):
        return True

    def write(self, text):
        buffer = current_output.get()
        if buffer is not None:
            buffer.append(text)
        self.stream.write(text)
        if "\n" in text:
            self.stream.flush()
        return len(text)

    def flush(self):
        self.stream.flush()

    def fileno(self):
        return self.stream.fileno()

    def isatty(self):
        return False

    @property
    def encoding(self):
        return self.stream.encoding


def capture_std_streams(channel_ref: list) -> None:
    """Point fds 1 and 2 at pipes whose contents are sent to the host as log frames. Child processes inherit them."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)

        def pump(read_end=read_end, name=name):
            while True:
                data = os.read(read_end, 65536)
                if not data:
                    return
                channel = channel_ref[0]
                if channel is not None:
                    channel.send_log(name, data)

        threading.Thread(target=pump, name=f"log-{name}", daemon=True).start()
    sys.stdout = TeeText(io.TextIOWrapper(os.fdopen(1, "wb", buffering=0, closefd=False), write_through=True,
                                          errors="backslashreplace"))
    sys.stderr = TeeText(io.TextIOWrapper(os.fdopen(2, "wb", buffering=0, closefd=False), write_through=True,
                                          errors="backslashreplace"))


# ---------------------------------------------------------------------------------------------------------------
# System setup from the configuration


def run(argv, check=True, **kwargs):
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stdout.decode(errors='replace')}")
    return result


def as_bytes(value) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def as_text(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def hostname_for(vm_hash: str):
    try:
        raw = base64.b16decode(vm_hash.upper())
    except Exception:
        return None
    return base64.b32encode(raw).decode().strip("=").lower()[:63]


def reseed(entropy: bytes) -> None:
    """A restored snapshot shares the kernel and Python RNG state of every other VM restored from it: mix the
    host's fresh bytes in, force a kernel reseed, and reseed Python's `random`."""
    if entropy:
        try:
            with open("/dev/urandom", "wb", buffering=0) as f:
                info = struct.pack("ii", len(entropy) * 8, len(entropy)) + entropy
                fcntl.ioctl(f, 0x40085203, info)  # RNDADDENTROPY
                fcntl.ioctl(f, 0x5207)  # RNDRESEEDCRNG
        except OSError as error:
            say(f"reseeding the kernel RNG failed: {error}")
    random.seed()


def setup_network(config: dict) -> None:
    if not os.path.exists("/sys/class/net/eth0"):
        return
    ip, ipv6 = config.get("ip"), config.get("ipv6")
    if ip and "/" not in ip:
        ip += "/24"  # the reference sends the address without a mask and means /24
    for address in (ip, ipv6):
        if address:
            run(["ip", "addr", "add", address, "dev", "eth0"])
    if ip or ipv6:
        run(["ip", "link", "set", "eth0", "up"])
    for gateway in (config.get("route"), config.get("ipv6_gateway")):
        if gateway:
            run(["ip", "route", "add", "default", "via", gateway, "dev", "eth0"])
    with open("/etc/resolv.conf", "w") as f:
        for server in config.get("dns_servers") or []:
            f.write(f"nameserver {server}\n")


def setup_volumes(volumes) -> None:
    for volume in volumes or []:
        mount, device = volume["mount"], volume["device"]
        os.makedirs(mount, exist_ok=True)
        if volume.get("read_only"):
            run(["mount", "-t", "squashfs", "-o", "ro", f"/dev/{device}", mount])
        else:
            run(["mount", "-o", "rw", f"/dev/{device}", mount])


def unzip(archive: str, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    result = run(["unzip", "-q", "-o", archive, "-d", dest], check=False)
    if result.returncode > 1:  # 1 = warnings only
        raise RuntimeError(f"unzip {archive} failed ({result.returncode}): {result.stdout.decode(errors='replace')}")


def place_code(code: bytes, encoding: str, entrypoint: str, interface: str) -> str:
    """Put the code where the reference runtime puts it; return the directory to import from / run in."""
    if encoding == "squashfs":
        os.makedirs("/opt/code", exist_ok=True)
        if code:
            with open("/opt/code.squashfs", "wb") as f:
                f.write(code)
            run(["mount", "-t", "squashfs", "-o", "ro,loop", "/opt/code.squashfs", "/opt/code"])
        elif os.path.exists("/dev/vdb") and not os.path.ismount("/opt/code"):
            run(["mount", "-t", "squashfs", "-o", "ro", "/dev/vdb", "/opt/code"])
        return "/opt/code"
    if encoding == "zip":
        with open("/opt/archive.zip", "wb") as f:
            f.write(code)
        dest = "/opt" if interface == "asgi" else "/opt/code"
        unzip("/opt/archive.zip", dest)
        return dest
    if encoding == "plain":
        if interface == "asgi":
            return "/opt"
        os.makedirs("/opt/code", exist_ok=True)
        with open(f"/opt/code/{entrypoint}", "wb") as f:
            f.write(code)
        return "/opt/code"
    raise ValueError(f"unknown encoding {encoding!r}")


def import_entrypoint(entrypoint: str):
    module_name, _, attr = entrypoint.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def asgi_scope_defaults(scope: dict) -> None:
    scope.setdefault("asgi", {"version": "3.0", "spec_version": "2.3"})


# ---------------------------------------------------------------------------------------------------------------
# The guest


class Guest:
    def __init__(self):
        self.loop = None
        self.channel = None
        self.state = "waiting_config"  # -> configuring -> ready | failed; halting
        self.config = None
        self.interface = None
        self.app = None
        self.process = None
        self.session = None
        self.lifespan = None
        self.lifespan_state = {}
        self.tasks = {}
        self.bodies = {}  # request id -> asyncio.Queue of (chunk, more) for streamed request bodies
        self.params = kernel_params()
        self.started = time.monotonic()

    # -- channel glue
    def hello(self) -> dict:
        return {
            "version": PROTOCOL_VERSION,
            "init": INIT_VERSION,
            "state": self.state,
            "vm_hash": (self.config or {}).get("vm_hash"),
            "uptime": round(uptime(), 3),
        }

    def on_frame(self, message) -> None:
        self.loop.call_soon_threadsafe(self.dispatch, message)

    def reply(self, message: dict) -> None:
        try:
            self.channel.send(message)
        except Exception as error:  # e.g. an ASGI app put something msgpack cannot encode in its response
            fallback = {"error": f"unencodable reply: {error}", "traceback": traceback.format_exc(), "output": ""}
            if "id" in message:
                fallback["id"] = message["id"]
            self.channel.send(fallback)

    # -- dispatch
    def dispatch(self, message) -> None:
        if not isinstance(message, dict):
            say(f"ignoring a non-map frame: {type(message).__name__}")
            return
        rid = message.get("id")
        if "scope" in message:
            if rid is None:
                say("ignoring a scope without id")
                return
            if message.get("streamed"):
                # The body follows in chunk frames; the answer goes back as a head and chunk frames.
                self.bodies[rid] = asyncio.Queue()
            self.spawn(rid, self.serve(rid, message["scope"], bool(message.get("streamed"))))
        elif "chunk" in message:
            body = self.bodies.get(rid)
            if body is not None:
                body.put_nowait((as_bytes(message.get("chunk")), bool(message.get("more"))))
        elif "command" in message:
            self.spawn(rid, self.command(rid, message))
        elif "entrypoint" in message or "code" in message:
            if self.state != "waiting_config":
                self.reply({"success": False, "error": f"already configured (state {self.state})", "traceback": ""})
                return
            self.state = "configuring"
            self.spawn(None, self.configure(message))
        else:
            say(f"ignoring an unknown frame with keys {sorted(message)}")

    def spawn(self, rid, coro) -> None:
        task = self.loop.create_task(coro)
        if rid is not None:
            self.tasks[rid] = task
            task.add_done_callback(lambda _t, rid=rid: self.tasks.pop(rid, None))

    # -- configuration
    async def configure(self, config: dict) -> None:
        t0 = time.monotonic()
        try:
            await self.apply_config(config)
            self.state = "ready"
            say(f"ready in {time.monotonic() - t0:.3f} s ({self.interface})")
            self.reply({"success": True})
        except BaseException as error:
            self.state = "failed"
            say(f"configuration failed: {error!r}")
            self.reply({"success": False, "error": f"{type(error).__name__}: {error}",
                        "traceback": traceback.format_exc()})
            if not isinstance(error, Exception):
                raise

    async def apply_config(self, config: dict) -> None:
        self.config = config
        if config.get("time"):
            try:
                time.clock_settime(time.CLOCK_REALTIME, float(config["time"]))
            except OSError as error:
                say(f"cannot set the clock: {error}")
        reseed(as_bytes(config.get("entropy")))
        vm_hash = as_text(config.get("vm_hash") or "")
        entrypoint = as_text(config.get("entrypoint") or "")
        encoding = as_text(config.get("encoding") or "zip")
        interface = as_text(config.get("interface") or ("asgi" if ":" in entrypoint else "executable"))
        if interface == "binary":
            interface = "executable"
        if interface not in ("asgi", "executable"):
            raise ValueError(f"unknown interface {interface!r}")
        self.interface = interface

        hostname = hostname_for(vm_hash) if vm_hash else None
        if hostname:
            socket.sethostname(hostname)
            with open("/etc/hosts", "a") as f:
                f.write(f"127.0.1.1\t{hostname}\n")
            os.environ["ALEPH_ADDRESS_TO_USE"] = hostname
        api = as_text(config.get("api_host") or "http://10.0.2.100")
        os.environ.update({
            "ALEPH_INIT_VERSION": PROTOCOL_VERSION,
            "ALEPH_API_HOST": api,
            "ALEPH_REMOTE_CRYPTO_HOST": api,
            "ALEPH_VM_HASH": vm_hash,
        })
        for name in ("ALEPH_API_UNIX_SOCKET", "ALEPH_REMOTE_CRYPTO_UNIX_SOCKET"):
            os.environ.pop(name, None)
        for key, value in (config.get("variables") or {}).items():
            os.environ[as_text(key)] = as_text(value)

        await asyncio.to_thread(self.setup_system, config)
        code = as_bytes(config.get("code"))
        workdir = await asyncio.to_thread(place_code, code, encoding, entrypoint, interface)
        os.chdir(workdir)
        if interface == "asgi":
            await self.load_asgi(code, encoding, entrypoint, workdir, config)
        else:
            await self.start_executable(entrypoint, config)

    def setup_system(self, config: dict) -> None:
        setup_volumes(config.get("volumes"))
        setup_network(config)
        input_data = as_bytes(config.get("input_data"))
        if input_data:
            with open("/opt/input.zip", "wb") as f:
                f.write(input_data)
            unzip("/opt/input.zip", "/data")
        keys = config.get("authorized_keys")
        if keys:
            os.makedirs("/root/.ssh", mode=0o700, exist_ok=True)
            with open("/root/.ssh/authorized_keys", "w") as f:
                f.write("\n".join(as_text(k) for k in keys) + "\n")

    async def load_asgi(self, code: bytes, encoding: str, entrypoint: str, workdir: str, config: dict) -> None:
        for path in ("/opt/packages", workdir):
            if path not in sys.path:
                sys.path.insert(0, path)
        sys.path.remove("/opt/packages")
        sys.path.insert(0, "/opt/packages")  # bundled packages win, as in the reference runtime
        importlib.invalidate_caches()
        if encoding == "plain":
            namespace = {"__name__": "__main__"}
            exec(compile(code, "<program>", "exec"), namespace)
            self.app = namespace[entrypoint]
        else:
            self.app = import_entrypoint(entrypoint)
        timeout = float(config.get("lifespan_timeout") or 30)
        await asyncio.wait_for(self.lifespan_startup(), timeout)

    async def lifespan_startup(self) -> None:
        """Run the ASGI lifespan protocol in a task that lives until halt. An app that rejects the lifespan scope
        simply has no lifespan (as the ASGI spec allows)."""
        started = self.loop.create_future()
        shutdown = asyncio.Event()
        finished = asyncio.Event()
        phase = ["startup"]

        async def receive():
            if phase[0] == "startup":
                phase[0] = "running"
                return {"type": "lifespan.startup"}
            await shutdown.wait()
            return {"type": "lifespan.shutdown"}

        async def send(message):
            kind = message.get("type")
            if kind == "lifespan.startup.complete" and not started.done():
                started.set_result(None)
            elif kind == "lifespan.startup.failed" and not started.done():
                started.set_exception(RuntimeError(f"lifespan startup failed: {message.get('message', '')}"))
            elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                finished.set()

        async def runner():
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.lifespan_state}
            try:
                await self.app(scope, receive, send)
            except BaseException as error:
                if not started.done():
                    say(f"no lifespan support ({type(error).__name__}: {error}); continuing")
                    started.set_result(None)
                    self.lifespan = None
                    return
                say(f"lifespan task ended with {error!r}")
            finally:
                finished.set()

        task = self.loop.create_task(runner())
        self.lifespan = (task, shutdown, finished)
        await started

    async def lifespan_shutdown(self, timeout: float = 10.0) -> None:
        if not self.lifespan:
            return
        task, shutdown, finished = self.lifespan
        shutdown.set()
        try:
            await asyncio.wait_for(finished.wait(), timeout)
        except asyncio.TimeoutError:
            say("lifespan shutdown did not complete in time")
            task.cancel()

    async def start_executable(self, entrypoint: str, config: dict) -> None:
        path = f"/opt/code/{entrypoint}"
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
        os.chmod(path, os.stat(path).st_mode | 0o111)
        args = [as_text(a) for a in (config.get("args") or [])]
        # stdout/stderr are inherited: fds 1 and 2 are the log pipes.
        self.process = subprocess.Popen([path, *args], cwd="/opt/code", stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        import aiohttp  # preloaded before the hello in the usual case

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, force_close=False),
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=2))

    # -- requests
    async def serve(self, rid, scope, streamed=False) -> None:
        output = []
        token = current_output.set(output)
        stream = {"rid": rid, "body": self.bodies.get(rid), "head_sent": False, "ended": False} if streamed else None
        try:
            if self.state != "ready":
                raise RuntimeError(f"program not ready (state {self.state})")
            if not isinstance(scope, dict):
                raise TypeError("scope must be a map")
            if self.interface == "asgi":
                headers, body = await self.serve_asgi(scope, stream)
            else:
                if stream is not None:
                    scope = dict(scope)
                    scope["body"] = await self.whole_body(stream["body"])
                    stream = None  # answered whole: the host takes both shapes
                headers, body = await self.serve_executable(scope)
            if stream is None or not stream["head_sent"]:
                self.reply({"id": rid, "headers": headers, "body": body, "output": "".join(output)})
            elif not stream["ended"]:
                self.reply({"id": rid, "chunk": b"", "more": False})
        except asyncio.CancelledError:
            self.reply({"id": rid, "error": "cancelled", "traceback": "", "output": "".join(output)})
        except Exception as error:
            self.reply({"id": rid, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(),
                        "output": "".join(output)})
        finally:
            self.bodies.pop(rid, None)
            current_output.reset(token)

    @staticmethod
    async def whole_body(queue) -> bytes:
        parts = []
        while queue is not None:
            chunk, more = await queue.get()
            parts.append(chunk)
            if not more:
                break
        return b"".join(parts)

    async def serve_asgi(self, scope_in: dict, stream=None):
        scope = dict(scope_in)
        kind = as_text(scope.get("type", "http"))
        scope["type"] = kind
        body = scope.pop("body", b"")
        if kind == "http":
            body = as_bytes(body)  # an aleph.message body is the message itself (a map) and is passed as is
        asgi_scope_defaults(scope)
        if kind == "http":
            scope["method"] = as_text(scope.get("method", "GET")).upper()
            path = as_text(scope.get("path") or "/")
            scope["path"] = path
            scope.setdefault("raw_path", path.encode("utf-8", "surrogateescape"))
            scope["query_string"] = as_bytes(scope.get("query_string"))
            scope["headers"] = [[as_bytes(k).lower(), as_bytes(v)] for k, v in scope.get("headers") or []]
            scope.setdefault("http_version", "1.1")
            scope.setdefault("scheme", "http")
            scope.setdefault("root_path", "")
            scope.setdefault("server", ("127.0.0.1", 80))
            scope.setdefault("client", ("127.0.0.1", 0))
            scope.setdefault("state", dict(self.lifespan_state))
        done = asyncio.Event()
        delivered = [False]

        async def receive():
            if stream is not None and kind == "http" and not delivered[0]:
                chunk, more = (await stream["body"].get()) if stream["body"] is not None else (b"", False)
                delivered[0] = not more
                return {"type": "http.request", "body": chunk, "more_body": more}
            if not delivered[0]:
                delivered[0] = True
                event_type = "http.request" if kind in ("http", "websocket") else kind
                return {"type": event_type, "body": body, "more_body": False}
            await done.wait()  # the client "disconnects" once the response is complete
            return {"type": "http.disconnect"}

        start = {}
        chunks = []
        first = []

        async def send(message):
            if kind != "http":
                if not first:
                    first.append(message)
                return
            mtype = message.get("type")
            if mtype == "http.response.start":
                start["status"] = int(message.get("status", 200))
                start["headers"] = [[as_bytes(k).lower(), as_bytes(v)] for k, v in message.get("headers") or []]
                if stream is not None and not stream["head_sent"]:
                    stream["head_sent"] = True
                    self.reply({"id": stream["rid"], "headers": {"status": start["status"], "headers": start["headers"]},
                                "streamed": True})
            elif mtype == "http.response.body" and stream is not None and stream["head_sent"]:
                if stream["ended"]:
                    return
                more = bool(message.get("more_body", False))
                self.reply({"id": stream["rid"], "chunk": as_bytes(message.get("body", b"")), "more": more})
                if not more:
                    stream["ended"] = True
                    done.set()
            elif mtype == "http.response.body":
                chunks.append(as_bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        if kind != "http":
            return {}, (first[0] if first else {"body": b""})
        if "status" not in start:
            raise RuntimeError("the ASGI application returned without starting a response")
        return {"status": start["status"], "headers": start["headers"]}, {"body": b"".join(chunks)}

    async def serve_executable(self, scope: dict):
        import aiohttp
        from yarl import URL

        if as_text(scope.get("type", "http")) != "http":
            raise ValueError("executable programs only take http scopes")
        path = as_text(scope.get("path") or "/")
        query = as_text(scope.get("query_string") or "")
        url = URL("http://127.0.0.1:8080" + path + (f"?{query}" if query else ""), encoded=True)
        headers = [(as_bytes(k).decode("latin-1"), as_bytes(v).decode("latin-1")) for k, v in scope.get("headers") or []]
        body = as_bytes(scope.get("body"))
        method = as_text(scope.get("method", "GET")).upper()
        t0 = time.monotonic()
        deadline = t0 + float(self.config.get("proxy_wait") or 30)
        delay = 0.05
        attempts = 0
        while True:
            attempts += 1
            if self.process.poll() is not None:
                raise RuntimeError(f"the program exited with status {self.process.returncode}")
            try:
                async with self.session.request(method, url, headers=headers, data=body or None,
                                                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding",
                                                                   "Content-Type"),
                                                allow_redirects=False) as response:
                    content = await response.read()
                    raw = [[k.lower(), v] for k, v in response.raw_headers if k.lower() not in HOP_BY_HOP]
                    if attempts > 1:
                        say(f"the program answered on :8080 after {attempts} attempts, "
                            f"{time.monotonic() - t0:.2f} s")
                    return {"status": response.status, "headers": raw}, {"body": content}
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as error:
                if attempts == 1:
                    say(f"the program does not answer on :8080 yet ({type(error).__name__}); retrying")
                if time.monotonic() > deadline:
                    return ({"status": 503, "headers": [[b"content-type", b"text/html; charset=utf-8"]]},
                            {"body": LOADING_PAGE})
                await asyncio.sleep(delay)
                delay = min(delay + 0.05, 0.5)

    # -- commands
    async def command(self, rid, message: dict) -> None:
        name = as_text(message.get("command"))
        if name == "hello":
            # Sent by the host after each connect: the guest may have missed the close/open of the host side
            # (e.g. across a snapshot), so it announces itself again.
            self.channel.send_hello()
        elif name == "resume":
            # After restoring a snapshot: the guest clock and RNG state are those of the snapshot.
            if message.get("time"):
                try:
                    time.clock_settime(time.CLOCK_REALTIME, float(message["time"]))
                except OSError as error:
                    say(f"cannot set the clock: {error}")
            reseed(as_bytes(message.get("entropy")))
            self.reply({"id": rid, "resumed": True, "state": self.state})
        elif name == "ping":
            self.reply({"id": rid, "pong": True, "state": self.state, "uptime": round(uptime(), 3)})
        elif name == "cancel":
            task = self.tasks.get(message.get("target"))
            if task:
                task.cancel()
            self.reply({"id": rid, "cancelled": bool(task)})
        elif name == "halt":
            await self.halt(rid)
        else:
            self.reply({"id": rid, "error": f"unknown command {name!r}", "traceback": "", "output": ""})

    async def halt(self, rid) -> None:
        say("halt requested")
        previous, self.state = self.state, "halting"
        try:
            if self.process is not None and self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                for _ in range(50):
                    if self.process.poll() is not None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    os.killpg(self.process.pid, signal.SIGKILL)
            if self.session is not None:
                await self.session.close()
            if previous == "ready" and self.interface == "asgi":
                await self.lifespan_shutdown(float((self.config or {}).get("shutdown_timeout") or 10))
        except Exception as error:
            say(f"error during halt: {error!r}")
        sys.stdout.flush()
        sys.stderr.flush()
        os.sync()
        for volume in (self.config or {}).get("volumes") or []:
            run(["umount", volume["mount"]], check=False)
        time.sleep(0.05)  # let the log pumps forward the last output
        self.reply({"id": rid, "halted": True})
        self.channel.flush()
        say("halted; powering off")
        power_off()


def power_off() -> None:
    """reboot(2) with LINUX_REBOOT_CMD_POWER_OFF: synchronous, unlike the sysrq trigger, so that nothing runs
    (and reads the root disk) while the devices go away. With ACPI on microvm, QEMU then exits."""
    import ctypes

    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.reboot(0x4321FEDC)
    say(f"reboot(POWER_OFF) failed: errno {ctypes.get_errno()}")
    os._exit(1)


def preload(names: str) -> None:
    """Import the usual heavy modules before the hello so that a snapshot taken while waiting for the
    configuration already holds them (under TCG, importing FastAPI costs seconds)."""
    t0 = time.monotonic()
    for name in filter(None, names.split(",")):
        try:
            importlib.import_module(name)
        except Exception as error:
            say(f"preload {name} failed: {error!r}")
    say(f"preloaded in {time.monotonic() - t0:.2f} s")


def main() -> None:
    global _console
    try:
        _console = open("/dev/console", "w", buffering=1)
    except OSError:
        _console = sys.__stderr__
    say(f"{INIT_VERSION} starting (pid {os.getpid()}; module import began at {_UPTIME_AT_IMPORT:.3f})")
    # Neither the init's own folder nor the current directory belongs on the program's import path.
    sys.path[:] = [p for p in sys.path if p not in ("", "/usr/lib/raleph")]
    guest = Guest()
    channel_ref = [None]
    capture_std_streams(channel_ref)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    preload(guest.params.get("preload", DEFAULT_PRELOAD))
    port = find_port(guest.params.get("port", PORT_NAME))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    guest.loop = loop
    guest.channel = Channel(port, guest.hello, guest.on_frame)
    channel_ref[0] = guest.channel
    guest.channel.start()
    try:
        loop.run_forever()
    finally:
        say("event loop stopped")
    os._exit(0)


if __name__ == "__main__":
    main()
