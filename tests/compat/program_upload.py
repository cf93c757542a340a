"""Publishes a Python program exactly as `aleph program upload DIR main:app` does, with the
CLI's own archive function and the SDK calls it makes (aleph-client 1.9.x), without the
pricing and balance lookups that read the live network's aggregates.

Run by test_programs.py with the aleph-client venv's interpreter:
    python program_upload.py API_URL KEY_HEX APP_DIR  → prints {"program", "code", "encoding"}
"""

import asyncio
import json
import sys
from pathlib import Path

from aleph.sdk.chains.ethereum import ETHAccount
from aleph.sdk.client import AuthenticatedAlephHttpClient
from aleph.sdk.conf import settings
from aleph.sdk.types import StorageEnum
from aleph_client.utils import create_archive


async def main(api: str, key_hex: str, app_dir: str) -> None:
    account = ETHAccount(bytes.fromhex(key_hex))
    archive, encoding = create_archive(Path(app_dir))
    async with AuthenticatedAlephHttpClient(account=account, api_server=api) as client:
        code, _ = await client.create_store(
            file_content=archive.read_bytes(),
            storage_engine=StorageEnum.storage,
            channel="TEST",
            guess_mime_type=True,
            ref=None,
            sync=True,
        )
        program, status = await client.create_program(
            program_ref=code.item_hash,
            entrypoint="main:app",
            runtime=settings.DEFAULT_RUNTIME_ID,
            metadata={"name": "compat"},
            vcpus=1,
            memory=2048,
            timeout_seconds=30,
            internet=False,
            allow_amend=False,
            encoding=encoding,
            volumes=[],
            environment_variables={"COLOR": "green"},
            channel="TEST",
            storage_engine=StorageEnum.storage,
            sync=True,
        )
    print(json.dumps({
        "program": program.item_hash,
        "code": code.item_hash,
        "encoding": encoding.value,
        "status": str(status),
        "runtime": settings.DEFAULT_RUNTIME_ID,
    }))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
