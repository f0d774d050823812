"""Charts of the headline results, drawn from ``bench/results/<name>.json`` into ``docs/images/<name>.png``.

``make bench`` draws them after the benchmarks; ``python -m bench.charts`` redraws them from the committed results
without running anything. A missing result file skips its chart. Needs matplotlib (the ``bench`` extra).

    python -m bench.charts [--results DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from bench.common import REPO, RESULTS, percentile, say

IMAGES = REPO / "docs" / "images"
ARMS = {"native": "#1f6fb4", "compat": "#e8842a", "stateless": "#8c8c8c"}
ARM_LABELS = {
    "native": "native (CC API session)",
    "compat": "compat (/v1/chat/completions)",
    "stateless": "stateless proxy (replays everything)",
}
DPI = 110
THOUSANDS = FuncFormatter(lambda value, _pos: f"{value:,.0f}")


def _figure(width: float, height: float, columns: int) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, list(figure.subplots(1, columns))


def _footer(figure: Figure, data: dict[str, Any]) -> None:
    """Every chart says where its numbers come from, as the tables do."""
    m = data["machine"]
    figure.text(
        0.995,
        0.005,
        f"{data['generated_at'][:10]} · {m['cores']} cores, {m['cpu']} · "
        f"claude-agent-sdk {m['claude_agent_sdk']}, Claude Code {m['claude_code_cli']} · cc-api {m['cc_api']} "
        f"({m['git_commit']}) · mock model, loopback",
        ha="right",
        va="bottom",
        fontsize=7,
        color="#666666",
    )
    figure.get_layout_engine().set(rect=(0, 0.03, 1, 0.97))  # type: ignore[call-arg, union-attr]


def _style(axes: Axes, title: str, xlabel: str, ylabel: str, grid: str = "both") -> None:
    axes.set_title(title, fontsize=11)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, axis=grid, alpha=0.3)  # type: ignore[arg-type]
    axes.spines[["top", "right"]].set_visible(False)


# -- token burn --------------------------------------------------------------------
def token_burn(data: dict[str, Any]) -> Figure:
    """Client bytes, model bytes and prompt-cache reuse per turn, one line per arm."""
    figure, (client, model, reuse) = _figure(15, 4.8, 3)
    for arm, colour in ARMS.items():
        rows = data["turns"][arm]
        turns = [row["turn"] for row in rows]
        # compat's model side is native's, request for request: a thin dashed line over a thick one shows both
        line: dict[str, Any] = {
            "color": colour,
            "marker": ".",
            "label": ARM_LABELS[arm],
            **({"linestyle": "--", "linewidth": 1.2, "zorder": 3} if arm == "compat" else {"linewidth": 2.2}),
        }
        client.plot(turns, [row["client_bytes"] for row in rows], **line)
        model.plot(turns, [row["model"]["body_bytes"] / row["model"]["requests"] / 1000 for row in rows], **line)
        reuse.plot(
            turns,
            [
                row["model"]["reused_block_bytes"] / row["model"]["compared_block_bytes"]
                if row["model"]["compared_block_bytes"]
                else math.nan
                for row in rows
            ],
            **line,
        )
    client.set_yscale("log")
    client.yaxis.set_major_formatter(THOUSANDS)
    _style(client, "What the client sends", "turn", "request-body bytes per turn (log scale)")
    model.set_ylim(bottom=0)
    _style(model, "What reaches the model", "turn", "input kB per model request (mean over the turn)")
    reuse.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    _style(reuse, "What a prompt cache can reuse", "turn", "input repeating the previous request (whole blocks)")
    client.legend(fontsize=8, loc="center right")
    reuse.legend(fontsize=8, loc="lower left")
    params = data["params"]
    figure.suptitle(
        f"Token burn: one {params['turns']}-turn agent conversation with {params['tools']} client tools, three ways",
        fontsize=13,
    )
    _footer(figure, data)
    return figure


# -- overhead ----------------------------------------------------------------------
def overhead(data: dict[str, Any]) -> Figure:
    """The warm-turn latency distributions of both sides, and where a CC API turn's time goes."""
    figure, (histogram, split) = _figure(13, 4.8, 2)
    samples = {
        "direct ClaudeSDKClient": data["samples_ms"]["direct"],
        "direct + transcript mirror": data["samples_ms"]["mirrored"],
        "CC API (HTTP + events + store)": data["samples_ms"]["ccapi"],
    }
    limit = 10 * math.ceil(max(percentile(values, 99) for values in samples.values()) * 1.15 / 10)
    bins = [limit * n / 60 for n in range(61)]
    hidden = 0
    for (label, values), colour in zip(samples.items(), ("#8c8c8c", "#e6ab02", ARMS["native"]), strict=True):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        histogram.hist(
            [min(v, limit) for v in values if v <= limit],
            bins=bins,
            color=colour,
            alpha=0.55,
            label=f"{label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        )
        histogram.axvline(p50, color=colour, linestyle="--", linewidth=1.5)
        hidden += sum(v > limit for v in values)
    _style(histogram, f"Warm turn latency, {data['params']['turns']} turns per side", "turn latency, ms", "turns")
    histogram.legend(fontsize=8, loc="upper right")
    histogram.annotate(
        f"dashed: p50{f'; {hidden} turns above {limit} ms not shown' if hidden else ''}",
        xy=(0.98, 0.70),
        xycoords="axes fraction",
        ha="right",
        fontsize=8,
        color="#555555",
    )

    segments = data["summary"]["segments_p50_ms"]
    left = 0.0
    for (name, ms), colour in zip(segments.items(), ("#9ecae1", ARMS["native"], "#08519c"), strict=True):
        split.barh("CC API turn", ms, left=left, color=colour, label=f"{name}: {ms:.1f} ms")
        left += ms
    split.barh(
        "direct SDK turn",
        data["direct"]["p50_ms"],
        color="#8c8c8c",
        label=f"direct SDK turn: {data['direct']['p50_ms']:.1f} ms",
    )
    split.set_xlim(0, left * 1.1)
    _style(split, "Where a CC API turn's time goes (p50 of each segment)", "ms", "", "x")
    split.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    plain, mirrored = data["summary"]["whole_turn"]["vs_direct"], data["summary"]["whole_turn"]["vs_mirrored"]
    figure.suptitle(
        f"Gateway overhead: CC API's p50 is {plain['p50']:.2f}x the direct SDK's ({plain['p50_overhead_ms']:.0f} ms "
        f"more), {mirrored['p50']:.2f}x one that mirrors its transcript too\n(a mock model that answers at once)",
        fontsize=13,
    )
    _footer(figure, data)
    return figure


# -- stream ------------------------------------------------------------------------
def stream(data: dict[str, Any]) -> Figure:
    """Throughput and delivery lag as the subscribers of one streamed turn grow."""
    figure, (throughput, lag) = _figure(13, 4.8, 2)
    runs = data["runs"]
    labels = [f"{run['subscribers']:,}" for run in runs]
    positions = list(range(len(runs)))
    bars = throughput.bar(positions, [run["delivered_per_second"] for run in runs], color=ARMS["native"], width=0.6)
    throughput.bar_label(bars, labels=[f"{run['delivered_per_second']:,.0f}" for run in runs], fontsize=8)
    throughput.set_xticks(positions, labels)
    throughput.yaxis.set_major_formatter(THOUSANDS)
    _style(throughput, "Events delivered per second, all subscribers together", "subscribers", "events / s", "y")

    series = {
        "commit → receipt, p50": ([run["commit_lag"]["p50_ms"] / 1000 for run in runs], "#9ecae1"),
        "commit → receipt, p99": ([run["commit_lag"]["p99_ms"] / 1000 for run in runs], "#08519c"),
        "whole turn streamed in (first to last commit)": ([run["produce_seconds"] for run in runs], "#8c8c8c"),
    }
    width = 0.8 / len(series)
    for n, (name, (values, colour)) in enumerate(series.items()):
        bars = lag.bar([p + (n - 1) * width for p in positions], values, width=width, color=colour, label=name)
        lag.bar_label(bars, labels=[f"{v:.2g}" for v in values], fontsize=7)
    lag.set_yscale("log")
    lag.set_xticks(positions, labels)
    lag.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    _style(lag, "Delivery lag, and how long the turn itself took", "subscribers", "seconds (log scale)", "y")
    lag.legend(fontsize=8, loc="upper left")
    once = all(run["exactly_once_in_order"] for run in runs)
    figure.suptitle(
        f"Streaming fan-out: one turn of {data['params']['deltas']:,} deltas over /events/stream "
        f"({'every subscriber got every event once, in order' if once else 'EVENTS LOST OR REORDERED'})",
        fontsize=13,
    )
    _footer(figure, data)
    return figure


CHARTS: dict[str, Callable[[dict[str, Any]], Figure]] = {
    "token_burn": token_burn,
    "overhead": overhead,
    "stream": stream,
}


def draw(results: Path = RESULTS, out: Path = IMAGES) -> list[Path]:
    """Draw every chart whose result file exists; returns the images written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in CHARTS.items():
        source = results / f"{name}.json"
        if not source.exists():
            say(f"charts: no {source}, {name} not drawn (run python -m bench.{name})")
            continue
        target = out / f"{name}.png"
        chart(orjson.loads(source.read_bytes())).savefig(target, dpi=DPI, metadata={"Software": None})
        say(f"charts: wrote {target.relative_to(REPO) if target.is_relative_to(REPO) else target}")
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the <name>.json results are")
    parser.add_argument("--out", type=Path, default=IMAGES, help="where to write the <name>.png charts")
    args = parser.parse_args()
    draw(args.results, args.out)


if __name__ == "__main__":
    main()
