"""Stop sequences (Chat's ``stop``, Messages' ``stop_sequences``): Claude Code has none per turn, so the gateway cuts
the reply's text before the first one, as the providers' contract says (``finish_reason: stop``; ``stop_reason:
stop_sequence`` with the sequence found), streamed or not, and the client's replay of the cut reply goes on in the
same warm session."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from ccapi.testing import MockModel, Reply
from tests.compat_support import main_requests
from tests.gateway import Gateway

TEXT = "alpha beta END gamma delta"


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_a_chat_reply_ends_before_its_stop_sequence_and_the_session_goes_on_warm(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    mock_model.script(Reply(text=TEXT), Reply(text="next"))
    messages: list[dict] = [{"role": "user", "content": "count"}]
    raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, stop=["nope", "END"])
    [choice] = raw.parse().choices
    assert (choice.message.content, choice.finish_reason) == ("alpha beta ", "stop")
    messages += [{"role": "assistant", "content": choice.message.content}, {"role": "user", "content": "more"}]
    again = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, stop="END")
    assert again.parse().choices[0].message.content == "next"
    assert again.headers["x-cc-session-id"] == raw.headers["x-cc-session-id"]
    assert len(main_requests(mock_model)) == 2


def test_a_streamed_chat_reply_never_sends_a_stop_sequence_split_across_deltas(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    mock_model.script(Reply(text=TEXT))
    stream = client.chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "count"}], stop=["beta END"], stream=True
    )
    chunks = list(stream)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces) == "alpha "
    assert not any("beta" in piece for piece in pieces), pieces
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_messages_reply_says_which_stop_sequence_it_ended_at(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text=TEXT), Reply(text=TEXT), Reply(text=TEXT))
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
        ask = {"model": "sonnet", "max_tokens": 256, "stop_sequences": ["gamma", "END"]}
        message = client.messages.create(**ask, messages=[{"role": "user", "content": "count"}])
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
        assert [block.text for block in message.content] == ["alpha beta "]  # type: ignore[union-attr]
        with client.messages.stream(**ask, messages=[{"role": "user", "content": "count again"}]) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert streamed == "alpha beta " and (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
        plain = client.messages.create(model="sonnet", max_tokens=256, messages=[{"role": "user", "content": "x"}])
        assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)
        assert [block.text for block in plain.content] == [TEXT]  # type: ignore[union-attr]
