"""Schema migrations with a recorded version, one path for SQLite and PostgreSQL.

Each migration runs once, in order, inside a transaction, and is recorded in
``schema_version``; on PostgreSQL an advisory lock keeps two hosts starting at the same
moment from migrating twice. Add a migration by appending to ``MIGRATIONS`` (use
``playhouse.migrate`` for column changes); never edit one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import peewee
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator
from playhouse.migrate import migrate as apply_operations

from ccapi.ids import utcnow
from ccapi.store.models import ALL_MODELS, CompatHeadRow, JSONField, SchemaVersionRow, WebhookRow

_MIGRATION_LOCK = 7_311_742  # any constant shared by every CC API host


def _initial_schema(db: peewee.Database) -> None:
    db.create_tables(ALL_MODELS, safe=True)


def _tool_policy(db: peewee.Database) -> None:
    """Sessions gain a built-in tool policy (``"all"`` for every existing one: that is how they
    ran) and a spending cap; turns gain their pending permission requests."""
    migrator: SchemaMigrator = (
        PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)
    )
    sessions = {column.name for column in db.get_columns("sessions")}
    turns = {column.name for column in db.get_columns("turns")}
    operations = []
    if "builtin_tools" not in sessions:
        operations.append(migrator.add_column("sessions", "builtin_tools", JSONField(default="all")))
    if "max_budget_usd" not in sessions:
        operations.append(migrator.add_column("sessions", "max_budget_usd", peewee.FloatField(null=True)))
    if "permission_requests" not in turns:
        operations.append(migrator.add_column("turns", "permission_requests", JSONField(default=list)))
    apply_operations(*operations)


def _webhooks(db: peewee.Database) -> None:
    """Sessions gain a webhook subscription; deliveries get their outbox table."""
    if "webhook" not in {column.name for column in db.get_columns("sessions")}:
        migrator: SchemaMigrator = (
            PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)
        )
        apply_operations(migrator.add_column("sessions", "webhook", JSONField(null=True)))
    db.create_tables([WebhookRow], safe=True)


def _compat_heads(db: peewee.Database) -> None:
    db.create_tables([CompatHeadRow], safe=True)


def _mcp_servers(db: peewee.Database) -> None:
    """Sessions gain their own MCP servers."""
    if "mcp_servers" not in {column.name for column in db.get_columns("sessions")}:
        migrator: SchemaMigrator = (
            PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)
        )
        apply_operations(migrator.add_column("sessions", "mcp_servers", JSONField(null=True)))


def _output_schema(db: peewee.Database) -> None:
    """Sessions gain the JSON schema their answers must match (structured output)."""
    if "output_schema" not in {column.name for column in db.get_columns("sessions")}:
        migrator: SchemaMigrator = (
            PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)
        )
        apply_operations(migrator.add_column("sessions", "output_schema", JSONField(null=True)))


def _structured_output(db: peewee.Database) -> None:
    """Turns gain the structured output their answer gave (a session's ``output_schema``)."""
    if "structured_output" not in {column.name for column in db.get_columns("turns")}:
        migrator: SchemaMigrator = (
            PostgresqlMigrator(db) if isinstance(db, peewee.PostgresqlDatabase) else SqliteMigrator(db)
        )
        apply_operations(migrator.add_column("turns", "structured_output", JSONField(null=True)))


MIGRATIONS: tuple[tuple[int, str, Callable[[peewee.Database], None]], ...] = (
    (1, "sessions, turns, events, idempotency keys, transcripts, leases", _initial_schema),
    (2, "built-in tool policy, spending cap, pending permission requests", _tool_policy),
    (3, "webhook subscriptions and the delivery outbox", _webhooks),
    (4, "compat affinity heads", _compat_heads),
    (5, "per-session MCP servers", _mcp_servers),
    (6, "structured output schema", _output_schema),
    (7, "a turn's structured output", _structured_output),
)


def migrate(db: peewee.Database) -> int:
    """Bring the schema up to date; returns the version now in force."""
    with db.atomic():
        if isinstance(db, peewee.PostgresqlDatabase):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        db.create_tables([SchemaVersionRow], safe=True)
        current = SchemaVersionRow.select(peewee.fn.MAX(SchemaVersionRow.version)).scalar() or 0
        for version, description, apply in MIGRATIONS:
            if version > current:
                apply(db)
                SchemaVersionRow.create(version=version, description=description, applied_at=utcnow())
                current = version
    return current
