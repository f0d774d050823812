"""What OpenAI Chat and OpenAI Responses spell the same way: function tools, image URLs, PDF files,
function-call arguments, text parts, usage and finish reasons."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from typing import Any

import orjson

from ccapi.compat.parsing import expect
from ccapi.compat.replies import FinishReason
from ccapi.compat.reply import Reply
from ccapi.errors import InvalidRequest, PayloadTooLarge
from ccapi.sessions.inputs import IMAGE_TYPES, parse_input

_DATA_URL = re.compile(r"^data:(?P<media>[\w/+.-]*)(?:;[\w.+-]+=[^;,]*)*;base64,(?P<data>.*)$", re.DOTALL)
#: What clients write for the types Anthropic names otherwise (``f"data:image/{extension};base64,..."`` gives jpg).
_MEDIA_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
#: The first bytes of each image type Claude takes.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def image_block(url: Any, where: str) -> dict[str, Any]:
    """An OpenAI image URL (``data:`` base64 or http[s]) as a validated native image block. OpenAI reads a data URL's
    image whatever type it declares (``image/jpg``, ``image/PNG``, ``application/octet-stream``); Anthropic's four
    types are exact, so the declared type is taken in their spelling, or from the image's first bytes. A URL that is
    no image Claude can take is a 400 naming the request's field (``where``)."""
    expect(url, str, where, "a string")
    match = _DATA_URL.match(url)
    if match is None and url[:5].lower() == "data:":
        raise InvalidRequest(
            f"{where} must be a base64 data URL (data:image/png;base64,...) or an http(s) URL", param=where
        )
    source = (
        {"type": "base64", "media_type": _media_type(match["media"], match["data"]), "data": match["data"]}
        if match
        else {"type": "url", "url": url}
    )
    return _native({"type": "image", "source": source}, where, "image")


def _native(block: dict[str, Any], where: str, what: str) -> dict[str, Any]:
    """``block`` checked as a native turn's input; a refusal, which names the native field (``input[0].source.url``),
    names the request's (``where``) and what it holds instead: ``…image_url.url: the image's url must be …``."""
    try:
        return parse_input([block])[0]
    except (InvalidRequest, PayloadTooLarge) as exc:
        said = exc.message.removeprefix("input[0]")
        said = f"'s {said.removeprefix('.source.')}" if said.startswith(".source.") else said
        raise type(exc)(f"{where}: the {what}{said}", exc.details, param=where) from None


_PDF = "application/pdf"


def file_block(file: dict[str, Any], where: str) -> dict[str, Any]:
    """An OpenAI file input (Chat's ``file`` part's ``file``, Responses' ``input_file`` part) as a native document
    block: ``file_data`` (a base64 ``data:`` URL, or bare base64) or Responses' ``file_url`` (http[s]) of a PDF, titled
    by its ``filename``. Claude reads PDFs as documents; other files are a 400, and so is a ``file_id``: CC API has
    no Files API to read it from. ``where`` names the field that holds the file's fields."""
    if file.get("file_id") is not None:
        raise InvalidRequest(
            f"{where}.file_id: CC API has no Files API to read an uploaded file from; send the file's content "
            "in file_data (data:application/pdf;base64,...)",
            param=f"{where}.file_id",
        )
    title = file.get("filename")
    if title is not None:
        expect(title, str, f"{where}.filename", "a string")
    url, data = file.get("file_url"), file.get("file_data")
    if url is not None and data is None:
        source: dict[str, Any] = {"type": "url", "url": expect(url, str, f"{where}.file_url", "a string")}
        return _native({"type": "document", "source": source, "title": title}, f"{where}.file_url", "file")
    at = f"{where}.file_data"
    if data is None:
        raise InvalidRequest(f"{at} is required: the file's content, as data:application/pdf;base64,...", param=at)
    expect(data, str, at, "a string: the file's content, as data:application/pdf;base64,...")
    match = _DATA_URL.match(data)
    if match is None and data[:5].lower() == "data:":
        raise InvalidRequest(f"{at} must be a base64 data URL (data:application/pdf;base64,...)", param=at)
    declared, encoded = (match["media"].lower(), match["data"]) if match else ("", data)
    if declared != _PDF and not _is_pdf(encoded):
        raise InvalidRequest(
            f"{at} must be a PDF (application/pdf): Claude reads files as PDF documents; "
            f"got {declared or 'data that is not a PDF'}",
            {"got": declared or None},
            param=at,
        )
    source = {"type": "base64", "media_type": _PDF, "data": encoded}
    return _native({"type": "document", "source": source, "title": title}, at, "file")


def _is_pdf(data: str) -> bool:
    try:
        return base64.b64decode(data[:16], validate=True).startswith(b"%PDF-")
    except (binascii.Error, ValueError):
        return False


def _media_type(declared: str, data: str) -> str:
    media = declared.lower()
    media = _MEDIA_ALIASES.get(media, media)
    if media in IMAGE_TYPES:
        return media
    try:
        head = base64.b64decode(data[:16], validate=True)
    except (binascii.Error, ValueError):
        return media  # parse_input says what is wrong with it
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), media)


def function_tool(name: Any, description: str | None, parameters: Any) -> dict[str, Any]:
    """An OpenAI function definition as a native client tool (validated when the session is made)."""
    return {
        "name": name,
        "description": description or "",
        "input_schema": parameters if parameters is not None else {"type": "object", "properties": {}},
    }


def check_tool_choice(choice: Any, declared: Collection[str], nested: bool) -> None:
    """``tool_choice`` as OpenAI checks it: one of its words, a function (under ``function`` in Chat, ``nested``)
    the request declares, or a set of allowed tools. Not enforced: Claude Code decides when to call a tool."""
    if choice is None or (isinstance(choice, str) and choice in ("none", "auto", "required")):
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("function", "allowed_tools"):
        raise InvalidRequest("tool_choice must be none, auto, required or a function to call", param="tool_choice")
    if choice["type"] == "allowed_tools":
        return
    holder = choice.get("function") if nested else choice
    name = holder.get("name") if isinstance(holder, dict) else None
    where = "tool_choice.function.name" if nested else "tool_choice.name"
    if not isinstance(name, str):
        raise InvalidRequest(f"{where} must be a string", param=where)
    if name not in declared:
        raise InvalidRequest(
            f"{where} names no tool of the request: {name!r}", {"tools": sorted(declared)}, param=where
        )


def arguments(raw: Any, where: str) -> dict[str, Any]:
    """Function-call arguments: a JSON object, sent as a string."""
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(expect(raw, str, where, "a JSON string") or "{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{where} must be a JSON object encoded as a string", param=where) from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must encode a JSON object", param=where)
    return value


def text_of(content: Any, where: str, part_types: tuple[str, ...]) -> str:
    """A string, or an array of text parts (``part_types`` name the text part types)."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = expect(content, list, where, "a string or an array of text parts")
    texts = []
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("type") not in part_types:
            raise InvalidRequest(
                f"{where}[{index}] must be a text part ({', '.join(part_types)})", param=f"{where}[{index}]"
            )
        texts.append(expect(part.get("text", part.get("refusal")), str, f"{where}[{index}].text", "a string"))
    return "".join(texts)


def finish_reason(reply: Reply) -> FinishReason:
    if reply.tool_calls and reply.status == "requires_action":
        return "tool_calls"
    return "length" if reply.truncated and reply.stop_sequence is None else "stop"


def prompt_tokens(usage: dict[str, int]) -> int:
    return sum(
        int(usage.get(key) or 0) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )


def dump(value: Any) -> str:
    return orjson.dumps(value).decode()
