"""PDF files in the OpenAI formats (Chat's ``file`` parts, Responses' ``input_file`` parts) reach Claude as document
blocks, as Anthropic's ``document`` blocks do; what Claude cannot read that way is a 400 in the format's envelope,
naming the request's own field."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from ccapi.testing import MockModel, Reply
from tests.compat_support import main_requests
from tests.gateway import Gateway

PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").decode()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def _documents(mock: MockModel) -> list[dict[str, Any]]:
    [request] = main_requests(mock)
    return [block for block in request["messages"][-1]["content"] if block.get("type") == "document"]


def test_a_chat_file_part_reaches_the_model_as_a_pdf_document(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(Reply(text="a one-page PDF"))
    completion = client.chat.completions.create(
        model="sonnet",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "summarise this"},
                    {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "a one-page PDF"
    [document] = _documents(mock_model)
    assert document["source"] == {"type": "base64", "media_type": "application/pdf", "data": PDF}
    assert document["title"] == "a.pdf"


def test_a_responses_input_file_reaches_the_model_as_a_pdf_document(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    mock_model.script(Reply(text="read it"))
    response = client.responses.create(
        model="sonnet",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what does it say?"},
                    {"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF}", "filename": "r.pdf"},
                ],
            }
        ],
    )
    assert response.output_text == "read it"
    [document] = _documents(mock_model)
    assert document["source"] == {"type": "base64", "media_type": "application/pdf", "data": PDF}
    assert document["title"] == "r.pdf"


def _chat_file(file: dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "text", "text": "read"}, {"type": "file", "file": file}]
    return {"model": "sonnet", "messages": [{"role": "user", "content": content}]}


def _responses_file(file: dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "input_text", "text": "read"}, {"type": "input_file", **file}]
    return {"model": "sonnet", "input": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("path", "body", "part"),
    [
        ("chat/completions", _chat_file, "messages[0].content[1].file"),
        ("responses", _responses_file, "input[0].content[1]"),
    ],
    ids=["chat", "responses"],
)
@pytest.mark.parametrize(
    ("file", "field", "said"),
    [
        ({"file_id": "file-abc123"}, "file_id", "no Files API"),
        ({"file_data": "data:text/plain;base64,aGVsbG8=", "filename": "a.txt"}, "file_data", "must be a PDF"),
        ({"file_data": "data:application/pdf;base64,not*base64"}, "file_data", "not valid base64"),
    ],
    ids=["file_id", "not_a_pdf", "bad_base64"],
)
def test_a_file_claude_cannot_read_is_a_400_in_the_openai_envelope(
    gateway: Gateway,
    mock_model: MockModel,
    path: str,
    body: Callable[[dict[str, Any]], dict[str, Any]],
    part: str,
    file: dict[str, Any],
    field: str,
    said: str,
) -> None:
    """Before, every file part was refused as an unknown part type; now a file is refused only for what it is,
    naming its field, and nothing reaches the model or makes a session."""
    before = gateway.session_ids()
    response = gateway.client.post(f"/v1/{path}", json=body(file))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == f"{part}.{field}", error
    assert error["message"].startswith(f"{part}.{field}") and said in error["message"], error
    assert main_requests(mock_model) == [] and gateway.session_ids() == before


def test_an_anthropic_block_claude_cannot_take_is_named_by_its_messages_field(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Checked as a native turn's input, a refused block was named as one (``input[0].source.type``), a field the
    Messages request does not have."""
    document = {"type": "document", "source": {"type": "file", "file_id": "file_011"}}
    body = {
        "model": "sonnet",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "read"}, document]}],
    }
    response = gateway.client.post("/v1/messages", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("messages[0].content[1].source.type must be"), error
    assert main_requests(mock_model) == []


def test_an_input_image_by_file_id_is_a_400_naming_the_file_id(gateway: Gateway, mock_model: MockModel) -> None:
    """It was refused as ``image_url must be a string``, a field the request had left out on purpose."""
    content = [{"type": "input_text", "text": "see"}, {"type": "input_image", "file_id": "file-abc", "detail": "auto"}]
    response = gateway.client.post(
        "/v1/responses", json={"model": "sonnet", "input": [{"role": "user", "content": content}]}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "input[0].content[1].file_id" and "no Files API" in error["message"], error
    assert main_requests(mock_model) == []
