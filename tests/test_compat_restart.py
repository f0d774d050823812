"""Across a gateway restart: ``previous_response_id`` still continues its session (response
ids name it), and a replayed chat history finds its session in the affinity index the store
keeps: it continues warm (resumed from the stored transcript), with no re-seed."""

from __future__ import annotations

import openai
import pytest

from ccapi.testing import MockModel
from tests.compat_support import main_requests, user_texts

pytestmark = pytest.mark.slow  # restarts a gateway


def test_restart_keeps_responses_and_continues_chat_warm(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway()
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="unused", max_retries=0) as client:
        first = client.responses.with_raw_response.create(model="sonnet", input="remember teal")
        chat = [{"role": "user", "content": "remember pelican"}]
        raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=chat)
        chat += [
            {"role": "assistant", "content": raw.parse().choices[0].message.content},
            {"role": "user", "content": "which bird?"},
        ]
    chat_session = raw.headers["x-cc-session-id"]

    gw.restart()
    mock_model.clear()
    with openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="unused", max_retries=0) as client:
        resumed = client.responses.with_raw_response.create(
            model="sonnet", input="which colour?", previous_response_id=first.parse().id
        )
        assert resumed.headers["x-cc-session-id"] == first.headers["x-cc-session-id"]
        assert resumed.parse().output_text == "mock reply: which colour?"
        sent = main_requests(mock_model)[-1]["messages"]
        assert len(sent) == 3 and user_texts(sent[0]) == ["remember teal"]  # the same Claude conversation

        warm = client.chat.completions.with_raw_response.create(model="sonnet", messages=chat)
        assert warm.headers["x-cc-session-id"] == chat_session  # the affinity index lives in the store
        sent = main_requests(mock_model)[-1]["messages"]
        assert len(sent) == 3 and user_texts(sent[0]) == ["remember pelican"]
        assert "<conversation_history>" not in str(main_requests(mock_model))
