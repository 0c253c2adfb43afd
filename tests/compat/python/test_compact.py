"""Compaction and input token counts through the official SDK:
`client.responses.compact()`, the new chain it starts (HTTP and WebSocket),
and `client.responses.input_tokens.count()`.

Every test runs with a lenient and a strict client (conftest.py). The SDK
types `CompactedResponse.output` as output items, whose messages must be
the assistant's: the user messages a compaction keeps (OpenAI's answer
holds them too) fail a strict client, so compaction is read leniently and
the strict run checks that only those items fail and that everything else
validates (`test_strict_client_rejects_only_the_kept_user_messages`).
"""

from __future__ import annotations

import openai
import pytest
from openai.types.responses import ResponseCompactionItem, ResponseUsage

FAKE = "fake/compat"

CONVERSATION = [
    {"role": "user", "content": [{"type": "input_text", "text": "Remember the code word: slate."}]},
    {"role": "assistant", "content": [{"type": "output_text", "text": "OK."}]},
    {"role": "user", "content": [{"type": "input_text", "text": "Compress this conversation."}]},
]


@pytest.fixture
def lenient(make_client) -> openai.OpenAI:
    return make_client(_strict_response_validation=False)


def _compact(client: openai.OpenAI):
    return client.responses.compact(model=FAKE, input=CONVERSATION)


def test_compact_returns_user_messages_and_sealed_item(lenient: openai.OpenAI) -> None:
    compacted = _compact(lenient)
    assert compacted.object == "response.compaction"
    assert compacted.id.startswith("resp_")
    kinds = [item.type for item in compacted.output]
    assert kinds == ["message", "message", "compaction"]
    kept = compacted.output[:2]
    assert [m.role for m in kept] == ["user", "user"]
    assert kept[1].content[0].text == "Compress this conversation."
    sealed = compacted.output[2]
    assert sealed.id.startswith("cmp_")
    assert "slate" not in sealed.encrypted_content
    assert compacted.usage.output_tokens > 0


def test_strict_client_rejects_only_the_kept_user_messages(
    client: openai.OpenAI, mode: str
) -> None:
    raw = client.post("/responses/compact", body={"model": FAKE, "input": CONVERSATION}, cast_to=object)
    # Everything but the user messages validates strictly.
    ResponseCompactionItem.model_validate(raw["output"][-1], strict=True)
    ResponseUsage.model_validate(raw["usage"], strict=True)
    if mode != "strict":
        assert _compact(client).output[-1].type == "compaction"
        return
    with pytest.raises(openai.APIResponseValidationError) as err:
        _compact(client)
    cause = err.value.__cause__
    locations = {tuple(e["loc"][:2]) for e in cause.errors()}
    assert locations <= {("output", 0), ("output", 1)}, locations


def test_compacted_output_starts_a_new_chain(client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    compacted = _compact(lenient)
    items = [item.model_dump(exclude_none=True) for item in compacted.output]
    items.append({"role": "user", "content": "Continue from here."})
    response = client.responses.create(model=FAKE, input=items, store=True)
    assert response.status == "completed"
    assert response.output_text == "You said: Continue from here."
    listed = client.responses.input_items.list(response.id, order="asc")
    assert [item.type for item in listed.data] == ["message", "message", "compaction", "message"]


def test_compacted_output_continues_over_websocket(client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    compacted = _compact(lenient)
    items = [item.model_dump(exclude_none=True) for item in compacted.output]
    items.append({"role": "user", "content": "Reply with exactly: compacted"})
    pytest.importorskip("websockets", reason="needs openai[realtime]")
    with client.responses.connect() as connection:
        connection.response.create(model=FAKE, input=items, store=False, tools=[])
        for event in connection:
            if event.type in ("response.completed", "response.failed", "error"):
                break
        assert event.type == "response.completed", event
        assert event.response.output_text == "You said: Reply with exactly: compacted"


def test_altered_compaction_item_is_a_400(client: openai.OpenAI, lenient: openai.OpenAI) -> None:
    compacted = _compact(lenient)
    item = compacted.output[-1].model_dump(exclude_none=True)
    content = item["encrypted_content"]
    item["encrypted_content"] = content[:-1] + ("B" if content.endswith("A") else "A")
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=FAKE, input=[item])
    assert err.value.code == "invalid_encrypted_content"
    assert err.value.param == "input"


def test_another_orgs_compaction_item_is_a_400(
    lenient: openai.OpenAI, make_client, other_key: str
) -> None:
    item = _compact(lenient).output[-1].model_dump(exclude_none=True)
    other = make_client(api_key=other_key)
    with pytest.raises(openai.BadRequestError) as err:
        other.responses.create(model=FAKE, input=[item])
    assert err.value.code == "invalid_encrypted_content"


def test_compact_without_model_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.post(
            "/responses/compact",
            body={"input": CONVERSATION},
            cast_to=object,
        )
    assert err.value.param == "model"


def test_input_tokens_count_uses_the_models_tokenizer(client: openai.OpenAI) -> None:
    counted = client.responses.input_tokens.count(model="fake/gpt-4o", input="Hello, world!")
    assert counted.object == "response.input_tokens"
    # o200k_base: 4 text tokens + 1 role + 3 framing + 3 reply priming.
    assert counted.input_tokens == 11
    longer = client.responses.input_tokens.count(
        model="fake/gpt-4o", input="Hello, world!", instructions="Be brief."
    )
    assert longer.input_tokens > counted.input_tokens


def test_input_tokens_refuses_tools_like_create(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {}, "strict": True}]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.input_tokens.count(model=FAKE, input="hi", tools=tools)
    assert err.value.param == "tools"
