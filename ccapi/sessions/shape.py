"""Request shapes, declared once: a body is a pydantic model (``Shape``), and both its validation
and its OpenAPI schema (``ccapi.api.openapi_shapes``) come from that class.

Pydantic because it is already loaded (the Agent SDK's MCP layer brings it), its errors carry a
structured location, and its JSON Schema needs only a small pass to read as OpenAPI 3.0. A field
says what a wrong value gets (``Says``), so the 400 names the field in the words the API has
always used, not pydantic's. Checks a type cannot state (a model the catalog knows, a directory
that exists, one of stream and background) stay in ``ccapi.sessions.params``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from ccapi.errors import InvalidRequest

S = TypeVar("S", bound="Shape")


class Shape(BaseModel):
    """A JSON object the API accepts: no unknown fields, no coercion (``"1"`` is not 1, ``true``
    is not 1), frozen once checked."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def given(self, name: str, default: Any) -> Any:
        """The field's value if the body named it, else ``default`` (for fields whose default is
        the gateway's, and that ``null`` must not silently take)."""
        return getattr(self, name) if name in self.model_fields_set else default


@dataclass(frozen=True)
class Says:
    """What a wrong value of the field is told: ``text`` follows its path (``results[0].is_error
    must be a boolean``), or is the whole message with ``whole``; ``too_long`` is for a list over
    its ``max_length``."""

    text: str
    whole: bool = False
    too_long: str | None = None


def checked(shape: type[S], body: Any) -> S:
    """``body`` (``None`` for an empty one) as ``shape``, or an ``InvalidRequest`` naming the field."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return shape.model_validate(body)
    except ValidationError as exc:
        raise _invalid(shape, exc) from None


def _invalid(shape: type[Shape], exc: ValidationError) -> InvalidRequest:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    for error in errors:  # unknown fields of an object are named before anything inside it
        parent = error["loc"][:-1]
        if error["type"] == "extra_forbidden" and first["loc"][: len(parent)] == parent:
            return _unknown(shape, parent, [e["loc"][-1] for e in errors if e["loc"][:-1] == parent])
    tagged = _walk(shape, first["loc"])[3]
    if tagged is not None:  # a union: report the member that got furthest into the value
        first = max((e for e in errors if e["loc"][:tagged] == first["loc"][:tagged]), key=lambda e: len(e["loc"]))
    path, says, model_at_end, _ = _walk(shape, first["loc"])
    param = path or None
    if model_at_end and first["type"] in ("model_type", "dict_type"):
        return InvalidRequest(f"{path} must be an object", param=param)
    if says is None:
        return InvalidRequest(f"{path}: {first['msg']}", param=param)
    if first["type"] == "too_long" and says.too_long:
        return InvalidRequest(says.too_long, {"got": first.get("ctx", {}).get("actual_length")}, param=param)
    return InvalidRequest(says.text if says.whole else f"{path} {says.text}", param=param)


def _unknown(shape: type[Shape], parent: tuple[Any, ...], names: list[Any]) -> InvalidRequest:
    ordered = sorted(str(name) for name in names)
    listed = ", ".join(ordered)
    if not parent:
        return InvalidRequest(f"unknown field(s): {listed}", {"allowed": sorted(shape.model_fields)}, param=ordered[0])
    where = _walk(shape, parent)[0]
    return InvalidRequest(f"{where} has unknown field(s): {listed}", param=f"{where}.{ordered[0]}")


def _walk(shape: type[Shape], loc: tuple[Any, ...]) -> tuple[str, Says | None, bool, int | None]:
    """The path ``loc`` names (``results[0].content[1].source``); the ``Says`` of the deepest
    field on it; whether it ends on an object of a declared shape; where its first union member
    tag is (``content`` then ``str``), if it has one."""
    path, says, at_model, tagged = "", None, False, None
    model: type[Shape] | None = shape
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path, at_model = f"{path}[{part}]", model is not None
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:  # a union member's tag: the value goes on in that member
            tagged = index if tagged is None else tagged
            continue
        path = f"{path}.{part}" if path else part
        says, model, at_model = _says(field) or says, _item_shape(field), False
    return path, says, at_model, tagged


def _says(field: FieldInfo) -> Says | None:
    return next((m for m in field.metadata if isinstance(m, Says)), None)


def _item_shape(field: FieldInfo) -> type[Shape] | None:
    """The shape a field holds, directly or as list items or an optional value."""
    pending: list[Any] = [field.annotation]
    while pending:
        kind = pending.pop()
        if isinstance(kind, type) and issubclass(kind, Shape):
            return kind
        pending.extend(getattr(kind, "__args__", ()))
    return None
