"""The official OpenAI Python SDK pointed alternately at two gateway
replicas sharing one PostgreSQL database: chain, stream-resume and cancel
across them."""

import os
import time

import openai
import pytest

A = os.environ["MANIAC_REPLICA_A"]
B = os.environ["MANIAC_REPLICA_B"]
KEY = os.environ["MANIAC_API_KEY"]


@pytest.fixture
def a():
    return openai.OpenAI(base_url=A, api_key=KEY, max_retries=0)


@pytest.fixture
def b():
    return openai.OpenAI(base_url=B, api_key=KEY, max_retries=0)


def test_chain_across_replicas(a, b):
    first = a.responses.create(model="fake/m", input="My name is Ada.")
    second = b.responses.create(model="fake/m", input="What is my name?", previous_response_id=first.id)
    third = a.responses.create(model="fake/m", input="Again?", previous_response_id=second.id)
    assert third.output_text == "You said: Again?"
    # The upstream counts every word it was sent: turns 1 and 2 (inputs and
    # answers) reached it through the chain, whichever replica served them.
    words = lambda s: len(s.split())
    expected = sum(
        words(t)
        for t in ["My name is Ada.", first.output_text, "What is my name?", second.output_text, "Again?"]
    )
    assert third.usage.input_tokens == expected
    assert b.responses.retrieve(first.id).output_text == first.output_text
    items = list(b.input_items.list(third.id, order="asc")) if hasattr(b, "input_items") else list(
        b.responses.input_items.list(third.id, order="asc")
    )
    assert len(items) == 5
    b.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve(first.id)


def test_stream_resume_across_replicas(a, b):
    bg = a.responses.create(model="fake/m", input="SLOW:20 WORDS:30", background=True)
    assert bg.status == "queued"
    with b.responses.stream(response_id=bg.id) as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert len(final.output_text.split()) == 30
    events = list(a.responses.retrieve(bg.id, stream=True, starting_after=5))
    assert events[0].sequence_number == 6
    assert [e.sequence_number for e in events] == list(range(6, 6 + len(events)))
    assert events[-1].type == "response.completed"


def test_cancel_across_replicas(a, b):
    bg = a.responses.create(model="fake/m", input="SLOW:100 WORDS:200", background=True)
    deadline = time.monotonic() + 10
    while a.responses.retrieve(bg.id).status != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    cancelled = b.responses.cancel(bg.id)
    assert cancelled.status == "cancelled"
    assert a.responses.retrieve(bg.id).status == "cancelled"
    assert b.responses.cancel(bg.id).status == "cancelled"
