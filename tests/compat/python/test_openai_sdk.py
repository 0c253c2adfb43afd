"""The official `openai` Python SDK against the Maniac gateway.

Every test runs with a lenient and with a strict (`_strict_response_validation`)
client, see conftest.py. Models: `echo/...` answers with the text of the last
user message (usage counts words); `fake/...` is the fake upstream, which
answers `You said: <last user text>` word by word and is scripted by markers
(FAULT:..., SLOW:<ms>, WORDS:<n>, JSON:).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
import uuid
from typing import List

import openai
import pydantic
import pytest
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)

ECHO = "echo/compat"
FAKE = "fake/compat"

TEXT_EVENT_ORDER_HEAD = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TEXT_EVENT_ORDER_TAIL = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def words(text: str) -> int:
    return len(text.split())


def assert_text_stream_shape(events: List[object], first_seq: int = 0) -> str:
    """Exact canonical order for one text message; returns the streamed text."""
    types = [e.type for e in events]
    n_delta = types.count("response.output_text.delta")
    assert n_delta >= 1, types
    assert types == TEXT_EVENT_ORDER_HEAD + ["response.output_text.delta"] * n_delta + TEXT_EVENT_ORDER_TAIL, types
    seqs = [e.sequence_number for e in events]
    assert seqs == list(range(first_seq, first_seq + len(events))), seqs
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    text = "".join(e.delta for e in deltas)
    created, in_progress, item_added, part_added = events[:4]
    text_done, part_done, item_done, completed = events[-4:]
    assert isinstance(created, ResponseCreatedEvent)
    assert isinstance(in_progress, ResponseInProgressEvent)
    assert isinstance(item_added, ResponseOutputItemAddedEvent)
    assert isinstance(part_added, ResponseContentPartAddedEvent)
    assert all(isinstance(e, ResponseTextDeltaEvent) for e in deltas)
    assert isinstance(text_done, ResponseTextDoneEvent)
    assert isinstance(part_done, ResponseContentPartDoneEvent)
    assert isinstance(item_done, ResponseOutputItemDoneEvent)
    assert isinstance(completed, ResponseCompletedEvent)

    rid = created.response.id
    assert rid.startswith("resp_")
    assert created.response.status in ("in_progress", "queued")
    assert created.response.output == []
    assert in_progress.response.id == rid
    assert in_progress.response.status == "in_progress"
    item_id = item_added.item.id
    assert item_added.output_index == 0
    assert item_added.item.type == "message" and item_added.item.role == "assistant"
    assert item_added.item.content == []
    assert part_added.item_id == item_id and part_added.content_index == 0
    assert part_added.part.type == "output_text" and part_added.part.text == ""
    for d in deltas:
        assert (d.item_id, d.output_index, d.content_index) == (item_id, 0, 0)
    assert text_done.text == text and text_done.item_id == item_id
    assert part_done.part.text == text
    assert item_done.item.id == item_id and item_done.item.status == "completed"
    assert completed.response.id == rid
    assert completed.response.status == "completed"
    assert completed.response.output_text == text
    assert completed.response.usage is not None
    return text


def wait_status(client: openai.OpenAI, rid: str, statuses, timeout: float = 10.0) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        r = client.responses.retrieve(rid)
        if r.status in statuses:
            return r
        assert time.monotonic() < deadline, f"{rid} still {r.status}, wanted {statuses}"
        time.sleep(0.05)


# ---------------------------------------------------------------- create


def test_create_string_input_echo(client):
    r = client.responses.create(model=ECHO, input="Hello compat gateway")
    assert isinstance(r, Response)
    assert r.id.startswith("resp_")
    assert r.object == "response"
    assert r.status == "completed"
    assert r.model == ECHO
    assert r.output_text == "Hello compat gateway"
    assert r.error is None
    assert r.usage.input_tokens == 3
    assert r.usage.output_tokens == 3
    assert r.usage.total_tokens == 6
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.usage.output_tokens_details.reasoning_tokens == 0
    msg = r.output[0]
    assert msg.type == "message" and msg.role == "assistant" and msg.status == "completed"
    assert msg.id
    assert msg.content[0].type == "output_text" and msg.content[0].annotations == []


def test_create_string_input_fake(client):
    r = client.responses.create(model=FAKE, input="ping pong", temperature=0.5, max_output_tokens=64, metadata={"k": "v"})
    assert r.status == "completed"
    assert r.output_text == "You said: ping pong"
    assert r.temperature == 0.5
    assert r.max_output_tokens == 64
    assert r.metadata == {"k": "v"}
    assert r.usage.output_tokens == 4


def test_create_typed_input_items_echo(client):
    r = client.responses.create(
        model=ECHO,
        instructions="Answer tersely.",
        input=[
            {"role": "developer", "content": "You are a test."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier question"}]},
            {"type": "message", "role": "assistant", "content": "earlier answer"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "typed items work"}]},
        ],
    )
    assert r.output_text == "typed items work"
    assert r.instructions == "Answer tersely."


def test_create_typed_input_items_fake(client):
    r = client.responses.create(
        model=FAKE,
        input=[
            {"role": "user", "content": "first question"},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_client_supplied",
                "status": "completed",
                "content": [{"type": "output_text", "text": "an answer", "annotations": []}],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second question"}]},
        ],
    )
    assert r.output_text == "You said: second question"
    # the fake upstream counts the words of every message it was sent
    assert r.usage.input_tokens == words("first question an answer second question")


# ---------------------------------------------------------------- streaming


def test_create_stream_event_order(client):
    with client.responses.create(model=FAKE, input="alpha beta gamma", stream=True) as stream:
        events = list(stream)
    text = assert_text_stream_shape(events)
    assert text == "You said: alpha beta gamma"


def test_create_stream_echo_event_order(client):
    events = list(client.responses.create(model=ECHO, input="streamed echo words", stream=True))
    assert assert_text_stream_shape(events) == "streamed echo words"


def _obfuscation(event) -> object:
    extra = getattr(event, "model_extra", None) or {}
    return extra.get("obfuscation")


def test_stream_obfuscation_option(client):
    on = [e for e in client.responses.create(model=ECHO, input="pad me please", stream=True)]
    deltas = [e for e in on if e.type == "response.output_text.delta"]
    assert all(isinstance(_obfuscation(e), str) for e in deltas)
    off = list(
        client.responses.create(
            model=ECHO, input="no padding", stream=True, stream_options={"include_obfuscation": False}
        )
    )
    assert_text_stream_shape(off)
    assert all(_obfuscation(e) is None for e in off if e.type == "response.output_text.delta")


def test_retrieve_stream_obfuscation_query(client):
    r = client.responses.create(model=FAKE, input="SLOW:5 WORDS:4", background=True)
    default = list(client.responses.retrieve(r.id, stream=True))
    assert default[-1].type == "response.completed"
    assert all(isinstance(_obfuscation(e), str) for e in default if e.type == "response.output_text.delta")
    events = list(client.responses.retrieve(r.id, stream=True, include_obfuscation=False))
    assert [e.sequence_number for e in events] == [e.sequence_number for e in default]
    assert all(_obfuscation(e) is None for e in events if e.type == "response.output_text.delta")


def test_stream_helper_final_response(client):
    deltas = []
    with client.responses.stream(model=FAKE, input="helper stream works") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
                assert event.snapshot == "".join(deltas)
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "You said: helper stream works"
    assert "".join(deltas) == final.output_text


def test_stream_helper_text_done_event(client):
    with client.responses.stream(model=ECHO, input="done event") as stream:
        done = [e for e in stream if e.type == "response.output_text.done"]
        final = stream.get_final_response()
    assert [e.text for e in done] == ["done event"]
    assert final.output_text == "done event"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_parse_text_format_pydantic(client):
    r = client.responses.parse(model=FAKE, input="JSON: describe a person", text_format=Person)
    assert r.status == "completed"
    assert r.output_text == '{"name":"Ada","age":36}'
    assert r.output_parsed == Person(name="Ada", age=36)
    # the json_schema format is echoed back (validated as such by the strict client)
    assert r.text.format.type == "json_schema"
    assert r.text.format.name == "Person"


def test_stream_text_format_pydantic(client):
    with client.responses.stream(model=FAKE, input="JSON: again", text_format=Person) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_parsed == Person(name="Ada", age=36)


def test_refusal(client):
    r = client.responses.create(model=FAKE, input="REFUSE please")
    assert r.status == "completed"
    part = r.output[0].content[0]
    assert part.type == "refusal"
    assert part.refusal == "I can't help with that."
    assert r.output_text == ""


def test_refusal_stream_event_order(client):
    events = list(client.responses.create(model=FAKE, input="REFUSE please", stream=True))
    types = [e.type for e in events]
    n = types.count("response.refusal.delta")
    assert n >= 1
    assert types == (
        TEXT_EVENT_ORDER_HEAD
        + ["response.refusal.delta"] * n
        + ["response.refusal.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    ), types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[3].part.type == "refusal" and events[3].part.refusal == ""
    refusal = "".join(e.delta for e in events if e.type == "response.refusal.delta")
    assert refusal == "I can't help with that."
    assert events[-4].refusal == refusal
    assert events[-1].response.output[0].content[0].refusal == refusal


def test_incomplete_content_filter(client):
    r = client.responses.create(model=FAKE, input="FAULT:filter hello")
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "content_filter"
    events = list(client.responses.create(model=FAKE, input="FAULT:filter hello", stream=True))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details.reason == "content_filter"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_incomplete_max_output_tokens(client):
    r = client.responses.create(model=FAKE, input="WORDS:40", max_output_tokens=16)
    assert r.status == "incomplete"
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens <= 16
    assert r.output_text == " ".join(f"w{i}" for i in range(16))
    with client.responses.stream(model=FAKE, input="WORDS:40", max_output_tokens=16) as stream:
        last = [e.type for e in stream][-1]
        with pytest.raises(RuntimeError):  # the helper wants response.completed
            stream.get_final_response()
    assert last == "response.incomplete"


def test_async_client_stream(mode, base_url, api_key):
    async def main():
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, _strict_response_validation=mode == "strict"
        ) as ac:
            events = [e async for e in await ac.responses.create(model=FAKE, input="async works", stream=True)]
            async with ac.responses.stream(model=ECHO, input="async helper") as stream:
                async for _ in stream:
                    pass
                final = await stream.get_final_response()
            return events, final

    events, final = asyncio.run(main())
    assert assert_text_stream_shape(events) == "You said: async works"
    assert final.output_text == "async helper"


def test_unicode_round_trip(client):
    text = "héllo wörld ✓ 日本語 🚀 done"
    r = client.responses.create(model=ECHO, input=text)
    assert r.output_text == text
    events = list(client.responses.create(model=FAKE, input=text, stream=True))
    assert assert_text_stream_shape(events) == f"You said: {text}"


def test_long_stream(client):
    events = list(client.responses.create(model=FAKE, input="WORDS:1500", stream=True))
    text = assert_text_stream_shape(events)
    assert text == " ".join(f"w{i}" for i in range(1500))
    assert events[-1].response.usage.output_tokens == 1500


def test_concurrent_requests(client):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> str:
        if i % 2:
            events = list(client.responses.create(model=FAKE, input=f"parallel {i}", stream=True))
            return events[-1].response.output_text
        return client.responses.create(model=ECHO, input=f"parallel {i}").output_text

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, range(16)))
    assert got == [f"You said: parallel {i}" if i % 2 else f"parallel {i}" for i in range(16)]


# ---------------------------------------------------------------- store / chaining


def test_previous_response_id_chain(client):
    r1 = client.responses.create(model=FAKE, input="first turn", instructions="be very brief")
    assert r1.to_dict().get("store") is True  # sent by the API, not declared by the SDK model
    assert r1.output_text == "You said: first turn"
    assert r1.usage.input_tokens == words("be very brief first turn")

    r2 = client.responses.create(model=FAKE, input="second turn", previous_response_id=r1.id)
    assert r2.previous_response_id == r1.id
    assert r2.instructions is None
    assert r2.output_text == "You said: second turn"
    # the upstream saw the stored chain (input + output of r1) then the new
    # input, without r1's instructions
    assert r2.usage.input_tokens == words("first turn") + words("You said: first turn") + words("second turn")

    r3 = client.responses.create(model=ECHO, input="third turn", previous_response_id=r2.id)
    assert r3.output_text == "third turn"
    assert r3.usage.input_tokens == words("first turn You said: first turn second turn You said: second turn third turn")


def test_previous_response_id_unknown(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model=ECHO, input="x", previous_response_id="resp_" + "0" * 48)
    assert ei.value.status_code == 400
    assert ei.value.param == "previous_response_id"
    assert ei.value.code == "previous_response_not_found"


def test_store_false_is_not_retrievable(client):
    r = client.responses.create(model=ECHO, input="ephemeral", store=False)
    assert r.output_text == "ephemeral"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_retrieve(client):
    r = client.responses.create(model=ECHO, input="keep me", metadata={"suite": "compat"})
    got = client.responses.retrieve(r.id)
    assert isinstance(got, Response)
    assert got.id == r.id
    assert got.status == "completed"
    assert got.output_text == "keep me"
    assert got.metadata == {"suite": "compat"}
    assert got.created_at == r.created_at
    assert got.usage.total_tokens == r.usage.total_tokens
    assert [o.id for o in got.output] == [o.id for o in r.output]


def test_retrieve_include_param(client):
    # the SDK encodes arrays as include[]=...; accepted and ignored for text
    r = client.responses.create(model=ECHO, input="include me")
    got = client.responses.retrieve(r.id, include=["message.output_text.logprobs"])
    assert got.output_text == "include me"


def test_delete(client):
    r = client.responses.create(model=ECHO, input="delete me")
    assert client.responses.delete(r.id) is None
    with pytest.raises(openai.NotFoundError) as ei:
        client.responses.retrieve(r.id)
    assert ei.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_input_items_auto_pagination(client):
    texts = [f"item{i} text" for i in range(5)]
    r = client.responses.create(
        model=ECHO,
        input=[{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)],
    )
    first = client.responses.input_items.list(r.id, limit=2)
    assert len(first.data) == 2
    assert first.has_more is True
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id

    items = list(client.responses.input_items.list(r.id, limit=2))  # follows `after`
    assert len(items) == 5
    assert len({it.id for it in items}) == 5
    assert all(it.id for it in items)
    # default order is desc (newest first)
    assert [it.content[0].text for it in items] == list(reversed(texts))

    asc = list(client.responses.input_items.list(r.id, limit=2, order="asc"))
    assert [it.content[0].text for it in asc] == texts
    assert [it.role for it in asc] == ["user", "assistant", "user", "assistant", "user"]

    # the SDK sends include[]=...; accepted
    inc = client.responses.input_items.list(r.id, limit=100, include=["message.input_image.image_url"])
    assert len(inc.data) == 5 and inc.has_more is False

    pages = 0
    page = client.responses.input_items.list(r.id, limit=2, order="asc")
    while True:
        pages += 1
        if not page.has_next_page():
            break
        page = page.get_next_page()
    assert pages == 3


# ---------------------------------------------------------------- background


def test_background_create_is_queued(client):
    r = client.responses.create(model=FAKE, input="queued words here", background=True)
    assert r.status == "queued"
    assert r.background is True
    assert r.output == []
    assert r.usage is None
    done = wait_status(client, r.id, ("completed",))
    assert done.output_text == "You said: queued words here"
    assert done.background is True


def test_background_retrieve_stream_starting_after(client):
    r = client.responses.create(model=FAKE, input="SLOW:20 WORDS:12", background=True)
    assert r.status == "queued"
    n = 3
    events = list(client.responses.retrieve(r.id, stream=True, starting_after=n))
    assert events, "no events after starting_after"
    seqs = [e.sequence_number for e in events]
    assert all(s > n for s in seqs), seqs
    assert seqs == list(range(n + 1, n + 1 + len(events))), seqs
    assert events[-1].type == "response.completed"
    assert isinstance(events[-1], ResponseCompletedEvent)
    expected = " ".join(f"w{i}" for i in range(12))
    assert events[-1].response.output_text == expected

    # full replay of the finished run, from sequence 0
    replay = list(client.responses.retrieve(r.id, stream=True))
    assert [e.type for e in replay[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert [e.sequence_number for e in replay] == list(range(len(replay)))
    assert [e.model_dump() for e in replay[n + 1 :]] == [e.model_dump() for e in events]
    text = "".join(e.delta for e in replay if e.type == "response.output_text.delta")
    assert text == expected


def test_retrieve_stream_past_the_end(client):
    r = client.responses.create(model=FAKE, input="short one", background=True)
    wait_status(client, r.id, ("completed",))
    t0 = time.monotonic()
    assert list(client.responses.retrieve(r.id, stream=True, starting_after=10_000)) == []
    assert time.monotonic() - t0 < 3


def test_retrieve_stream_of_synchronous_response_is_rejected(client):
    r = client.responses.create(model=ECHO, input="not background")
    with pytest.raises(openai.BadRequestError) as ei:
        list(client.responses.retrieve(r.id, stream=True))
    assert ei.value.param == "stream"


def test_background_stream_helper_by_response_id(client):
    r = client.responses.create(model=FAKE, input="SLOW:20 follow me live", background=True)
    with client.responses.stream(response_id=r.id) as stream:
        types = [e.type for e in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert final.id == r.id
    assert final.status == "completed"
    assert final.output_text == "You said: SLOW:20 follow me live"


def test_background_stream_helper_starting_after(client):
    r = client.responses.create(model=FAKE, input="SLOW:10 WORDS:6", background=True)
    with client.responses.stream(response_id=r.id, starting_after=5) as stream:
        seqs = [e.sequence_number for e in stream]
        final = stream.get_final_response()
    assert seqs and all(s > 5 for s in seqs), seqs
    assert final.output_text == "w0 w1 w2 w3 w4 w5"


def test_background_create_with_stream(client):
    with client.responses.create(model=FAKE, input="SLOW:10 WORDS:4", background=True, stream=True) as stream:
        events = list(stream)
    assert events[0].type == "response.created"
    assert events[0].response.background is True
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    rid = events[0].response.id
    # re-attach after the end: same events
    again = list(client.responses.retrieve(rid, stream=True, starting_after=len(events) - 3))
    assert [e.sequence_number for e in again] == [len(events) - 2, len(events) - 1]


def test_cancel_background_run(client):
    r = client.responses.create(model=FAKE, input="SLOW:100 WORDS:200", background=True)
    wait_status(client, r.id, ("in_progress",))
    time.sleep(0.3)
    t0 = time.monotonic()
    cancelled = client.responses.cancel(r.id)
    assert time.monotonic() - t0 < 5
    assert isinstance(cancelled, Response)
    assert cancelled.id == r.id
    assert cancelled.status == "cancelled"
    assert cancelled.background is True
    # stays cancelled; cancelling again is idempotent
    time.sleep(0.3)
    assert client.responses.retrieve(r.id).status == "cancelled"
    assert client.responses.cancel(r.id).status == "cancelled"


def test_cancel_ends_later_followers(client):
    r = client.responses.create(model=FAKE, input="SLOW:100 WORDS:200", background=True)
    wait_status(client, r.id, ("in_progress",))
    client.responses.cancel(r.id)
    # following a cancelled run terminates (does not hang) and never completes
    t0 = time.monotonic()
    events = list(client.responses.retrieve(r.id, stream=True))
    assert time.monotonic() - t0 < 5
    assert events and events[0].type == "response.created"
    assert "response.completed" not in [e.type for e in events]


def test_cancel_ends_live_follower(client):
    r = client.responses.create(model=FAKE, input="SLOW:100 WORDS:200", background=True)
    seen: list = []
    outcome: list = []

    def follow():
        try:
            with client.responses.stream(response_id=r.id) as stream:
                for event in stream:
                    seen.append(event.type)
                try:
                    stream.get_final_response()
                    outcome.append("completed")
                except RuntimeError as e:  # no response.completed: expected
                    outcome.append(e)
        except BaseException as e:  # noqa: BLE001 - reported below
            outcome.append(e)

    th = threading.Thread(target=follow, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while "response.output_text.delta" not in seen:
        assert time.monotonic() < deadline and th.is_alive(), (seen, outcome)
        time.sleep(0.05)
    assert client.responses.cancel(r.id).status == "cancelled"
    th.join(5)
    assert not th.is_alive(), "the follower was not released by the cancel"
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError), outcome
    assert "response.completed" not in seen
    assert seen[-1] in ("response.failed", "response.incomplete"), seen[-3:]


def test_cancel_completed_background_run_is_rejected(client):
    r = client.responses.create(model=FAKE, input="quick one", background=True)
    wait_status(client, r.id, ("completed",))
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.cancel(r.id)
    assert ei.value.status_code == 400
    assert client.responses.retrieve(r.id).status == "completed"


def test_cancel_synchronous_response_is_rejected(client):
    r = client.responses.create(model=ECHO, input="not background")
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.cancel(r.id)
    assert ei.value.status_code == 400


# ---------------------------------------------------------------- errors


def test_authentication_error(make_client):
    bad = make_client(api_key="sk-mn-" + "0" * 48)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.responses.create(model=ECHO, input="hi")
    e = ei.value
    assert e.status_code == 401
    assert e.message
    assert e.request_id  # x-request-id


def test_bad_request_temperature(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model=ECHO, input="hi", temperature=5)
    e = ei.value
    assert e.status_code == 400
    assert e.param == "temperature"
    assert e.type == "invalid_request_error"
    assert isinstance(e.body, dict) and set(e.body) >= {"message", "type", "param", "code"}


def test_bad_request_unknown_parameter(client):
    with pytest.raises(openai.BadRequestError) as ei:
        client.responses.create(model=ECHO, input="hi", extra_body={"no_such_field": 1})
    assert ei.value.param == "no_such_field"


def test_bad_request_unknown_provider(client):
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as ei:
        client.responses.create(model="nosuchprovider/model", input="hi")
    assert ei.value.status_code in (400, 404)


def test_not_found_unknown_id(client):
    with pytest.raises(openai.NotFoundError) as ei:
        client.responses.retrieve("resp_" + "f" * 48)
    assert ei.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_" + "f" * 48)
    with pytest.raises(openai.NotFoundError):
        list(client.responses.input_items.list("resp_" + "f" * 48))


def test_not_found_other_organization(client, make_client, other_key):
    r = client.responses.create(model=ECHO, input="private to org one")
    other = make_client(api_key=other_key)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(r.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(r.id)
    with pytest.raises(openai.BadRequestError) as ei:
        other.responses.create(model=ECHO, input="x", previous_response_id=r.id)
    assert ei.value.code == "previous_response_not_found"
    # still there for its owner
    assert client.responses.retrieve(r.id).output_text == "private to org one"
    # and the other org works normally with its own responses
    mine = other.responses.create(model=ECHO, input="org two")
    assert other.responses.retrieve(mine.id).output_text == "org two"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(mine.id)


def test_not_found_other_organization_background(client, make_client, other_key):
    r = client.responses.create(model=FAKE, input="SLOW:50 WORDS:40", background=True)
    other = make_client(api_key=other_key)
    with pytest.raises(openai.NotFoundError):
        other.responses.cancel(r.id)
    with pytest.raises(openai.NotFoundError):
        list(other.responses.retrieve(r.id, stream=True))
    client.responses.cancel(r.id)


def test_rate_limit_error_no_retry(make_client):
    c = make_client(max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(openai.RateLimitError) as ei:
        c.responses.create(model=FAKE, input="FAULT:429 please")
    assert time.monotonic() - t0 < 3
    e = ei.value
    assert e.status_code == 429
    assert e.response.headers.get("retry-after") == "7"
    assert e.code == "rate_limit_exceeded"
    assert e.response.request.headers.get("x-stainless-retry-count") == "0"


def _sdk_retry_delay(c: openai.OpenAI, headers) -> float:
    """The delay the installed SDK waits before its first retry given these
    response headers (openai/_base_client.py `_calculate_retry_timeout`: it
    honours Retry-After up to a cap, else backs off from 0.5 s with jitter)."""
    from openai._models import FinalRequestOptions

    options = FinalRequestOptions.construct(method="post", url="/responses", max_retries=1)
    return min(c._calculate_retry_timeout(1, options, headers) for _ in range(20))


def test_rate_limit_retry_honours_retry_after(make_client):
    probe = make_client(max_retries=0)
    with pytest.raises(openai.RateLimitError) as ei:
        probe.responses.create(model=FAKE, input="FAULT:429 probe")
    headers = ei.value.response.headers
    c = make_client(max_retries=1)
    delay = _sdk_retry_delay(c, headers)
    retry_after = float(headers["retry-after"])
    if retry_after <= 60:  # every SDK release since 1.0 honours at least 60 s
        assert delay == pytest.approx(retry_after)
    assert delay <= 9.5, f"SDK would wait {delay}s; test budget exceeded"
    t0 = time.monotonic()
    with pytest.raises(openai.RateLimitError) as ei:
        c.responses.create(model=FAKE, input="FAULT:429 retried")
    elapsed = time.monotonic() - t0
    assert elapsed >= delay - 0.05, (elapsed, delay)
    assert elapsed < delay + 3, (elapsed, delay)
    # the final attempt was the retry
    assert ei.value.response.request.headers.get("x-stainless-retry-count") == "1"


def test_internal_server_error_502(make_client):
    c = make_client(max_retries=0)
    with pytest.raises(openai.InternalServerError) as ei:
        c.responses.create(model=FAKE, input="FAULT:500 boom")
    e = ei.value
    assert e.status_code == 502
    assert e.type and e.message


def test_upstream_auth_failure_is_502(make_client):
    c = make_client(max_retries=0)
    with pytest.raises(openai.InternalServerError) as ei:
        c.responses.create(model=FAKE, input="FAULT:401 boom")
    assert ei.value.status_code == 502


def test_upstream_error_before_first_event_with_stream(make_client):
    c = make_client(max_retries=0)
    with pytest.raises(openai.InternalServerError) as ei:
        c.responses.create(model=FAKE, input="FAULT:500 streaming", stream=True)
    assert ei.value.status_code == 502


def test_upstream_malformed_body_is_502(make_client):
    c = make_client(max_retries=0)
    with pytest.raises(openai.InternalServerError) as ei:
        c.responses.create(model=FAKE, input="FAULT:malformed x")
    assert ei.value.status_code == 502


def test_upstream_bad_request_is_400(make_client):
    c = make_client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as ei:
        c.responses.create(model=FAKE, input="FAULT:400 x")
    assert ei.value.status_code == 400


def test_upstream_timeout_is_504(make_client):
    c = make_client(max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(openai.InternalServerError) as ei:
        c.responses.create(model=FAKE, input="FAULT:hang forever")
    assert ei.value.status_code == 504
    assert 4 <= time.monotonic() - t0 < 15  # request_timeout_secs = 5 in run.sh's config


def test_mid_stream_malformed_chunk_raises_api_error(client):
    seen = []
    with pytest.raises(openai.APIError) as ei:
        for event in client.responses.create(model=FAKE, input="FAULT:malformed a b c", stream=True):
            seen.append(event.type)
    assert not isinstance(ei.value, openai.APIStatusError)
    assert seen[0] == "response.created"


def test_mid_stream_failure_raises_api_error(client):
    seen = []
    with pytest.raises(openai.APIError) as ei:
        for event in client.responses.create(model=FAKE, input="FAULT:reset a b c d e", stream=True):
            seen.append(event.type)
    e = ei.value
    assert not isinstance(e, openai.APIStatusError)
    assert e.message
    assert seen[:2] == ["response.created", "response.in_progress"]
    assert "response.completed" not in seen


def test_mid_stream_failure_stream_helper(client):
    with pytest.raises(openai.APIError):
        with client.responses.stream(model=FAKE, input="FAULT:reset a b c d e") as stream:
            for _ in stream:
                pass
            stream.get_final_response()


def test_request_id_header(client):
    raw = client.responses.with_raw_response.create(model=ECHO, input="raw")
    assert raw.headers.get("x-request-id")
    assert raw.parse().output_text == "raw"


def test_unique_ids(client):
    tag = uuid.uuid4().hex[:8]
    ids = {client.responses.create(model=ECHO, input=f"unique {tag} {i}").id for i in range(3)}
    assert len(ids) == 3


# ---------------------------------------------------------------- self-check


class _BrokenResponseHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a Response missing fields the SDK model requires."""

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"id": "resp_x", "object": "response", "created_at": 1, "status": "completed", "output": []})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_strict_mode_is_effective(mode, api_key):
    """Guards the strict half of the suite: with `_strict_response_validation`
    the installed SDK really rejects an incomplete Response."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenResponseHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        c = openai.OpenAI(
            base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
            api_key=api_key,
            max_retries=0,
            _strict_response_validation=mode == "strict",
        )
        if mode == "strict":
            with pytest.raises(openai.APIResponseValidationError):
                c.responses.create(model=ECHO, input="x")
        else:
            assert c.responses.create(model=ECHO, input="x").id == "resp_x"
    finally:
        server.shutdown()
        server.server_close()


# --- reasoning output (upstreams that stream `reasoning_content`) -----------

REASONING = "Thinking about it."


def test_reasoning_item_before_message(client):
    r = client.responses.create(model=FAKE, input="why THINK")
    assert [item.type for item in r.output] == ["reasoning", "message"]
    reasoning = r.output[0]
    assert reasoning.summary == []
    assert "".join(c.text for c in reasoning.content) == REASONING
    assert r.output_text == "You said: why THINK"
    assert r.usage.output_tokens_details.reasoning_tokens == 3


def test_reasoning_stream_events(client):
    events = list(client.responses.create(model=FAKE, input="why THINK", stream=True))
    types = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert types.index("response.reasoning_text.done") < types.index("response.output_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert text == REASONING
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["reasoning", "message"]
    assert [e.output_index for e in added] == [0, 1]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].type == "reasoning"


def test_reasoning_stream_helper(client):
    with client.responses.stream(model=FAKE, input="helper THINK") as stream:
        seen = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in seen
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "You said: helper THINK"


def test_reasoning_chain_and_background_replay(client):
    first = client.responses.create(model=FAKE, input="first THINK", store=True)
    second = client.responses.create(model=FAKE, input="next", previous_response_id=first.id)
    assert second.status == "completed"
    items = list(client.responses.input_items.list(second.id, order="asc"))
    assert [i.type for i in items] == ["message", "reasoning", "message", "message"]

    job = client.responses.create(model=FAKE, input="bg THINK", background=True)
    done = wait_status(client, job.id, ("completed",))
    assert [item.type for item in done.output] == ["reasoning", "message"]
    replay = list(client.responses.retrieve(job.id, stream=True))
    assert "response.reasoning_text.delta" in [e.type for e in replay]
    assert replay[-1].response.output[0].type == "reasoning"


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    # Providers by name, then the aliases (tests/compat/run.sh's config).
    assert ids == [
        "claude/claude-compat",
        "echo/echo",
        "fake/compat",
        "fake/meta-llama/llama-3",
        "native/native-compat",
        "smart",
    ]
    m = client.models.retrieve("echo/echo")
    assert m.id == "echo/echo" and m.owned_by == "echo" and m.object == "model"
    deep = client.models.retrieve("fake/meta-llama/llama-3")
    assert deep.owned_by == "fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("fake/not-listed")
