"""The official `openai` Python SDK's Chat Completions API against the gateway.

Every test runs with a lenient and with a strict (`_strict_response_validation`)
client, see conftest.py. Models: `echo/echo` answers with the text of the last
user message (usage counts words; with `tools` and `tool_choice` "required" or
a named function it calls the tool with the text as every string property);
`fake/...` is the fake upstream (tests/src/upstream.rs): `You said: <last user
text>` word by word, `Tool said: <content>` after a tool message, scripted by
markers (FAULT:..., CALL[:k], THINK, JSON:, FIELDS, WORDS:<n>, ...).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Dict, List

import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

ECHO = "echo/echo"
FAKE = "fake/compat"
REASONING = "Thinking about it."
JSON_REPLY = '{"name":"Ada","age":36}'

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
LOOKUP = {"type": "function", "function": {"name": "lookup", "description": "Looks something up."}}


def user(text) -> List[dict]:
    return [{"role": "user", "content": text}]


def words(text: str) -> int:
    return len(text.split())


def field(obj, name: str):
    """A field the gateway sends beyond the SDK's model (or one an older SDK
    does not declare), as it came over the wire."""
    return obj.to_dict().get(name)


def tag() -> str:
    return uuid.uuid4().hex[:12]


def texts_by_choice(chunks: List[ChatCompletionChunk]) -> Dict[int, str]:
    out: Dict[int, str] = {}
    for c in chunks:
        for ch in c.choices:
            out[ch.index] = out.get(ch.index, "") + (ch.delta.content or "")
    return out


def assert_chunk_rules(chunks: List[ChatCompletionChunk], model: str, include_usage: bool) -> None:
    """OpenAI's streaming rules: one id/created, the role in each choice's
    first delta, a finish_reason on each choice's last chunk, and usage only
    in a final `choices: []` chunk when include_usage is set (`usage: null`
    in every other chunk)."""
    assert chunks, "no chunks"
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    first = chunks[0]
    assert first.id.startswith("chatcmpl-")
    for c in chunks:
        assert c.object == "chat.completion.chunk"
        assert (c.id, c.created, c.model) == (first.id, first.created, model)
    body = chunks[:-1] if include_usage else chunks
    per_choice: Dict[int, list] = {}
    for c in body:
        assert c.choices, "a chunk without choices before the end"
        for ch in c.choices:
            per_choice.setdefault(ch.index, []).append(ch)
    assert sorted(per_choice) == list(range(len(per_choice)))
    for index, seq in per_choice.items():
        assert seq[0].delta.role == "assistant", (index, seq[0])
        assert all(ch.delta.role is None for ch in seq[1:]), index
        assert seq[-1].finish_reason is not None, index
        assert all(ch.finish_reason is None for ch in seq[:-1]), index
    if include_usage:
        last = chunks[-1]
        assert last.choices == []
        u = last.usage
        assert u is not None
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens
        for c in body:
            raw = c.to_dict()
            assert "usage" in raw and raw["usage"] is None, raw
    else:
        assert all(c.usage is None for c in chunks)


def reassemble_tool_calls(chunks: List[ChatCompletionChunk]) -> List[dict]:
    """Tool calls of choice 0 from their `delta.tool_calls` fragments: the
    first fragment of each call has id, type and name, later ones only
    argument pieces."""
    calls: Dict[int, dict] = {}
    for c in chunks:
        for ch in c.choices:
            for frag in ch.delta.tool_calls or []:
                if frag.index not in calls:
                    assert frag.id, frag
                    assert frag.type == "function", frag
                    assert frag.function.name, frag
                    calls[frag.index] = {"id": frag.id, "name": frag.function.name, "arguments": ""}
                else:
                    assert frag.id is None, frag
                calls[frag.index]["arguments"] += (frag.function and frag.function.arguments) or ""
    return [calls[i] for i in sorted(calls)]


def parse_method(client: openai.OpenAI, name: str):
    """`client.chat.completions.<name>`, or `client.beta.chat.completions.<name>`
    on SDKs from before the helpers left beta."""
    return getattr(client.chat.completions, name, None) or getattr(client.beta.chat.completions, name)


def assistant_turn(message) -> dict:
    """The assistant message to send back after tool calls."""
    return {
        "role": "assistant",
        "content": message.content,
        "tool_calls": [
            {"id": t.id, "type": "function", "function": {"name": t.function.name, "arguments": t.function.arguments}}
            for t in message.tool_calls
        ],
    }


# ---------------------------------------------------------------- create


def test_create_echo(client):
    before = int(time.time())
    r = client.chat.completions.create(
        model=ECHO, messages=[{"role": "system", "content": "be brief"}, *user("Hello chat gateway")]
    )
    assert isinstance(r, ChatCompletion)
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert before - 5 <= r.created <= time.time() + 5
    assert r.model == ECHO
    assert field(r, "provider") == "echo"
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    m = choice.message
    assert m.role == "assistant"
    assert m.content == "Hello chat gateway"
    assert m.refusal is None
    assert not m.tool_calls
    assert not m.annotations
    assert r.usage.prompt_tokens == words("be brief Hello chat gateway")
    assert r.usage.completion_tokens == 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details.reasoning_tokens == 0


def test_create_fake(client):
    r = client.chat.completions.create(
        model=FAKE,
        messages=[{"role": "system", "content": "be brief"}, *user("ping pong")],
        temperature=0.5,
        max_tokens=64,
    )
    assert r.id.startswith("chatcmpl-")
    assert r.model == FAKE
    assert field(r, "provider") == "fake"
    assert r.choices[0].message.content == "You said: ping pong"
    assert r.choices[0].finish_reason == "stop"
    assert r.system_fingerprint == "fp_fake"
    assert r.service_tier == "default"
    # the fake counts the words of every message it was sent
    assert r.usage.prompt_tokens == words("be brief ping pong")
    assert r.usage.completion_tokens == 4
    assert r.usage.total_tokens == 8


def test_service_tier_passes_through(client):
    r = client.chat.completions.create(model=FAKE, messages=user("tiered"), service_tier="flex")
    assert r.service_tier == "flex"


@pytest.mark.parametrize("model, prefix", [(ECHO, ""), (FAKE, "You said: ")])
def test_image_url_part_is_accepted(client, model, prefix):
    r = client.chat.completions.create(
        model=model,
        messages=user(
            [
                {"type": "text", "text": "describe this"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
            ]
        ),
    )
    assert r.choices[0].message.content == prefix + "describe this"


def test_n_choices_fake(client):
    r = client.chat.completions.create(model=FAKE, messages=user("two please"), n=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert [c.message.content for c in r.choices] == ["You said: two please", "You said: two please (choice 1)"]
    assert all(c.finish_reason == "stop" for c in r.choices)
    assert r.usage.completion_tokens == 4 + 6


def test_n_choices_echo(client):
    r = client.chat.completions.create(model=ECHO, messages=user("same for all"), n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.message.content for c in r.choices] == ["same for all"] * 3


def test_stream_n_choices_fake(client):
    chunks = list(client.chat.completions.create(model=FAKE, messages=user("a b"), n=2, stream=True))
    assert_chunk_rules(chunks, FAKE, include_usage=False)
    assert texts_by_choice(chunks) == {0: "You said: a b", 1: "You said: a b (choice 1)"}


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_echo_with_length(client, limit):
    r = client.chat.completions.create(model=ECHO, messages=user("one two three four five"), **{limit: 2})
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content.split() == ["one", "two"]
    assert r.usage.completion_tokens == 2


def test_max_tokens_fake_length(client):
    r = client.chat.completions.create(model=FAKE, messages=user("WORDS:40"), max_completion_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content == "w0 w1 w2 w3 w4"


def test_unicode_round_trip(client):
    text = "héllo wörld ✓ 日本語 🚀 done"
    assert client.chat.completions.create(model=ECHO, messages=user(text)).choices[0].message.content == text
    chunks = list(client.chat.completions.create(model=FAKE, messages=user(text), stream=True))
    assert texts_by_choice(chunks) == {0: f"You said: {text}"}


# ---------------------------------------------------------------- tools


def test_tools_round_trip_echo(client):
    messages = user("Paris")
    r = client.chat.completions.create(model=ECHO, messages=messages, tools=[WEATHER], tool_choice="required")
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id and call.type == "function"
    assert call.function.name == "get_weather"
    # string properties get the text; `days` is an integer
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [assistant_turn(choice.message), {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}]
    final = client.chat.completions.create(model=ECHO, messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "sunny, 21 C"
    assert not final.choices[0].message.tool_calls


def test_tool_choice_named_function_echo(client):
    r = client.chat.completions.create(
        model=ECHO,
        messages=user("look me up"),
        tools=[WEATHER, LOOKUP],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"input": "look me up"}  # no properties
    assert r.choices[0].finish_reason == "tool_calls"


def test_tool_message_with_text_parts_echo(client):
    messages = [
        *user("what is it?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_x", "content": [{"type": "text", "text": "forty-two"}]},
    ]
    r = client.chat.completions.create(model=ECHO, messages=messages, tools=[LOOKUP])
    assert r.choices[0].message.content == "forty-two"


def test_tools_round_trip_fake(client):
    text = "CALL:2 weather in Paris"
    messages = user(text)
    r = client.chat.completions.create(model=FAKE, messages=messages, tools=[WEATHER, LOOKUP])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "lookup"]
    assert len({c.id for c in calls}) == 2
    assert all(json.loads(c.function.arguments) == {"q": text} for c in calls)
    messages.append(assistant_turn(choice.message))
    for c, result in zip(calls, ["sunny", "found it"]):
        messages.append({"role": "tool", "tool_call_id": c.id, "content": result})
    final = client.chat.completions.create(model=FAKE, messages=messages, tools=[WEATHER, LOOKUP])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Tool said: found it"


def test_tool_choice_required_fake(client):
    r = client.chat.completions.create(model=FAKE, messages=user("no marker"), tools=[WEATHER], tool_choice="required")
    [call] = r.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"q": "no marker"}


@pytest.mark.parametrize(
    "model, text, tool_choice, want",
    [
        (ECHO, "Lyon", "required", {"city": "Lyon"}),
        (FAKE, "CALL stream it", None, {"q": "CALL stream it"}),
    ],
)
def test_stream_tool_call_fragments_reassemble(client, model, text, tool_choice, want):
    extra = {"tool_choice": tool_choice} if tool_choice else {}
    chunks = list(
        client.chat.completions.create(model=model, messages=user(text), tools=[WEATHER], stream=True, **extra)
    )
    assert_chunk_rules(chunks, model, include_usage=False)
    [call] = reassemble_tool_calls(chunks)
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == want
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(not ch.delta.content for c in chunks for ch in c.choices)


def test_stream_helper_tool_call_events(client):
    stream_fn = parse_method(client, "stream")
    with stream_fn(model=ECHO, messages=user("Oslo"), tools=[WEATHER], tool_choice="required") as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert [(e.name, json.loads(e.arguments)) for e in done] == [("get_weather", {"city": "Oslo"})]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"


# ---------------------------------------------------------------- reasoning, logprobs


def test_reasoning_content_fake(client):
    r = client.chat.completions.create(model=FAKE, messages=user("why THINK"))
    m = r.choices[0].message
    assert m.content == "You said: why THINK"
    assert field(m, "reasoning_content") == REASONING
    assert r.usage.completion_tokens_details.reasoning_tokens == words(REASONING)


def test_logprobs_fake(client):
    r = client.chat.completions.create(model=FAKE, messages=user("log me"), logprobs=True, top_logprobs=2)
    choice = r.choices[0]
    entries = choice.logprobs.content
    assert "".join(e.token for e in entries) == choice.message.content == "You said: log me"
    for e in entries:
        assert e.logprob == -0.25
        assert e.bytes == list(e.token.encode())
        assert len(e.top_logprobs) == 2
        assert e.top_logprobs[0].token == e.token
    plain = client.chat.completions.create(model=FAKE, messages=user("no logprobs"))
    assert plain.choices[0].logprobs is None


def test_stream_logprobs_fake(client):
    chunks = list(client.chat.completions.create(model=FAKE, messages=user("log stream"), logprobs=True, stream=True))
    tokens = []
    for c in chunks:
        for ch in c.choices:
            if ch.delta.content:
                assert ch.logprobs is not None and ch.logprobs.content, ch
                tokens += [e.token for e in ch.logprobs.content]
    assert "".join(tokens) == "You said: log stream"
    plain = list(client.chat.completions.create(model=FAKE, messages=user("plain stream"), stream=True))
    assert all(ch.logprobs is None for c in plain for ch in c.choices)


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    "model, text, expected",
    [
        (ECHO, "stream these words please", "stream these words please"),
        (FAKE, "alpha beta gamma", "You said: alpha beta gamma"),
    ],
)
def test_stream_without_usage(client, model, text, expected):
    chunks = list(client.chat.completions.create(model=model, messages=user(text), stream=True))
    assert_chunk_rules(chunks, model, include_usage=False)
    assert len(chunks) >= 2
    assert texts_by_choice(chunks) == {0: expected}
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    "model, text, expected",
    [(ECHO, "count my words", "count my words"), (FAKE, "count my words", "You said: count my words")],
)
def test_stream_with_include_usage(client, model, text, expected):
    with client.chat.completions.create(
        model=model, messages=user(text), stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert_chunk_rules(chunks, model, include_usage=True)
    assert texts_by_choice(chunks[:-1]) == {0: expected}
    u = chunks[-1].usage
    assert u.prompt_tokens == words(text)
    assert u.completion_tokens == words(expected)


def test_stream_helper_content_events(client):
    stream_fn = parse_method(client, "stream")
    deltas = []
    with stream_fn(model=FAKE, messages=user("helper stream works")) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
                assert event.snapshot == "".join(deltas)
            elif event.type == "content.done":
                assert event.content == "".join(deltas)
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "You said: helper stream works"
    assert "".join(deltas) == final.choices[0].message.content
    assert len(deltas) >= 2


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_parse_pydantic_response_format(client):
    r = parse_method(client, "parse")(model=FAKE, messages=user("JSON: describe a person"), response_format=Person)
    m = r.choices[0].message
    assert m.content == JSON_REPLY
    assert m.parsed == Person(name="Ada", age=36)


def test_stream_helper_pydantic_response_format(client):
    with parse_method(client, "stream")(model=FAKE, messages=user("JSON: again"), response_format=Person) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Person(name="Ada", age=36)


def test_async_client(mode, base_url, api_key):
    async def main():
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, max_retries=0, _strict_response_validation=mode == "strict"
        ) as ac:
            r = await ac.chat.completions.create(model=ECHO, messages=user("async works"))
            chunks = [
                c
                async for c in await ac.chat.completions.create(model=FAKE, messages=user("async stream"), stream=True)
            ]
            return r, chunks

    r, chunks = asyncio.run(main())
    assert r.choices[0].message.content == "async works"
    assert texts_by_choice(chunks) == {0: "You said: async stream"}


# ---------------------------------------------------------------- stored completions


def test_store_retrieve_update_delete(client):
    t = tag()
    r = client.chat.completions.create(
        model=ECHO, messages=user(f"keep me {t}"), store=True, metadata={"suite": "chat", "tag": t}
    )
    got = client.chat.completions.retrieve(r.id)
    assert isinstance(got, ChatCompletion)
    assert (got.id, got.object, got.model) == (r.id, "chat.completion", ECHO)
    assert got.choices[0].message.content == f"keep me {t}"
    assert field(got, "metadata") == {"suite": "chat", "tag": t}

    updated = client.chat.completions.update(r.id, metadata={"suite": "chat", "tag": t, "state": "updated"})
    assert updated.id == r.id
    assert field(updated, "metadata") == {"suite": "chat", "tag": t, "state": "updated"}
    assert field(client.chat.completions.retrieve(r.id), "metadata")["state"] == "updated"

    deleted = client.chat.completions.delete(r.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (r.id, True, "chat.completion.deleted")
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.retrieve(r.id)
    assert ei.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.delete(r.id)


@pytest.mark.parametrize("store", [None, False])
def test_unstored_completion_is_not_retrievable(client, store):
    extra = {} if store is None else {"store": store}
    r = client.chat.completions.create(model=ECHO, messages=user("forget me"), **extra)
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.retrieve(r.id)
    assert ei.value.status_code == 404


def test_store_streamed_completion(client):
    t = tag()
    chunks = list(client.chat.completions.create(model=FAKE, messages=user(f"streamed {t}"), stream=True, store=True))
    got = client.chat.completions.retrieve(chunks[0].id)
    assert got.choices[0].message.content == f"You said: streamed {t}"


def test_list_filters_order_and_pagination(client):
    t = tag()
    models = [ECHO, FAKE, ECHO, FAKE, ECHO]
    ids = [
        client.chat.completions.create(
            model=m, messages=user(f"listed {i} {t}"), store=True, metadata={"tag": t, "i": str(i)}
        ).id
        for i, m in enumerate(models)
    ]
    page = client.chat.completions.list(limit=2, order="asc", metadata={"tag": t})
    sizes = [len(p.data) for p in page.iter_pages()]
    assert sizes == [2, 2, 1]
    assert page.has_more is True
    asc = [c.id for c in client.chat.completions.list(limit=2, order="asc", metadata={"tag": t})]
    assert asc == ids
    desc = [c.id for c in client.chat.completions.list(limit=2, order="desc", metadata={"tag": t})]
    assert desc == ids[::-1]
    fake_only = list(client.chat.completions.list(limit=10, model=FAKE, metadata={"tag": t}))
    assert [c.id for c in fake_only] == [ids[1], ids[3]]
    assert all(c.model == FAKE for c in fake_only)
    one = list(client.chat.completions.list(metadata={"tag": t, "i": "2"}))
    assert [c.id for c in one] == [ids[2]]
    assert list(client.chat.completions.list(metadata={"tag": t, "i": "9"})) == []


def test_stored_messages_list(client, make_client):
    # The SDK types a stored message as ChatCompletionMessage, whose `role` is
    # Literal["assistant"], while the API lists the request's messages with
    # their own roles: a strict client rejects any such page (real OpenAI's
    # too), so the typed calls use a lenient client and the strict run checks
    # the wire shape itself.
    lenient = make_client(_strict_response_validation=False)
    sent = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "second question"},
    ]
    r = client.chat.completions.create(model=ECHO, messages=sent, store=True)
    first = lenient.chat.completions.messages.list(r.id, limit=2)
    assert len(first.data) == 2 and first.has_more is True
    items = list(lenient.chat.completions.messages.list(r.id, limit=2))
    assert [(m.role, m.content) for m in items] == [(m["role"], m["content"]) for m in sent]
    assert all(m.id for m in items) and len({m.id for m in items}) == 4
    desc = list(lenient.chat.completions.messages.list(r.id, limit=3, order="desc"))
    assert [m.id for m in desc] == [m.id for m in items][::-1]

    raw = client.chat.completions.messages.with_raw_response.list(r.id, limit=3).http_response.json()
    assert raw["object"] == "list"
    assert raw["has_more"] is True
    assert [m["id"] for m in raw["data"]] == [m.id for m in items[:3]]
    assert raw["first_id"] == items[0].id and raw["last_id"] == items[2].id


def test_stored_completion_of_other_org_is_404(client, make_client, other_key):
    t = tag()
    r = client.chat.completions.create(model=ECHO, messages=user(f"org one {t}"), store=True, metadata={"tag": t})
    other = make_client(api_key=other_key, _strict_response_validation=False)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.update(r.id, metadata={"stolen": "yes"})
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        list(other.chat.completions.messages.list(r.id))
    assert list(other.chat.completions.list(metadata={"tag": t})) == []
    # untouched for its owner
    got = client.chat.completions.retrieve(r.id)
    assert got.choices[0].message.content == f"org one {t}"
    assert field(got, "metadata") == {"tag": t}


def test_unknown_completion_id_is_404(client):
    missing = "chatcmpl-" + "f" * 32
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(missing)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.update(missing, metadata={"k": "v"})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.delete(missing)
    with pytest.raises(openai.NotFoundError):
        list(client.chat.completions.messages.list(missing))


# ---------------------------------------------------------------- validation and forwarding

BAD_REQUESTS = [
    # (id, create arguments, the param named by the error)
    ("temperature", {"temperature": 3}, "temperature"),
    ("n", {"n": 0}, "n"),
    ("top_logprobs_without_logprobs", {"top_logprobs": 2}, "top_logprobs"),
    ("audio_modality", {"modalities": ["audio"]}, "modalities"),
    ("prediction", {"prediction": {"type": "content", "content": "guess"}}, "prediction"),
    ("message_role", {"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
]


@pytest.mark.parametrize("args, param", [row[1:] for row in BAD_REQUESTS], ids=[row[0] for row in BAD_REQUESTS])
def test_bad_request_names_the_param(client, args, param):
    kwargs = {"model": ECHO, "messages": user("hi"), **args}
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(**kwargs)
    e = ei.value
    assert e.status_code == 400
    assert e.type == "invalid_request_error"
    assert isinstance(e.param, str) and e.param.startswith(param), (e.param, e.message)
    assert e.message


def test_unknown_fields_are_forwarded_and_extensions_are_not(client):
    r = client.chat.completions.create(
        model=FAKE,
        messages=user("FIELDS"),
        extra_body={
            "top_k": 5,
            "guided_json": {"type": "object"},
            "tags": ["compat", "chat"],
            "trace": {"trace_id": "t-1"},
        },
    )
    fields = r.choices[0].message.content.split(",")
    assert fields == sorted(fields)
    assert {"guided_json", "top_k", "model", "messages"} <= set(fields)
    assert "tags" not in fields and "trace" not in fields


def test_extensions_and_unknown_fields_accepted_by_echo(client):
    r = client.chat.completions.create(
        model=ECHO, messages=user("still fine"), extra_body={"top_k": 5, "tags": ["a"], "trace": {"span": "s"}}
    )
    assert r.choices[0].message.content == "still fine"


# ---------------------------------------------------------------- errors


def test_authentication_error(make_client):
    bad = make_client(api_key="sk-mn-" + "0" * 48)
    with pytest.raises(openai.AuthenticationError) as ei:
        bad.chat.completions.create(model=ECHO, messages=user("hi"))
    assert ei.value.status_code == 401
    assert ei.value.message


def test_unknown_provider(client):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model="nope/x", messages=user("hi"))
    assert ei.value.status_code in (400, 404)
    assert isinstance(ei.value, (openai.BadRequestError, openai.NotFoundError))


@pytest.mark.parametrize("stream", [False, True])
def test_rate_limit_error(make_client, stream):
    c = make_client(max_retries=0)
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model=FAKE, messages=user("FAULT:429 please"), stream=stream)
    assert ei.value.status_code == 429


@pytest.mark.parametrize("stream", [False, True])
def test_internal_server_error(make_client, stream):
    c = make_client(max_retries=0)
    with pytest.raises(openai.InternalServerError) as ei:
        c.chat.completions.create(model=FAKE, messages=user("FAULT:500 boom"), stream=stream)
    assert ei.value.status_code >= 500


def test_failure_after_first_chunk_raises_api_error(client):
    seen = []
    with pytest.raises(openai.APIError) as ei:
        for chunk in client.chat.completions.create(model=FAKE, messages=user("FAULT:reset a b c d e"), stream=True):
            seen.append(chunk)
    e = ei.value
    # an `error` event, not an HTTP status nor a cut connection
    assert not isinstance(e, (openai.APIStatusError, openai.APIConnectionError))
    assert isinstance(e.body, dict) and e.message
    assert seen, "the error came before the first chunk"
    assert all(ch.finish_reason is None for c in seen for ch in c.choices)


def test_failure_after_first_chunk_stream_helper(client):
    with pytest.raises(openai.APIError) as ei:
        with parse_method(client, "stream")(model=FAKE, messages=user("FAULT:reset a b c d e")) as stream:
            for _ in stream:
                pass
            stream.get_final_completion()
    assert not isinstance(ei.value, (openai.APIStatusError, openai.APIConnectionError))


# ---------------------------------------------------------------- models


def test_models_include_echo(client):
    assert "echo/echo" in [m.id for m in client.models.list()]
    m = client.models.retrieve("echo/echo")
    assert m.id == "echo/echo" and m.object == "model"
