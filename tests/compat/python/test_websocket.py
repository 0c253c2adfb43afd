"""WebSocket mode through the official SDK's `client.responses.connect()`.

Every test runs with a lenient and a strict client (conftest.py); the
events are parsed by the SDK's own `ResponsesServerEvent` models.
"""

from __future__ import annotations

import openai
import pytest

ECHO = "echo/compat"
FAKE = "fake/compat"

pytest.importorskip("websockets", reason="needs openai[realtime]")


def _turn(connection) -> list:
    events = []
    for event in connection:
        events.append(event)
        if event.type in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events
    raise AssertionError(f"connection ended after {[e.type for e in events]}")


def test_turns_stream_every_event(client: openai.OpenAI) -> None:
    with client.responses.connect() as connection:
        for word in ("one two", "three"):
            connection.response.create(model=FAKE, input=word)
            events = _turn(connection)
            types = [e.type for e in events]
            assert types[:2] == ["response.created", "response.in_progress"]
            assert types[-1] == "response.completed"
            assert "response.output_text.delta" in types
            assert [e.sequence_number for e in events] == list(range(len(events)))
            assert events[-1].response.output_text == f"You said: {word}"


def test_store_false_continuation_on_one_connection(client: openai.OpenAI) -> None:
    with client.responses.connect() as connection:
        connection.response.create(model=ECHO, input="remember alpha", store=False)
        first = _turn(connection)[-1].response
        connection.response.create(
            model=FAKE, input="FIELDS", store=False, previous_response_id=first.id
        )
        done = _turn(connection)[-1]
        assert done.type == "response.completed"
        assert done.response.previous_response_id == first.id


def test_errors_are_events_and_keep_the_connection(client: openai.OpenAI) -> None:
    with client.responses.connect() as connection:
        connection.response.create(
            model=ECHO,
            input="hi",
            tools=[{"type": "function", "name": "f", "parameters": {}, "strict": True}],
        )
        error = _turn(connection)[-1]
        assert error.type == "error"
        assert error.error.param == "tools"
        connection.response.create(model=ECHO, input="bye", store=False, previous_response_id="resp_missing")
        error = _turn(connection)[-1]
        assert error.type == "error"
        assert error.error.code == "previous_response_not_found"
        connection.response.create(model=ECHO, input="still open")
        assert _turn(connection)[-1].response.output_text == "still open"


def test_bad_key_fails_the_handshake(make_client) -> None:
    client = make_client(api_key="sk-mn-wrong")
    with pytest.raises(Exception) as info:
        with client.responses.connect() as connection:
            connection.response.create(model=ECHO, input="hi")
            _turn(connection)
    assert "401" in str(info.value)
