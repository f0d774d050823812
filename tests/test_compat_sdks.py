"""The compat endpoints as the official ``openai`` and ``anthropic`` SDKs use them with their default settings
(``max_retries=2``, whose retries obey ``x-should-retry``), and what the providers take that Claude is stricter about:
an image's data URL whatever type it declares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from ccapi.catalog import ModelCatalog
from ccapi.compat import openai_chat, openai_responses
from ccapi.errors import InvalidRequest
from ccapi.testing import MockError, MockModel, Reply
from tests.compat_support import main_requests
from tests.gateway import Gateway

#: An upstream refusal Claude Code does not retry (a 403): the turn fails at once, after one model request.
FORBIDDEN = Reply(error=MockError(403, "permission_error", "forbidden upstream"))


def _chat(base_url: str) -> None:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused") as client:
        client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "fail, chat"}])


def _responses(base_url: str) -> None:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused") as client:
        client.responses.create(model="sonnet", input="fail, responses")


def _messages(base_url: str) -> None:
    with anthropic.Anthropic(base_url=base_url, api_key="unused") as client:
        client.messages.create(model="sonnet", max_tokens=64, messages=[{"role": "user", "content": "fail, messages"}])


@pytest.mark.parametrize(
    ("ask", "error"),
    [
        (_chat, openai.InternalServerError),
        (_responses, openai.InternalServerError),
        (_messages, anthropic.InternalServerError),
    ],
    ids=["chat", "responses", "messages"],
)
def test_a_turn_that_failed_upstream_is_not_run_again_by_the_sdks_retries(
    gateway: Gateway, mock_model: MockModel, ask: Callable[[str], Any], error: type[Exception]
) -> None:
    """Claude Code has retried the model's API already (``CC_API_UPSTREAM_RETRIES``) when a turn fails upstream, so the
    ``502`` says ``x-should-retry: false``, which both SDKs obey: without it they sent the request twice more, and
    each retry ran another turn in another new session (three model requests, three Claude Code starts, three times
    the wait before the user saw the error)."""
    mock_model.script(FORBIDDEN, FORBIDDEN, FORBIDDEN)
    before = set(gateway.session_ids())
    with pytest.raises(error) as failed:
        ask(gateway.base_url)
    assert getattr(failed.value, "status_code", None) == 502
    assert failed.value.response.headers["x-should-retry"] == "false"  # type: ignore[attr-defined]
    assert len(main_requests(mock_model)) == 1
    assert len(set(gateway.session_ids()) - before) == 1


# -- images: OpenAI reads a data URL's image whatever type it declares ---------------------------------------------
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
JPEG = (  # a 1x1 JPEG image
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19i"
    "Z2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2P/wAARCAABAAEDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF"
    "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW"
    "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi"
    "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC"
    "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm"
    "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq"
    "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDLoooriPpj/9k="
)
CATALOG = ModelCatalog.from_setting(None)


def _chat_image(url: str) -> dict[str, Any]:
    content = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    body = {"model": "sonnet", "messages": [{"role": "user", "content": content}]}
    return openai_chat.parse(body, CATALOG, "claude-sonnet-4-5", None).request.conversation.messages[0].content[1]


def _responses_image(url: str) -> dict[str, Any]:
    content = [{"type": "input_text", "text": "what is this?"}, {"type": "input_image", "image_url": url}]
    body = {"model": "sonnet", "input": [{"role": "user", "content": content}]}
    return openai_responses.parse(body, CATALOG, "claude-sonnet-4-5", None).request.conversation.messages[0].content[1]


@pytest.mark.parametrize("image", [_chat_image, _responses_image], ids=["chat", "responses"])
@pytest.mark.parametrize(
    ("url", "media_type"),
    [
        (f"data:image/jpg;base64,{JPEG}", "image/jpeg"),  # f"data:image/{extension};base64,..." with a .jpg file
        (f"data:image/PNG;base64,{PNG}", "image/png"),
        (f"data:application/octet-stream;base64,{PNG}", "image/png"),  # read from the image's own first bytes
        (f"data:image/png;name=pixel.png;base64,{PNG}", "image/png"),
        (f"data:image/jpeg;base64,{JPEG}", "image/jpeg"),
    ],
)
def test_a_data_url_image_is_taken_in_anthropics_spelling_of_its_type(
    image: Callable[[str], dict[str, Any]], url: str, media_type: str
) -> None:
    """OpenAI takes these; Claude takes four exact types, and ``image/jpg`` was a 400 that named a field the request
    does not have (``input[0].source.media_type``)."""
    block = image(url)
    assert block["type"] == "image" and block["source"]["type"] == "base64"
    assert block["source"]["media_type"] == media_type and block["source"]["data"] == url.rsplit(",", 1)[1]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("data:image/bmp;base64,Qk0=", "media_type must be one of image/png, image/jpeg, image/gif, image/webp"),
        ("data:image/png,not-base64", "must be a base64 data URL"),
        ("ftp://images.example.invalid/cat.png", "url must be an http(s) URL"),
    ],
)
def test_an_image_claude_cannot_take_is_a_400_naming_the_requests_field(url: str, said: str) -> None:
    for image, field in (
        (_chat_image, "messages[0].content[1].image_url.url"),
        (_responses_image, "input[0].content[1].image_url"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            image(url)
        assert (
            refused.value.param == field and refused.value.message.startswith(field) and said in refused.value.message
        )


def test_an_image_url_of_type_jpg_reaches_the_model_through_the_sdk(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text="a pixel"))
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="sonnet",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is in this photo?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{JPEG}", "detail": "low"}},
                    ],
                }
            ],
        )
    assert completion.choices[0].message.content == "a pixel"
    [request] = main_requests(mock_model)
    images = [block for block in request["messages"][-1]["content"] if block.get("type") == "image"]
    assert len(images) == 1, request["messages"][-1]["content"]
