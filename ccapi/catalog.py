"""Known Claude models and model-name normalisation.

Clients arrive with Anthropic ids, Claude Code aliases or router-style names; the
gateway accepts all three and refuses unknown names up front with a 400, because an
unknown model otherwise surfaces minutes later as an opaque subprocess failure.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ccapi.config import ConfigError

_DATED = re.compile(r"^(?P<base>.+)-\d{8}$")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    context_window: int = 200_000
    max_output_tokens: int = 64_000
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "aliases": list(self.aliases)}


BUILTIN_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("claude-opus-4-6", "Claude Opus 4.6", 200_000, 128_000, ("opus",)),
    ModelInfo("claude-opus-4-5", "Claude Opus 4.5", 200_000, 64_000),
    ModelInfo("claude-opus-4-1", "Claude Opus 4.1", 200_000, 32_000),
    ModelInfo("claude-sonnet-4-5", "Claude Sonnet 4.5", 200_000, 64_000, ("sonnet",)),
    ModelInfo("claude-sonnet-4-0", "Claude Sonnet 4", 200_000, 64_000),
    ModelInfo("claude-haiku-4-5", "Claude Haiku 4.5", 200_000, 64_000, ("haiku",)),
)


class ModelCatalog:
    def __init__(self, models: tuple[ModelInfo, ...]) -> None:
        self.models = models
        self._by_name: dict[str, ModelInfo] = {}
        for model in models:
            for name in (model.id, *model.aliases):
                self._by_name[name] = model

    @classmethod
    def from_setting(cls, raw: str | None) -> ModelCatalog:
        """``CC_API_MODELS``: a comma-separated list of ids, or a JSON list of ids or
        ``ModelInfo``-shaped objects. Listed models are added to (or replace) the built-ins."""
        extra = _parse_models_setting(raw) if raw else ()
        by_id = {m.id: m for m in BUILTIN_MODELS}
        by_id.update({m.id: m for m in extra})
        return cls(tuple(by_id.values()))

    def resolve(self, name: str) -> str | None:
        """The canonical id for ``name``, or None when it is not a model we know.

        ``anthropic/claude-opus-4.6`` → ``claude-opus-4-6``; ``sonnet`` → ``claude-sonnet-4-5``;
        dated snapshots (``claude-sonnet-4-5-20250929``) pass through unchanged.
        """
        key = name.strip().lower().removeprefix("anthropic/").replace(".", "-")
        if key in self._by_name:
            return self._by_name[key].id
        dated = _DATED.match(key)
        if dated and dated.group("base") in self._by_name:
            return key
        return None


def _parse_models_setting(raw: str) -> tuple[ModelInfo, ...]:
    raw = raw.strip()
    if raw.startswith("["):
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"CC_API_MODELS is not valid JSON: {exc}") from None
    else:
        items = [part.strip() for part in raw.split(",") if part.strip()]
    models = []
    for item in items:
        if isinstance(item, str):
            models.append(ModelInfo(item, item))
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            try:
                models.append(
                    ModelInfo(
                        **{
                            **item,
                            "display_name": item.get("display_name", item["id"]),
                            "aliases": tuple(item.get("aliases", ())),
                        }
                    )
                )
            except TypeError as exc:
                raise ConfigError(f"CC_API_MODELS entry {item!r}: {exc}") from None
        else:
            raise ConfigError(f"CC_API_MODELS entry {item!r} needs an 'id' (a string)")
    return tuple(models)
