"""The log file: one JSON line per request and per turn, and no secret in it, ever."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import httpx
import pytest

from ccapi.api.middleware import SERVER_PROBES
from ccapi.observability.logs import REDACTED, Redactor, RotatingLogFile, secret_values
from ccapi.testing import MockModel
from tests.daemon import Cli

API_KEY = "cc-test-key-5f1e0c9b7a"
WRONG_KEY = "wrong-key-3d9c1a7e22"


@pytest.mark.slow
def test_one_json_line_per_request_and_turn_and_no_secrets(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    cli.paths.home.mkdir(parents=True)
    cli.paths.env_file.write_text(f'# from the env file, not the environment\nCC_API_KEY="{API_KEY}"\n')
    assert cli("start").returncode == 0
    sent: dict[str, int] = {}
    try:
        with httpx.Client(base_url=cli.url, timeout=60) as client:

            def call(method: str, path: str, request_id: str, headers: dict[str, str], **kwargs: object) -> dict:
                response = client.request(method, path, headers={**headers, "x-request-id": request_id}, **kwargs)
                sent[request_id] = response.status_code
                return response.json()

            call("GET", "/api/sessions", "no-key", {})
            call("GET", "/api/sessions", "wrong-bearer", {"Authorization": f"Bearer {WRONG_KEY}"})
            call("GET", "/api/sessions", "wrong-x-api-key", {"x-api-key": WRONG_KEY})
            session = call("POST", "/api/sessions", "create", {"Authorization": f"Bearer {API_KEY}"}, json={})
            reply = call(
                "POST",
                f"/api/sessions/{session['id']}/turns",
                "turn",
                {"x-api-key": API_KEY},
                json={"input": f"my key is {API_KEY}"},
            )
            call("GET", "/api/sessions/sess_missing", "missing", {"x-api-key": API_KEY})
            for probe in SERVER_PROBES:  # what Hermes asks on every call, to see which local server this is
                call("GET", probe, f"probe {probe}", {"x-api-key": API_KEY})
        status = json.loads(cli("status", "--json").stdout)  # the CLI reads the key from the env file too
        assert status["persisted_sessions"] == 1 and status["problem"] is None
    finally:
        assert cli("stop").returncode == 0
    probes = {f"probe {probe}": 404 for probe in SERVER_PROBES}
    assert sent == {
        "no-key": 401,
        "wrong-bearer": 401,
        "wrong-x-api-key": 401,
        "create": 201,
        "turn": 200,
        "missing": 404,
        **probes,
    }
    for name in probes:  # answered, but not logged: they are not the user's requests
        del sent[name]

    text = cli.paths.log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    requests = [line for line in lines if line["event"] == "request" and line["request_id"] in sent]
    assert {line["request_id"]: line["status"] for line in requests} == sent
    assert len(requests) == len(sent)
    assert not [line for line in lines if str(line.get("request_id")).startswith("probe ")]
    assert all(line["duration_ms"] is not None and line["method"] and line["path"] for line in requests)
    turns = [line for line in lines if line["event"] == "turn"]
    assert [(t["session_id"], t["turn_id"], t["status"]) for t in turns] == [
        (session["id"], reply["turn_id"], "completed")
    ]
    assert isinstance(turns[0]["duration_ms"], int)
    noise = ("Sanic Extensions:", "  > ", "Using bundled Claude Code CLI")  # the same at every start: not told
    assert not [line["event"] for line in lines if line["event"].startswith(noise)]
    for secret in (API_KEY, WRONG_KEY, "test-dummy-key", "Bearer"):
        assert secret not in text


def test_redactor_removes_secret_values_and_keys() -> None:
    redact = Redactor(
        secret_values(
            {"CC_API_KEY": "s3cret-value", "ANTHROPIC_API_KEY": "sk-ant-123456", "CLAUDE_CODE_OAUTH_TOKEN": "abc"}
        )
    )
    event = redact(
        None,
        "info",
        {
            "event": "oops s3cret-value",
            "headers": {"Authorization": "Bearer x", "accept": "*/*"},
            "argv": ["--key", "sk-ant-123456"],
            "error": ValueError("bad key s3cret-value"),
            "count": 3,
            "api_key": None,
        },
    )
    assert event == {
        "event": f"oops {REDACTED}",
        "headers": {"Authorization": REDACTED, "accept": "*/*"},
        "argv": ["--key", REDACTED],
        "error": f"bad key {REDACTED}",
        "count": 3,
        "api_key": None,
    }
    assert redact(None, "info", {"event": "abc stays: too short to be a secret"})["event"].startswith("abc")


def test_a_rotation_takes_the_streams_writing_into_the_log_along(tmp_path: Path) -> None:
    """A background gateway's stdout and stderr are its log file: after a rotation they write into the new
    ``cc-api.log`` (a crash's traceback reaches ``cc-api logs``), not into ``cc-api.log.1``."""
    log_file = tmp_path / "cc-api.log"
    handler = RotatingLogFile(log_file, maxBytes=64, backupCount=2, encoding="utf-8")
    stream = os.open(log_file, os.O_WRONLY | os.O_APPEND)  # as `cc-api start` hands the file to the gateway
    elsewhere = os.open(tmp_path / "other.txt", os.O_WRONLY | os.O_CREAT)
    handler.followers = (stream, elsewhere)
    try:
        for n in range(5):
            handler.emit(logging.makeLogRecord({"msg": f"line {n} " + "x" * 40}))
        assert (tmp_path / "cc-api.log.1").exists()
        os.write(stream, b"Traceback: the crash\n")
        os.write(elsewhere, b"untouched\n")
    finally:
        handler.close()
        os.close(stream)
        os.close(elsewhere)
    assert "Traceback: the crash" in log_file.read_text()
    assert "Traceback" not in (tmp_path / "cc-api.log.1").read_text()
    assert (tmp_path / "other.txt").read_text() == "untouched\n"
