"""The SDK's own SessionStore conformance suite against CC API's transcript mirror."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from claude_agent_sdk.testing import run_session_store_conformance

from ccapi.store.sql import SqlStore, sqlite_database
from ccapi.store.transcripts import TranscriptMirror


def test_transcript_mirror_passes_the_sdk_conformance_suite(tmp_path: Path) -> None:
    counter = itertools.count()
    stores: list[SqlStore] = []

    async def make_store() -> TranscriptMirror:
        store = SqlStore(sqlite_database(tmp_path / f"conformance-{next(counter)}.db"))
        await store.open()
        stores.append(store)
        return TranscriptMirror(store)

    async def main() -> None:
        await run_session_store_conformance(make_store)
        for store in stores:
            await store.close()

    asyncio.run(main())
