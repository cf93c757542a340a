"""raleph's own client (`raleph key`, `raleph post`, ...) checked against the Python tools:
keys imported from a mnemonic are the accounts eth_account derives, SOL key files are the
accounts the SDK loads, and the messages raleph signs parse in the SDK with the exact
`item_content` the SDK's models would write."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from aleph_message.models import AggregateContent, AggregateMessage, PostContent, PostMessage
from eth_account import Account

from aleph.sdk.chains.solana import SOLAccount


def raleph(node_url: str, tmp_path: Path, *args: str, stdin: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RALEPH_") or k == "RALEPH_BIN"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    proc = subprocess.run(
        [os.environ["RALEPH_BIN"], "--api", node_url, *args, "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, f"raleph {args}: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.timeout(60)
def test_mnemonics_give_eth_accounts_accounts(node_url, tmp_path):
    Account.enable_unaudited_hdwallet_features()
    for i in range(3):
        account, phrase = Account.create_with_mnemonic()
        key = tmp_path / f"k{i}.hex"
        out = raleph(node_url, tmp_path, "key", "import", "--key", str(key), stdin=phrase + "\n")
        assert out["address"] == account.address
        assert key.read_text() == account.key.hex().removeprefix("0x")
        other = Account.from_mnemonic(phrase, account_path="m/44'/60'/0'/0/3")
        out = raleph(
            node_url, tmp_path, "key", "import", "--key", str(tmp_path / f"k{i}-3.hex"),
            "--derivation-path", "m/44'/60'/0'/0/3", stdin=phrase,
        )
        assert out["address"] == other.address


@pytest.mark.timeout(60)
async def test_raleph_messages_are_the_sdks(node_url, tmp_path, client, channel):
    eth_key = tmp_path / "eth.hex"
    raleph(node_url, tmp_path, "key", "new", "--key", str(eth_key))
    sol_key = tmp_path / "sol.json"
    made = raleph(node_url, tmp_path, "key", "new", "--chain", "SOL", "--key", str(sol_key))
    # The SDK loads the same SOL account from the key file's secret half.
    seed = bytes(json.loads(sol_key.read_text())[:32])
    assert SOLAccount(seed).get_address() == made["address"]

    for key in (eth_key, sol_key):
        post = raleph(
            node_url, tmp_path, "--key", str(key), "--channel", channel,
            "post", "create", json.dumps({"text": "héllo", "n": 1.5}), "--type", "compat-raleph",
        )
        assert post["status"] == "processed"
        fetched = await client.get_message(post["item_hash"], message_type=PostMessage)
        content = PostContent(**json.loads(fetched.item_content))
        rebuilt = json.dumps(content.model_dump(exclude_none=True), separators=(",", ":"))
        assert fetched.item_content == rebuilt
        assert fetched.content.content == {"text": "héllo", "n": 1.5}

        aggregate = raleph(
            node_url, tmp_path, "--key", str(key), "--channel", channel,
            "aggregate", "set", "compat-raleph", json.dumps({"a": [1, 2]}),
        )
        fetched = await client.get_message(aggregate["item_hash"], message_type=AggregateMessage)
        content = AggregateContent(**json.loads(fetched.item_content))
        rebuilt = json.dumps(content.model_dump(exclude_none=True), separators=(",", ":"))
        assert fetched.item_content == rebuilt
        assert await client.fetch_aggregate(post["sender"], "compat-raleph") == {"a": [1, 2]}
