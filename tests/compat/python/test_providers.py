"""The official `openai` Python SDK against every provider kind and routing.

`claude/...` is the fake Anthropic Messages upstream (tests/src/anthropic.rs:
`You said: <last user text>`, THINK gives a signed thinking block, CALL a
tool_use with streamed input, CACHE cache usage), `native/...` the fake
OpenAI Responses upstream (tests/src/responses_upstream.rs: THINK gives a
reasoning item with `encrypted_content`, CALL a function call), and `smart`
an alias whose first target (`down/m`) refuses connections, so `fake/m`
serves it. Every test runs lenient and strict (see conftest.py).
"""

from __future__ import annotations

import base64
import json

import openai
import pytest

CLAUDE = "claude/claude-compat"
NATIVE = "native/native-compat"
PROVIDERS = [pytest.param(CLAUDE, id="anthropic"), pytest.param(NATIVE, id="responses")]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    },
}

# A 1x1 PNG.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.mark.parametrize("model", PROVIDERS)
def test_responses_text_and_usage(client: openai.OpenAI, model: str) -> None:
    r = client.responses.create(model=model, input="hello there", store=False)
    assert r.status == "completed"
    assert r.output_text == "You said: hello there"
    assert r.model == model
    assert r.usage is not None and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert getattr(r, "provider", None) == model.split("/")[0]


@pytest.mark.parametrize("model", PROVIDERS)
def test_responses_streaming(client: openai.OpenAI, model: str) -> None:
    events = list(client.responses.create(model=model, input="stream me", stream=True, store=False))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "You said: stream me"
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize("model", PROVIDERS)
def test_chat_streaming_with_usage(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "chunks please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: chunks please"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("model", PROVIDERS)
def test_images_are_accepted(client: openai.OpenAI, model: str) -> None:
    c = client.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            }
        ],
    )
    assert c.choices[0].message.content == "You said: what is this"


@pytest.mark.parametrize("model", PROVIDERS)
def test_tool_round_trip_via_chat(client: openai.OpenAI, model: str) -> None:
    messages = [{"role": "user", "content": "CALL weather in Paris"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"q": "CALL weather in Paris"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Tool said: sunny, 21 C"


@pytest.mark.parametrize("model", PROVIDERS)
def test_streamed_tool_call_arguments_arrive_in_pieces(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "CALL it"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    pieces = [
        tc.function.arguments
        for c in chunks
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function and tc.function.arguments
    ]
    assert len(pieces) > 1, pieces
    assert json.loads("".join(pieces)) == {"q": "CALL it"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", PROVIDERS)
def test_a_chained_conversation_with_thinking(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(
        model=model, input="THINK about cats", reasoning={"effort": "medium"}, store=True
    )
    assert first.status == "completed"
    kinds = [item.type for item in first.output]
    assert kinds[0] == "reasoning" and kinds[-1] == "message", kinds
    # The second turn replays the first one's reasoning (Anthropic's
    # signature, OpenAI's encrypted_content) to the same upstream, which
    # refuses a tampered or foreign one: a completed answer proves it.
    second = client.responses.create(
        model=model,
        input="and dogs?",
        previous_response_id=first.id,
        reasoning={"effort": "medium"},
        store=True,
    )
    assert second.status == "completed"
    assert second.output_text == "You said: and dogs?"
    items = client.responses.input_items.list(second.id)
    assert any(getattr(i, "type", None) == "message" for i in items.data)


def test_anthropic_cache_usage_is_reported_as_openai_counts(client: openai.OpenAI) -> None:
    r = client.responses.create(model=CLAUDE, input="CACHE me", store=False)
    details = r.usage.input_tokens_details
    # Anthropic's input excludes cache reads and writes; ours includes them.
    assert details.cached_tokens == 100
    assert r.usage.input_tokens >= 100 + 20
    c = client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "CACHE me"}])
    assert c.usage.prompt_tokens_details.cached_tokens == 100
    assert c.usage.prompt_tokens == r.usage.input_tokens


def test_an_alias_fails_over_to_its_second_target(client: openai.OpenAI) -> None:
    r = client.responses.create(model="smart", input="route me", store=False)
    assert r.output_text == "You said: route me"
    assert r.model == "smart"
    assert getattr(r, "provider", None) == "fake"
    c = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "again"}])
    assert c.choices[0].message.content == "You said: again"
    ids = [m.id for m in client.models.list()]
    assert "smart" in ids and CLAUDE in ids and NATIVE in ids


@pytest.mark.parametrize("model", PROVIDERS)
def test_upstream_rate_limits_are_rate_limit_errors(make_client, model: str) -> None:
    client = make_client()
    with pytest.raises(openai.RateLimitError) as e:
        client.responses.create(model=model, input="FAULT:429", store=False)
    assert e.value.status_code == 429
