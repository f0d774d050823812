"""The benchmarks' own plumbing: progress lines a person watches during a long run, and the charts drawn from
the result files. Fast: no gateway, no Claude Code (the charts come from the committed bench/results)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from bench.common import RESULTS, Progress

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
