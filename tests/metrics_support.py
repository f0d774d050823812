"""Reading a gateway's ``/metrics`` in tests: scrape (checked against the text format as Prometheus reads it),
then compare before and after."""

from __future__ import annotations

import math
import re

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway import Gateway

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_META = re.compile(rf"# (HELP|TYPE) ({_NAME}) ?(.*)")
_SAMPLE = re.compile(rf"({_NAME})(?:\{{(.*)\}})? (\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def scrape(gw: Gateway, headers: dict[str, str] | None = None) -> Samples:
    response = gw.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    check_exposition(response.text)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def check_exposition(text: str) -> None:
    """What the text format (version 0.0.4) and the naming conventions ask, strictly (``prometheus_client``'s own
    parser lets much through): one ``HELP`` and one ``TYPE`` per family, ahead of its samples, which follow each
    other; counters named ``_total``; well-escaped labels; each histogram's buckets cumulative up to ``+Inf``,
    which equals its ``_count``, with its ``_sum``."""
    assert text.endswith("\n"), "the last line ends with a line feed"
    families: dict[str, dict[str, str]] = {}
    types: dict[str, str] = {}
    family, histograms = "", {}
    for line in text.splitlines():
        meta = _META.fullmatch(line)
        if meta is not None:
            kind, name, rest = meta.groups()
            family = name
            seen = families.setdefault(name, {})
            assert kind not in seen and "samples" not in seen, f"{line!r}: once per family, before its samples"
            seen[kind] = rest
            if kind == "TYPE":
                types[name] = rest
            continue
        sample = _SAMPLE.fullmatch(line)
        assert sample is not None, f"not a sample line: {line!r}"
        name, labels, number = sample.groups()
        assert family and types.get(family), f"{line!r}: a sample before its family's TYPE"
        assert any(name == family + suffix for suffix in _SUFFIXES[types[family]]), f"{name} in {family}"
        families[family]["samples"] = "yes"
        parsed = _labels(labels or "")
        float(number)  # a Go float: 1.0, 3e+08, +Inf, NaN
        if types[family] == "histogram":
            series = tuple(sorted((k, v) for k, v in parsed.items() if k != "le"))
            histograms.setdefault((family, series), []).append((name, parsed.get("le"), float(number)))
    assert set(types) == set(families), "every family has a TYPE"
    counters = [name for name, type_ in types.items() if type_ == "counter"]
    assert all(name.endswith("_total") for name in counters), f"counters are named ..._total: {counters}"
    for (name, series), samples in histograms.items():
        _check_histogram(name, series, samples)


def _labels(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    position = 0
    while position < len(text):
        label = _LABEL.match(text, position)
        assert label is not None, f"badly escaped or formed labels: {text!r}"
        assert label.group(1) not in found, f"label {label.group(1)} twice"
        found[label.group(1)] = label.group(2)
        position = label.end()
    return found


def _check_histogram(
    name: str, series: tuple[tuple[str, str], ...], samples: list[tuple[str, str | None, float]]
) -> None:
    buckets = [(float(le), count) for sample, le, count in samples if sample == f"{name}_bucket" and le is not None]
    counts = [count for sample, _, count in samples if sample == f"{name}_count"]
    sums = [count for sample, _, count in samples if sample == f"{name}_sum"]
    assert buckets and len(counts) == 1 and len(sums) == 1, f"{name}{series}: buckets, one _count, one _sum"
    bounds = [bound for bound, _ in buckets]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds) and math.isinf(bounds[-1]), f"{name}: le"
    cumulative = [count for _, count in buckets]
    assert cumulative == sorted(cumulative), f"{name}{series}: buckets are cumulative"
    assert cumulative[-1] == counts[0], f"{name}{series}: le=+Inf equals _count"
