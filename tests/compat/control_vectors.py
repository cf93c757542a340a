"""Prints X-SignedPubKey headers built by the published SDK's VmClient from fixed keys, for
crates/raleph/tests/control.rs. Run with the compat venv:
    $(scripts/python-env.sh)/bin/python tests/compat/control_vectors.py
"""

import asyncio
import json

from aleph.sdk.chains.ethereum import ETHAccount
from aleph.sdk.chains.solana import SOLAccount
from aleph.sdk.client.vm_client import VmClient
from aleph_message.models import Chain
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk

DOMAIN_URL = "http://127.0.0.1:4024"


def ephemeral(byte: int) -> jwk.JWK:
    private = ec.derive_private_key(int.from_bytes(bytes([byte]) * 32, "big"), ec.SECP256R1())
    return jwk.JWK.from_pyca(private)


async def header(account, chain: Chain, key_byte: int, expires: str) -> str:
    client = VmClient(account, DOMAIN_URL)
    try:
        client.ephemeral_key = ephemeral(key_byte)
        client.pubkey_payload = client._generate_pubkey_payload(chain)
        client.pubkey_payload["expires"] = expires
        return await client._generate_pubkey_signature_header()
    finally:
        await client.close()


async def main() -> None:
    owner = ETHAccount(private_key=bytes([0x11]) * 32)
    other = ETHAccount(private_key=bytes([0x22]) * 32)
    sol = SOLAccount(private_key=bytes([0x33]) * 32)
    print("// owner", owner.get_address(), "other", other.get_address(), "sol", sol.get_address())
    for name, account, chain, key, expires in [
        ("ETH_OWNER", owner, Chain.ETH, 0x41, "2099-01-01T00:00:00Z"),
        ("ETH_OWNER_EXPIRED", owner, Chain.ETH, 0x41, "2020-01-01T00:00:00.000001Z"),
        ("ETH_OTHER", other, Chain.ETH, 0x42, "2099-01-01T00:00:00Z"),
        ("SOL_OWNER", sol, Chain.SOL, 0x43, "2099-01-01T00:00:00Z"),
    ]:
        text = await header(account, chain, key, expires)
        print(f"const {name}: &str = {json.dumps(text)};")


asyncio.run(main())
