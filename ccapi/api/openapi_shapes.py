"""OpenAPI 3.0 schemas from the declared shapes: the request bodies (pydantic models,
``ccapi.sessions.shape``) and the replies (TypedDicts, ``ccapi.api.replies``).

Pydantic writes JSON Schema 2020-12; the document is OpenAPI 3.0.3, so this pass turns ``null``
members into ``nullable``, numeric ``exclusiveMinimum`` into the boolean form, unions into
``oneOf`` (their members are distinct JSON types), and drops what 3.0 lacks or the page would
only repeat (titles, defaults, class docstrings). Shapes named in the document stay
``$ref``s; the ones only nested inside them are written in place.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from typing_extensions import TypedDict

_PREFIX = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    """A use of the schema named ``name``."""
    return {"$ref": _PREFIX + name}


def schemas(shapes: tuple[type, ...]) -> dict[str, Any]:
    """Each shape's schema (a pydantic model or a TypedDict), by class name, ready for
    ``components.schemas``."""
    named = {shape.__name__ for shape in shapes}
    # one adapter over all of them: what they share is built once (faster at start-up than one each)
    together = TypedDict("Shapes", {shape.__name__: shape for shape in shapes})  # type: ignore[misc]
    definitions = TypeAdapter(together).json_schema(ref_template=_PREFIX + "{model}")["$defs"]
    return {s.__name__: _convert(_definition(definitions[s.__name__]), definitions, named) for s in shapes}


def _definition(schema: dict[str, Any]) -> dict[str, Any]:
    """A class's schema without its docstring (the description of a use is the field's)."""
    return {k: v for k, v in schema.items() if k != "description"}


def _convert(node: Any, definitions: dict[str, Any], named: set[str]) -> Any:
    if isinstance(node, list):
        return [_convert(item, definitions, named) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node and node["$ref"].removeprefix(_PREFIX) not in named:
        inline = _definition(definitions[node["$ref"].removeprefix(_PREFIX)])
        node = {**inline, **{k: v for k, v in node.items() if k != "$ref"}}
    node = {k: v for k, v in node.items() if k not in ("title", "default")}
    if "properties" in node:  # property names are not schema keywords
        node["properties"] = {k: _convert(v, definitions, named) for k, v in node["properties"].items()}
    converted = {
        k: _convert(v, definitions, named) if k in ("items", "additionalProperties", "anyOf") else v
        for k, v in node.items()
        if k != "properties"
    }
    if "properties" in node:
        converted["properties"] = node["properties"]
    if "anyOf" in converted:
        members = converted.pop("anyOf")
        kept = [m for m in members if m != {"type": "null"}]
        if len(kept) < len(members):
            converted["nullable"] = True
        if len(kept) == 1:
            converted = {**kept[0], **converted}
        else:
            converted["oneOf"] = kept
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if not isinstance(converted.get(bound, True), bool):
            converted[limit], converted[bound] = converted[bound], True
    if "const" in converted:
        converted["enum"] = [converted.pop("const")]
    return converted
