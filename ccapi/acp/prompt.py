"""ACP prompt content ↔ native turn input.

In: text as text; images as base64 image blocks (or URL images when the client only gives a link); embedded
text resources as text wrapped in ``<context ref="uri">`` (as Claude Code's own ACP adapter does), embedded PDFs
and images as document and image blocks, resource links as a Markdown link the model can open with its tools.
Out (``session/load``): a turn's recorded input as user message chunks; binary payloads are not in the log
(only their size), so an image replays as a short note.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from acp import text_block, update_user_message
from acp.schema import (
    BlobResourceContents,
    EmbeddedResourceContentBlock,
    ImageContentBlock,
    ResourceContentBlock,
    TextContentBlock,
    TextResourceContents,
    UserMessageChunk,
)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def native_input(blocks: Sequence[Any]) -> list[dict[str, Any]]:
    """The prompt's blocks as native input blocks; audio (not advertised) is skipped with a note, empty
    text dropped (the gateway refuses it). An empty list means there was nothing to send."""
    native: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, TextContentBlock):
            if block.text:
                native.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageContentBlock):
            native.append(_image(block.data, block.mime_type, block.uri))
        elif isinstance(block, ResourceContentBlock):
            native.append({"type": "text", "text": f"[@{block.name}]({block.uri})"})
        elif isinstance(block, EmbeddedResourceContentBlock):
            native.append(_resource(block.resource))
        else:
            kind = str(getattr(block, "type", "content"))
            article = "an" if kind[:1] in "aeiou" else "a"
            native.append({"type": "text", "text": f"[{article} {kind} block was left out]"})
    return native


def _image(data: str, mime_type: str, uri: str | None) -> dict[str, Any]:
    if not data and uri and uri.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": uri}}
    return {"type": "image", "source": {"type": "base64", "media_type": mime_type, "data": data}}


def _resource(resource: TextResourceContents | BlobResourceContents) -> dict[str, Any]:
    if isinstance(resource, TextResourceContents):
        return {"type": "text", "text": f'<context ref="{resource.uri}">\n{resource.text}\n</context>'}
    mime = resource.mime_type or ""
    if mime in IMAGE_TYPES:
        return _image(resource.blob, mime, None)
    if mime == "application/pdf":
        return {
            "type": "document",
            "source": {"type": "base64", "media_type": mime, "data": resource.blob},
            "title": resource.uri,
        }
    return {"type": "text", "text": f"[{resource.uri}: {mime or 'binary'} content was left out]"}


def replayed_input(blocks: Iterable[dict[str, Any]]) -> list[UserMessageChunk]:
    """A turn's input as the log keeps it (``turn.started``), as user message chunks, a paragraph a block (an editor
    joins chunks as they come: ``look[image: image/png]<context …>`` ran together)."""
    chunks: list[UserMessageChunk] = []
    for block in blocks:
        if block.get("type") == "text":
            said = str(block.get("text", ""))
        else:
            source = block.get("source") or {}
            said = f"[{block.get('type')}: {source.get('media_type') or source.get('url') or block.get('type')}]"
        chunks.append(update_user_message(text_block(f"\n\n{said}" if chunks else said)))
    return chunks
