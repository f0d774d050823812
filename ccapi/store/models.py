"""peewee models. Bound at run time through ``database_proxy`` so one set of models
serves SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

import orjson
import peewee

database_proxy = peewee.DatabaseProxy()


class JSONField(peewee.TextField):
    """JSON stored as text: portable across SQLite and PostgreSQL, encoded with orjson."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def python_value(self, value: str | None) -> Any:
        return None if value is None else orjson.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy


class SessionRow(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    created_at = peewee.CharField(index=True)
    updated_at = peewee.CharField()
    model = peewee.CharField()
    system_prompt = peewee.TextField(null=True)
    tools = JSONField(default=list)
    metadata = JSONField(default=dict)
    max_turns = peewee.IntegerField(null=True)
    cwd = peewee.TextField(null=True)
    permission_mode = peewee.CharField(null=True)
    status = peewee.CharField(default="idle")
    sdk_session_id = peewee.CharField(null=True)
    turn_count = peewee.IntegerField(default=0)
    last_seq = peewee.IntegerField(default=0)
    usage = JSONField(default=dict)
    context = JSONField(null=True)
    builtin_tools = JSONField(default="all")
    max_budget_usd = peewee.FloatField(null=True)
    webhook = JSONField(null=True)
    mcp_servers = JSONField(null=True)
    output_schema = JSONField(null=True)

    class Meta:
        table_name = "sessions"


class TurnRow(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    session_id = peewee.CharField(index=True, max_length=64)
    number = peewee.IntegerField()
    status = peewee.CharField()
    input = JSONField()
    created_at = peewee.CharField()
    kind = peewee.CharField(default="input")
    completed_at = peewee.CharField(null=True)
    output = JSONField(default=list)
    tool_calls = JSONField(default=list)
    permission_requests = JSONField(default=list)
    usage = JSONField(default=dict)
    cost_usd = peewee.FloatField(null=True)
    duration_ms = peewee.IntegerField(null=True)
    stop_reason = peewee.CharField(null=True)
    error = JSONField(null=True)
    last_event_seq = peewee.IntegerField(null=True)
    structured_output = JSONField(null=True)

    class Meta:
        table_name = "turns"


class EventRow(BaseModel):
    session_id = peewee.CharField(max_length=64)
    seq = peewee.IntegerField()
    type = peewee.CharField()
    turn_id = peewee.CharField(null=True, max_length=64)
    created_at = peewee.CharField()
    data = JSONField()

    class Meta:
        table_name = "events"
        primary_key = peewee.CompositeKey("session_id", "seq")


class IdempotencyRow(BaseModel):
    """A client's ``Idempotency-Key`` and the turn its first request acted on."""

    session_id = peewee.CharField(max_length=64)
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)
    turn_id = peewee.CharField(max_length=64)
    created_at = peewee.CharField()

    class Meta:
        table_name = "idempotency_keys"
        primary_key = peewee.CompositeKey("session_id", "key")


class TranscriptRow(BaseModel):
    """One line of Claude Code's own transcript, mirrored through the SDK's ``SessionStore``
    so a session resumes from CC API's database even when the CLI's local files are gone."""

    id = peewee.AutoField()
    project_key = peewee.CharField(max_length=255)
    session_id = peewee.CharField(max_length=64)
    subpath = peewee.CharField(max_length=255, default="")
    uuid = peewee.CharField(null=True, max_length=64)
    entry = JSONField()
    mtime = peewee.BigIntegerField()

    class Meta:
        table_name = "transcript_entries"
        indexes = (
            (("session_id", "project_key", "subpath", "id"), False),
            (("project_key", "session_id", "subpath", "uuid"), True),
        )


class LeaseRow(BaseModel):
    """Which gateway host drives a session's engine, until when. With several hosts on one
    database, at most one runs a session's turns at a time."""

    session_id = peewee.CharField(primary_key=True, max_length=64)
    owner = peewee.CharField(max_length=255)
    expires_at = peewee.DoubleField()

    class Meta:
        table_name = "session_leases"


class WebhookRow(BaseModel):
    """The webhook outbox (see ``ccapi.store.outbox``): written with the event it delivers,
    claimed by one host at a time through ``lease_owner``/``lease_until``."""

    id = peewee.CharField(primary_key=True, max_length=128)
    session_id = peewee.CharField(max_length=64)
    seq = peewee.IntegerField()
    turn_id = peewee.CharField(null=True, max_length=64)
    type = peewee.CharField()
    url = peewee.TextField()
    payload = JSONField()
    created_at = peewee.CharField()
    state = peewee.CharField(default="pending")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DoubleField(default=0.0)
    last_attempt_at = peewee.CharField(null=True)
    last_status = peewee.IntegerField(null=True)
    last_error = peewee.TextField(null=True)
    completed_at = peewee.CharField(null=True)
    lease_owner = peewee.CharField(null=True, max_length=255)
    lease_until = peewee.DoubleField(default=0.0)

    class Meta:
        table_name = "webhook_deliveries"
        indexes = (
            (("session_id", "seq"), False),
            (("state", "next_attempt_at"), False),
        )


class CompatHeadRow(BaseModel):
    """The compat affinity index: the conversation a session holds as a compat client sees
    it, so a restarted gateway (or another host) continues it warm."""

    session_id = peewee.CharField(primary_key=True, max_length=64)
    key = peewee.CharField(index=True, max_length=64)
    data = JSONField()
    updated_at = peewee.CharField(index=True)

    class Meta:
        table_name = "compat_heads"


class SchemaVersionRow(BaseModel):
    version = peewee.IntegerField(primary_key=True)
    description = peewee.CharField()
    applied_at = peewee.CharField()

    class Meta:
        table_name = "schema_version"


ALL_MODELS = (SessionRow, TurnRow, EventRow, IdempotencyRow, TranscriptRow, LeaseRow, WebhookRow, CompatHeadRow)
