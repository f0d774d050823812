"""Turn input: a string, or a list of ``text`` / ``image`` / ``document`` blocks.

Validated here, before anything runs, so a bad block is a 400 that names the block
instead of a failed turn. Blocks are passed to Claude as Anthropic content blocks.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ccapi.errors import InvalidRequest, PayloadTooLarge

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
DOCUMENT_TYPES = ("application/pdf", "text/plain")
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024


def not_a_command(content: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """``content`` as text for the model, never one of Claude Code's slash commands. Claude Code runs a user message
    whose last text block begins with a command's name instead of asking the model (``/clear`` empties its context
    behind the session's back, ``/cost`` answers for itself); a text block that begins with a space it reads as
    text. A compat client's user wrote what it sends for the model, whatever its first character."""
    return tuple(
        {**block, "text": f" {block['text']}"}
        if block.get("type") == "text" and block["text"].startswith("/")
        else block
        for block in content
    )


def parse_input(value: Any) -> list[dict[str, Any]]:
    """Normalise turn input to a non-empty list of validated content blocks."""
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequest("input must not be empty")
        return [{"type": "text", "text": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("input must be a non-empty string or a non-empty list of content blocks")
    return [_block(index, block) for index, block in enumerate(value)]


def _block(index: int, block: Any) -> dict[str, Any]:
    where = f"input[{index}]"
    if not isinstance(block, dict):
        raise InvalidRequest(f"{where} must be an object with a 'type'")
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str) or not text:
            raise InvalidRequest(f"{where}.text must be a non-empty string")
        return {"type": "text", "text": text}
    if kind == "image":
        return {"type": "image", "source": _source(where, block.get("source"), IMAGE_TYPES, MAX_IMAGE_BYTES)}
    if kind == "document":
        out = {"type": "document", "source": _source(where, block.get("source"), DOCUMENT_TYPES, MAX_DOCUMENT_BYTES)}
        for optional in ("title", "context"):
            if block.get(optional) is not None:
                if not isinstance(block[optional], str):
                    raise InvalidRequest(f"{where}.{optional} must be a string")
                out[optional] = block[optional]
        return out
    raise InvalidRequest(f"{where}.type must be one of text, image, document", {"got": kind})


def _source(where: str, source: Any, media_types: tuple[str, ...], limit: int) -> dict[str, Any]:
    if not isinstance(source, dict):
        raise InvalidRequest(f"{where}.source must be an object")
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or not _host(url):
            raise InvalidRequest(f"{where}.source.url must be an http(s) URL")
        return {"type": "url", "url": url}
    if kind == "text" and "text/plain" in media_types:
        if not isinstance(source.get("data"), str):
            raise InvalidRequest(f"{where}.source.data must be a string")
        return {"type": "text", "media_type": "text/plain", "data": source["data"]}
    if kind != "base64":
        raise InvalidRequest(f"{where}.source.type must be 'base64' or 'url'", {"got": kind})
    media_type = source.get("media_type")
    if media_type not in media_types:
        raise InvalidRequest(f"{where}.source.media_type must be one of {', '.join(media_types)}", {"got": media_type})
    data = source.get("data")
    if not isinstance(data, str) or not data:
        raise InvalidRequest(f"{where}.source.data must be a non-empty base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}.source.data is not valid base64") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"{where} is {len(raw)} bytes; the limit for {media_type} is {limit}")
    if media_type == "text/plain":
        return {"type": "text", "media_type": "text/plain", "data": raw.decode("utf-8", "replace")}
    return {"type": "base64", "media_type": media_type, "data": data}


def summarise(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks as stored in events: binary payloads replaced by their size, so the log
    stays small and readable while the model still got the bytes."""
    summary = []
    for block in blocks:
        source = block.get("source")
        if source and source.get("type") == "base64":
            size = len(source["data"]) * 3 // 4 - source["data"][-2:].count("=")
            block = {**block, "source": {"type": "base64", "media_type": source["media_type"], "bytes": size}}
        summary.append(block)
    return summary


def _host(url: str) -> str | None:
    """The host ``url`` names (``None`` for ``http://`` alone, or a URL that does not parse)."""
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
