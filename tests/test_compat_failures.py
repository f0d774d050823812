"""A turn that fails upstream reaches compat clients as an error in their own format,
both as a JSON reply and mid-stream."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from ccapi.testing import MockError, MockModel, Reply
from tests.gateway import Gateway

SERVER_ERROR = Reply(error=MockError(500, "api_error", "the mock is down"))


@pytest.fixture(scope="module")
def gateway(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Claude Code gives up after one retry, so a scripted fault fails the turn quickly."""
    gw = Gateway(tmp_path_factory.mktemp("gw"), mock_model.url, CC_API_UPSTREAM_RETRIES="1").start()
    yield gw
    gw.stop()


def test_openai_clients_get_an_openai_error(gateway: Gateway, mock_model: MockModel) -> None:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "fail"}])
        assert failed.value.status_code == 502 and failed.value.body["code"] == "upstream_error"
        assert failed.value.body["type"] == "server_error"

        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        stream = client.responses.create(model="sonnet", input="fail while streaming", stream=True)
        events = list(stream)
        assert events[0].type == "response.created" and events[-1].type == "error"
        assert events[-1].code == "upstream_error"

        # the failed exchange left no head: the retry is a fresh, working conversation
        retry = client.chat.completions.with_raw_response.create(
            model="sonnet", messages=[{"role": "user", "content": "fail"}]
        )
        assert retry.parse().choices[0].message.content == "mock reply: fail"


def test_anthropic_clients_get_an_anthropic_error(gateway: Gateway, mock_model: MockModel) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        with pytest.raises(anthropic.APIStatusError) as failed:
            client.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "fail"}])
        assert failed.value.status_code == 502
        assert failed.value.body["type"] == "error" and failed.value.body["error"]["type"] == "api_error"

        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        with (
            pytest.raises(anthropic.APIStatusError) as streamed,
            client.messages.stream(
                model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "fail streaming"}]
            ) as stream,
        ):
            stream.get_final_message()
        assert streamed.value.body["error"]["type"] == "api_error"
