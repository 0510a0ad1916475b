"""The JSON log format: one object a line, ids lifted out of the message."""

from __future__ import annotations

import io
import json
import logging

from mediaplane.observability.logs import JsonFormatter, ids_in, redact, setup_logging


def test_ids_are_lifted_from_key_value_tokens() -> None:
    msg = "peer joined room=demo peer=ab12 identity=alice"
    assert ids_in(msg) == {"room": "demo", "peer": "ab12", "identity": "alice"}
    assert ids_in("job=7f01 kind=record state=running first audio data") == {
        "job": "7f01",
        "kind": "record",
        "state": "running",
    }
    assert ids_in("no ids here, roomy=x") == {}


def test_json_lines_carry_service_level_ids_extra_and_exceptions() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("control-plane"))
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("producer created room=%s peer=%s", "r1", "p1", extra={"bitrate": 64000})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed job=%s", "j9")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["service"] == "control-plane" and first["level"] == "info"
    assert first["msg"] == "producer created room=r1 peer=p1"
    assert (first["room"], first["peer"], first["bitrate"]) == ("r1", "p1", 64000)
    assert first["ts"].endswith("Z") and first["logger"] == "test.json"
    assert second["level"] == "error" and second["job"] == "j9"
    assert "ValueError: boom" in second["exc"]


def test_setup_logging_replaces_root_handlers() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("media-manager", "json", "WARNING")
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"


def test_credentials_are_redacted_wherever_they_stand() -> None:
    cases = {
        f'127.0.0.1:5 - "WebSocket /ws/rooms/demo?access_token={JWT}" [accepted]':
            '127.0.0.1:5 - "WebSocket /ws/rooms/demo?access_token=[redacted]" [accepted]',
        "GET /egress/e/hls/playlist.m3u8?x=1&token=abc.def&y=2":
            "GET /egress/e/hls/playlist.m3u8?x=1&token=[redacted]&y=2",
        "Authorization: Bearer abc.def-ghi": "Authorization: Bearer [redacted]",
        f"a bare {JWT} in text": "a bare [redacted] in text",
        "redis://:s3cret@127.0.0.1:6379/0": "redis://:[redacted]@127.0.0.1:6379/0",
        "rtmp://h/live?stream_key=k3y": "rtmp://h/live?stream_key=[redacted]",
        "room=demo peer=ab12 nothing secret": "room=demo peer=ab12 nothing secret",
    }  # fmt: skip
    for raw, clean in cases.items():
        assert redact(raw) == clean


def test_a_json_line_with_a_quote_right_after_a_token_stays_json() -> None:
    """uvicorn's `"WebSocket /ws/rooms/r?access_token=..." [accepted]`: the quote after
    the token is escaped in JSON; redacting must not take its backslash."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("control"))
    logger = logging.getLogger("test.json.quote")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        path = f"/ws/rooms/r?access_token={JWT}"
        extra = {"url": f"ws://h/?token={JWT}", "items": [f"secret={JWT}"]}
        logger.warning('%s - "WebSocket %s" [accepted]', "10.0.0.1:5", path, extra=extra)
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["msg"] == '10.0.0.1:5 - "WebSocket /ws/rooms/r?access_token=[redacted]" [accepted]'
    assert line["url"] == "ws://h/?token=[redacted]" and line["items"] == ["secret=[redacted]"]
    assert JWT not in out.getvalue()


def test_both_formats_redact_messages_args_and_tracebacks() -> None:
    for fmt in ("text", "json"):
        out = io.StringIO()
        setup_logging("control", fmt)  # type: ignore[arg-type]
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(out)
        log = logging.getLogger("test.redact")
        log.info('%s - "GET %s HTTP/1.1" 200', "127.0.0.1:1", f"/x?access_token={JWT}")
        try:
            raise RuntimeError(f"failed to open ws://h/ws?access_token={JWT}")
        except RuntimeError:
            log.exception("with a traceback")
        text = out.getvalue()
        assert JWT not in text, fmt
        assert "GET /x?access_token=[redacted] HTTP/1.1" in text, fmt
        assert "RuntimeError: failed to open ws://h/ws?access_token=[redacted]" in text, fmt
    setup_logging("test")


def test_json_lines_stay_json_when_a_token_sits_before_an_escaped_quote() -> None:
    # uvicorn's WebSocket line: the query's token ends right before a quote.
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0,
        '%s - "WebSocket /ws/rooms/r1?access_token=%s" [accepted]',
        ("10.0.0.1:5870", "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"), None,
    )  # fmt: skip
    line = JsonFormatter("control").format(record)
    parsed = json.loads(line)
    url = "/ws/rooms/r1?access_token=[redacted]"
    assert parsed["msg"] == f'10.0.0.1:5870 - "WebSocket {url}" [accepted]'
    assert "eyJ" not in line
