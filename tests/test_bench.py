"""The benchmarks' own plumbing: progress lines a person watches during a long run, and the charts drawn from
the result files. Fast: no gateway, no Claude Code (the charts come from the committed bench/results)."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest

from bench.common import RESULTS, Progress
from bench.longday import BEGIN, END, DayModel, answer, docs_table, kind_of, prompt

DOCS = RESULTS.parent.parent / "docs"
LINE = re.compile(r"^\[ *\d+\.\d s\] ")


def test_progress_says_counts_rate_and_time_left_as_it_goes(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("new sessions", 20)
    for _ in range(20):
        progress.step()
    out, err = capsys.readouterr()
    assert out == ""  # the tables own stdout
    lines = err.splitlines()
    assert all(LINE.match(line) for line in lines), lines
    said = [LINE.sub("", line) for line in lines]
    assert said[0] == "new sessions: 0/20"
    assert [s.split(" ", 3)[2] for s in said[1:]] == [f"{n}/20" for n in range(2, 21, 2)]  # a tenth at a time
    assert all(re.search(r", [\d.]+/s, [\d.]+ s elapsed, ~\d+ s left$", s) for s in said[1:-1]), said
    assert said[-1].startswith("new sessions: 20/20 (100%)") and "left" not in said[-1]


def test_progress_speaks_up_after_an_interval_even_between_steps(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("resumed sessions", 1000, interval=0.0)
    for _ in range(3):
        progress.step()
    said = [LINE.sub("", line) for line in capsys.readouterr().err.splitlines()]
    assert [s.split(" ", 3)[2] for s in said[1:]] == ["1/1000", "2/1000", "3/1000"]


def test_charts_are_drawn_from_the_result_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the charts need the bench extra: pip install -e '.[bench]'")
    from bench.charts import CHARTS, draw

    written = draw(RESULTS, tmp_path / "images")
    assert [p.name for p in written] == [f"{name}.png" for name in CHARTS]
    for image in written:
        head = image.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", head[16:24])
        assert width >= 1200 and height >= 450, (image.name, width, height)  # legible in the docs at full width
    assert "charts: wrote" in capsys.readouterr().err

    assert draw(tmp_path / "no-results", tmp_path / "none") == []
    assert "token_burn not drawn" in capsys.readouterr().err


def test_the_benchmarks_page_shows_every_chart() -> None:
    page = (DOCS / "benchmarks.md").read_text()
    linked = re.findall(r"!\[[^\]]+\]\((images/[\w.-]+\.png)\)", page)
    assert {"images/token_burn.png", "images/overhead.png", "images/stream.png"} <= set(linked)
    for link in linked:
        assert (DOCS / link).is_file(), link


def _request(*messages: tuple[str, Any], tools: tuple[str, ...] = ()) -> dict[str, Any]:
    """A model request as Claude Code sends it: messages with content blocks, the client's tools as MCP tools."""
    blocks = []
    for role, content in messages:
        blocks.append(
            {"role": role, "content": [{"type": "text", "text": content}] if isinstance(content, str) else content}
        )
    return {"messages": blocks, "tools": [{"name": f"mcp__client__{name}"} for name in tools]}


def test_the_long_day_mock_answers_each_request_by_what_it_is() -> None:
    """bench.longday's mock: the clients' side requests come in an order the bench does not control, so a turn's
    prompt, a tool result, a summariser prompt, a memory flush and a heartbeat each get their own answer."""
    model = DayModel()
    tool_turn = _request(("user", prompt(3)), tools=("read", "write"))
    first = model.answer(tool_turn)
    assert [t.name for t in first.tool_uses] == ["read"] and first.tool_uses[0].input == {"path": "notes/day3.md"}
    assert model.answer(tool_turn).text == answer(3)  # asked again (a retry, a fork): no second call
    result = [{"type": "tool_result", "tool_use_id": "t1", "content": "notes"}]
    called = [{"type": "tool_use", "id": "t1", "name": "mcp__client__read", "input": {}}]
    assert model.answer(_request(("user", prompt(3)), ("assistant", called), ("user", result))).text == answer(3)
    assert model.answer(_request(("user", prompt(4)))).text == answer(4)
    reseed = "<conversation_history>\n<user>\n" + prompt(1) + "\n</user>\n</conversation_history>"
    assert model.answer(
        _request(("user", [{"type": "text", "text": reseed}, {"type": "text", "text": prompt(5)}]))
    ).text == answer(5)

    summary = _request(("user", "Create a summary.\n\nTURNS TO SUMMARIZE:\n" + prompt(1)))
    assert kind_of(summary) == "summary" and "Completed" in (model.answer(summary).text or "")
    quoted = "<conversation>\n[User]: " + prompt(12) + "\n[User]: [OpenClaw heartbeat poll]\n</conversation>\n\n"
    split = _request(("user", quoted + "This is the PREFIX of a turn that was too large to keep."))
    assert kind_of(split) == "summary_part" and "Completed" in (model.answer(split).text or "")
    flush = _request(("user", "Pre-compaction memory flush. Store durable memories only in memory/2026-11-30.md."))
    assert [t.input["path"] for t in model.answer(flush).tool_uses] == ["memory/2026-11-30.md"]
    wrote = [{"type": "tool_use", "id": "w1", "name": "mcp__client__write", "input": {}}]
    flushed = [{"type": "tool_result", "tool_use_id": "w1", "content": "ok"}]
    assert (
        model.answer(_request(("user", "Pre-compaction memory flush."), ("assistant", wrote), ("user", flushed))).text
        == "NO_REPLY"
    )
    beat = _request(
        ("user", prompt(6)), ("assistant", "ok"), ("user", "Read HEARTBEAT.md if it exists. Reply HEARTBEAT_OK.")
    )
    assert model.answer(beat).text == "HEARTBEAT_OK"


def test_the_compat_docs_long_day_table_is_generated_from_the_result_files() -> None:
    """docs/compat.md's before/after table is what `python -m bench.longday --docs` makes of bench/results."""
    page = (DOCS / "compat.md").read_text()
    assert f"{BEGIN}\n{docs_table()}\n{END}" in page
