"""A request with many long stop sequences (Messages' ``stop_sequences`` has no limit of its own; a body may hold
megabytes of them) costs the gateway little per streamed delta. The cut runs on the event loop for every delta of
the reply: what it costs there stalls every session of the gateway, not only that request's. In-process: what a
delta costs is not observable over HTTP but as a stall of everything else, which would make a timing test."""

from __future__ import annotations

import time

from ccapi.compat.reply import TextDelta
from ccapi.compat.stops import StopCut


def test_thousands_of_long_stop_sequences_cost_little_per_delta() -> None:
    """4,000 stop sequences of a thousand characters (4 MB, within the default body limit) took half a second of
    the event loop for each delta that began none of them (the end of the text compared with each sequence, at
    each length). The text still streams unchanged, holding back only an end that may begin one."""
    stops = tuple("x" * 995 + f"{n:05d}" for n in range(4000))
    cut = StopCut(stops)
    sent: list[str] = []
    started = time.process_time()
    for _ in range(10):
        sent.extend(delta.text for delta in cut.feed(TextDelta("word " * 300)) if isinstance(delta, TextDelta))
    sent.extend(delta.text for delta in cut.feed(TextDelta("then xxx")) if isinstance(delta, TextDelta))
    took = time.process_time() - started
    assert "".join(sent) == "word " * 3000 + "then "  # "xxx" may begin a stop sequence: held back
    assert took < 0.5, f"eleven deltas took {took:.1f} CPU-seconds"
