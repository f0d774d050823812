"""Claude Code's transcript file read into the store as it grows (``engine.transcript_tail``), on files laid
out as Claude Code lays them out: what the store gets is what the SDK's mirror sent."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccapi.engine.transcript_tail import UNMIRRORED_TYPES, TranscriptTail

SID = "5d0c8a49-4b7e-4e59-9a39-1f1c7c1a0b11"


class Sink:
    def __init__(self) -> None:
        self.appended: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        self.appended.append((key, entries))

    def entries(self, subpath: str | None = None) -> list[dict[str, Any]]:
        return [e for key, batch in self.appended if key.get("subpath") == subpath for e in batch]


def _write(path: Path, *entries: dict[str, Any], partial: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as file:
        file.write(b"".join(orjson.dumps(e) + b"\n" for e in entries) + partial)


def _pull(tail: TranscriptTail, sink: Sink) -> None:
    asyncio.run(tail.import_new(sink))


def test_new_lines_arrive_in_order_without_claude_codes_own_bookkeeping(tmp_path: Path) -> None:
    main = tmp_path / "proj" / f"{SID}.jsonl"
    tail, sink = TranscriptTail(tmp_path, "proj"), Sink()
    _pull(tail, sink)  # the session is not known yet: nothing read, nothing fails
    tail.know(SID)
    _pull(tail, sink)  # known, not written yet
    assert sink.appended == []

    _write(
        main,
        {"type": "user", "uuid": "u1"},
        *({"type": kind, "n": 1} for kind in sorted(UNMIRRORED_TYPES)),
        {"type": "assistant", "uuid": "a1"},
        partial=b'{"type":"user","uu',  # Claude Code still writing this line
    )
    _pull(tail, sink)
    assert sink.appended == [
        (
            {"project_key": "proj", "session_id": SID},
            [{"type": "user", "uuid": "u1"}, {"type": "assistant", "uuid": "a1"}],
        )
    ]
    with main.open("ab") as file:
        file.write(b'id":"u2"}\n')
    _pull(tail, sink)
    _pull(tail, sink)  # nothing new: nothing appended
    assert [e["uuid"] for e in sink.entries()] == ["u1", "a1", "u2"]
    tail.close()


def test_a_resumed_transcript_is_read_from_where_it_was_materialised(tmp_path: Path) -> None:
    main = tmp_path / "proj" / f"{SID}.jsonl"
    _write(main, {"type": "user", "uuid": "old"})
    tail, sink = TranscriptTail(tmp_path, "proj", SID), Sink()
    _write(main, {"type": "user", "uuid": "new"})
    _pull(tail, sink)
    assert [e["uuid"] for e in sink.entries()] == ["new"]
    tail.close()


def test_a_file_under_another_project_name_is_found_by_its_session(tmp_path: Path) -> None:
    """Claude Code names its project directory after its working directory; should that name differ from the SDK's,
    the file is still found, and keyed as the mirror keyed it: by the directory it is in."""
    _write(tmp_path / "-elsewhere" / f"{SID}.jsonl", {"type": "user", "uuid": "u1"})
    tail, sink = TranscriptTail(tmp_path, "proj"), Sink()
    tail.know(SID)
    _pull(tail, sink)
    assert sink.appended == [({"project_key": "-elsewhere", "session_id": SID}, [{"type": "user", "uuid": "u1"}])]
    tail.close()


def test_subagents_come_with_their_metadata_once_per_change(tmp_path: Path) -> None:
    agent = tmp_path / "proj" / SID / "subagents" / "agent-a1b2.jsonl"
    sidecar = agent.with_name("agent-a1b2.meta.json")
    _write(tmp_path / "proj" / f"{SID}.jsonl", {"type": "user", "uuid": "u1"})
    tail, sink = TranscriptTail(tmp_path, "proj"), Sink()
    tail.know(SID)
    _write(agent, {"type": "user", "uuid": "s1", "isSidechain": True})
    sidecar.write_text('{"agentType": "general-purpose", "type": "stray"}')
    _pull(tail, sink)
    _write(agent, {"type": "assistant", "uuid": "s2", "isSidechain": True})
    _pull(tail, sink)
    assert sink.entries("subagents/agent-a1b2") == [
        {"type": "user", "uuid": "s1", "isSidechain": True},
        {"agentType": "general-purpose", "type": "agent_metadata"},
        {"type": "assistant", "uuid": "s2", "isSidechain": True},
    ]
    sidecar.write_text('{"agentType": "Explore"}')
    os.utime(sidecar, ns=(1, 1))  # a change the clock can tell apart
    _pull(tail, sink)
    assert sink.entries("subagents/agent-a1b2")[-1] == {"agentType": "Explore", "type": "agent_metadata"}
    tail.close()


def test_a_line_that_is_not_json_is_skipped_and_the_rest_still_arrive(tmp_path: Path, caplog) -> None:
    main = tmp_path / "proj" / f"{SID}.jsonl"
    _write(main, {"type": "user", "uuid": "u1"})
    with main.open("ab") as file:
        file.write(b"{not json\n")
    _write(main, {"type": "assistant", "uuid": "a1"})
    tail, sink = TranscriptTail(tmp_path, "proj"), Sink()
    tail.know(SID)
    _pull(tail, sink)
    assert [e["uuid"] for e in sink.entries()] == ["u1", "a1"]
    assert "not JSON" in caplog.text
    tail.close()


@pytest.mark.parametrize("cut", [0, 10])
def test_a_file_cut_short_is_read_on_from_its_new_end(tmp_path: Path, cut: int) -> None:
    main = tmp_path / "proj" / f"{SID}.jsonl"
    _write(main, {"type": "user", "uuid": "u1"}, {"type": "assistant", "uuid": "a1"})
    tail, sink = TranscriptTail(tmp_path, "proj"), Sink()
    tail.know(SID)
    _pull(tail, sink)
    os.truncate(main, cut)
    _pull(tail, sink)
    with main.open("ab") as file:
        file.write(b"\n" + orjson.dumps({"type": "user", "uuid": "u2"}) + b"\n")
    _pull(tail, sink)
    assert [e["uuid"] for e in sink.entries()] == ["u1", "a1", "u2"]
    tail.close()
