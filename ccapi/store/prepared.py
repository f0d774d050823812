"""The SQL of the statements every turn runs, written once per shape and reused.

peewee builds a statement's SQL anew on each call, and for the handful each turn runs (take the
lease, read the session, record the turn, append its events, record its end, read the event
log) building the SQL cost more than the database took to run it. These statements' text
depends only on their shape (the table, the columns, the row count, how many values an ``IN``
lists), which is the cache key: peewee writes the text for the first call of each shape and it
is reused after that. Values still go through each field's ``db_value`` (JSON encoding and the
like) and always as parameters, never into the text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import peewee

T = TypeVar("T")

#: Shapes kept at most: a shape can depend on a request (how many event types it filters on).
MAX_SHAPES = 256


class Prepared:
    """Each statement's SQL as peewee writes it for its first call, reused for every later call of
    the same shape with that call's parameters (checked once against peewee's, in its order)."""

    def __init__(self, database: peewee.Database) -> None:
        self._db = database
        self._texts: dict[tuple[Any, ...], str] = {}

    def get(self, model: type[peewee.Model], key: Any) -> dict[str, Any] | None:
        """The row whose primary key is ``key``, as ``{field name: python value}`` (no model
        instance: setting one up costs more than reading the row)."""
        params = [_key(model).db_value(key)]
        text = self._text(("get", model), lambda: model.select().where(_key(model) == key), params)
        row = self._db.execute_sql(text, params).fetchone()
        if row is None:
            return None
        return {
            field.name: field.python_value(value) for field, value in zip(model._meta.sorted_fields, row, strict=True)
        }

    def insert(
        self, model: type[peewee.Model], rows: Sequence[Mapping[str, Any]], ignore_conflicts: bool = False
    ) -> None:
        """``rows`` (all with the same keys) in one statement; with ``ignore_conflicts``, rows
        that would break a unique constraint are skipped (the backend's own INSERT OR IGNORE)."""
        if not rows:
            return
        names = frozenset(rows[0])
        fields = [field for field in model._meta.sorted_fields if field.name in names]  # peewee's column order
        params = [field.db_value(row[field.name]) for row in rows for field in fields]

        def query() -> peewee.Query:
            insert = model.insert_many(rows)
            return insert.on_conflict_ignore() if ignore_conflicts else insert

        self.run(("insert", model, names, len(rows), ignore_conflicts), query, params)

    def update(
        self, model: type[peewee.Model], key: Any, values: Mapping[str, Any], increments: Iterable[str] = ()
    ) -> None:
        """Set ``values`` on the row whose primary key is ``key``; each column in ``increments`` goes up by one."""
        counted = tuple(increments)
        # peewee writes the changed columns in the order the model lists them
        changed = sorted((model._meta.fields[name] for name in (*values, *counted)), key=lambda f: f._sort_key)
        params = [1 if field.name in counted else field.db_value(values[field.name]) for field in changed]
        params.append(_key(model).db_value(key))

        def query() -> peewee.Query:
            changes = {**values, **{name: model._meta.fields[name] + 1 for name in counted}}
            return model.update(changes).where(_key(model) == key)

        self.run(("update", model, tuple(values), counted), query, params)

    def rows(self, key: Any, query: Callable[[], peewee.Query], params: list[Any]) -> list[tuple[Any, ...]]:
        """The raw rows of the SELECT ``query`` builds (values as the database returns them)."""
        return list(self._db.execute_sql(self._text(key, query, params), params).fetchall())

    def run(self, key: Any, query: Callable[[], peewee.Query], params: list[Any]) -> int:
        """Run the statement ``query`` builds, with ``params`` in the order peewee writes them:
        built (and that order checked) on the first call only. Returns the rows it changed."""
        return self._db.rows_affected(self._db.execute_sql(self._text(key, query, params), params))

    def _text(self, key: Any, query: Callable[[], peewee.Query], params: list[Any]) -> str:
        text = self._texts.get(key)
        if text is None:
            text, expected = query().sql()
            if expected != params:
                raise ValueError(f"parameters {params!r} are not in the order of {text!r}: {expected!r}")
            if len(self._texts) < MAX_SHAPES:
                self._texts[key] = text
        return text


def chunks(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``rows`` in slices of ``size`` (``peewee.chunked`` pads and trims tuples, slower than the insert it feeds)."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def columns(record: Any) -> dict[str, Any]:
    """A dataclass record's fields as a row's values. Shallow, unlike ``dataclasses.asdict``,
    which deep-copies every nested dict and list: an event's data is nothing else, and each
    field's ``db_value`` encodes it anyway."""
    names = _FIELD_NAMES.get(type(record))
    if names is None:
        names = _FIELD_NAMES[type(record)] = tuple(field.name for field in dataclasses.fields(record))
    return {name: getattr(record, name) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _key(model: type[peewee.Model]) -> peewee.Field:
    """The model's single-column primary key (the statements here address rows by it)."""
    key = model._meta.primary_key
    assert isinstance(key, peewee.Field)
    return key
