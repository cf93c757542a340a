"""Helpers shared by the compatibility tests (importable from tests and conftest)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import re
import secrets
import time
from typing import Any, Awaitable, Callable, Optional, Union

import aiohttp

from aleph.sdk.chains.ethereum import ETHAccount
from aleph.sdk.chains.solana import SOLAccount
from aleph.sdk.client.authenticated_http import AuthenticatedAlephHttpClient
from aleph.sdk.utils import extended_json_encoder

# Exactly the envelope fields the SDK puts on the wire in POST /api/v0/messages.
BROADCAST_FIELDS = set(AuthenticatedAlephHttpClient.BROADCAST_MESSAGE_FIELDS)


async def wait_until(
    predicate: Callable[[], Union[Any, Awaitable[Any]]],
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "",
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return that value.

    Exceptions raised by the predicate count as "not yet" and are reported if the timeout
    expires. The poll interval grows from ``interval`` to at most 0.5 s. No fixed sleeps:
    this returns as soon as the condition holds.
    """
    deadline = time.monotonic() + timeout
    last_value: Any = None
    last_exc: Optional[BaseException] = None
    delay = interval
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            last_exc = None
            if value:
                return value
            last_value = value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f"last exception: {last_exc!r}" if last_exc else f"last value: {last_value!r}"
            raise AssertionError(
                f"wait_until timed out after {timeout:.1f}s"
                f"{': ' + message if message else ''} ({detail})"
            )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.5)


def new_eth_account() -> ETHAccount:
    return ETHAccount(private_key=secrets.token_bytes(32))


def new_sol_account() -> SOLAccount:
    return SOLAccount(private_key=secrets.token_bytes(32))


def random_item_hash() -> str:
    """A well-formed storage item hash (sha256 hex) that nobody ever published."""
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def parse_json_output(stdout: str) -> Any:
    """The CLI prints free text around an indented JSON document: return the first
    top-level JSON value that starts at the beginning of a line."""
    decoder = json.JSONDecoder()
    for m in re.finditer(r"^[\[{]", stdout, re.MULTILINE):
        try:
            value, _ = decoder.raw_decode(stdout[m.start():])
            return value
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON document in CLI output:\n{stdout}")


def wire_message(message) -> dict:
    """The envelope dict exactly as AuthenticatedAlephHttpClient._broadcast sends it."""
    return json.loads(
        json.dumps(message.model_dump(include=BROADCAST_FIELDS), default=extended_json_encoder)
    )


async def post_message_raw(
    http: aiohttp.ClientSession, message: dict, sync: bool = True
) -> tuple[int, Any]:
    """POST /api/v0/messages like the SDK does; returns (HTTP status, JSON body or text)."""
    async with http.post("/api/v0/messages", json={"sync": sync, "message": message}) as resp:
        text = await resp.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return resp.status, body


async def get_json(http: aiohttp.ClientSession, path: str, **params: Any) -> tuple[int, Any]:
    async with http.get(path, params=params or None) as resp:
        text = await resp.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return resp.status, body


def ts(message) -> float:
    """Envelope time of an aleph-message model as epoch seconds (aleph-message >= 1.3 parses
    it into a timezone-aware datetime; older versions keep the float)."""
    t = message.time
    return t.timestamp() if hasattr(t, "timestamp") else float(t)
