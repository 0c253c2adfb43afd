//! The chat builder's stream and its whole completion say the same thing,
//! for any mix of choices, text, reasoning, refusals, logprobs and
//! tool-call fragments; and every chunk follows OpenAI's rules.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::builder::{ChatBuilder, ChatHead};
use crate::engine::builder::Ending;
use crate::engine::run::RunBuilder;
use crate::providers::{
    AnswerMeta, Delta, FinishReason, ItemKind, ProviderEvent, Usage,
};

fn head(n: u32) -> ChatHead {
    ChatHead {
        id: "chatcmpl-test".into(),
        created: 1_700_000_000,
        model: "fake/m".into(),
        provider: "fake".into(),
        n,
        service_tier: None,
    }
}

/// Random events of an answer with `n` choices.
fn answer(rng: &mut StdRng, n: u32) -> Vec<ProviderEvent> {
    let mut evs = vec![ProviderEvent::Meta(AnswerMeta {
        system_fingerprint: Some("fp_x".into()),
        service_tier: Some("default".into()),
    })];
    for c in 0..n {
        if n > 1 {
            evs.push(ProviderEvent::Choice(c));
        }
        let base = c as usize * 100;
        if rng.random_bool(0.3) {
            evs.push(ProviderEvent::ItemStarted {
                index: base,
                kind: ItemKind::Reasoning,
            });
            for i in 0..rng.random_range(1..4) {
                evs.push(ProviderEvent::Delta {
                    index: base,
                    delta: Delta::ReasoningText(format!("r{c}.{i} ")),
                });
            }
            evs.push(ProviderEvent::ItemDone { index: base });
        }
        let calls = rng.random_range(0..3);
        if calls == 0 || rng.random_bool(0.3) {
            evs.push(ProviderEvent::ItemStarted {
                index: base + 1,
                kind: ItemKind::Message,
            });
            for i in 0..rng.random_range(0..5) {
                if rng.random_bool(0.5) {
                    evs.push(ProviderEvent::Delta {
                        index: base + 1,
                        delta: Delta::Logprobs {
                            content: vec![json!({"token": format!("t{i}"),
                                "logprob": -0.5, "bytes": null, "top_logprobs": []})],
                            refusal: vec![],
                        },
                    });
                }
                evs.push(ProviderEvent::Delta {
                    index: base + 1,
                    delta: Delta::Text(format!("w{c}.{i} ")),
                });
            }
            if rng.random_bool(0.2) {
                evs.push(ProviderEvent::Delta {
                    index: base + 1,
                    delta: Delta::Refusal("no".into()),
                });
            }
            evs.push(ProviderEvent::ItemDone { index: base + 1 });
        }
        for k in 0..calls {
            let index = base + 2 + k;
            evs.push(ProviderEvent::ItemStarted {
                index,
                kind: ItemKind::FunctionCall {
                    call_id: format!("call_{c}_{k}"),
                    name: format!("f{k}"),
                },
            });
            for piece in ["{\"a\"", ":", format!("{k}}}").as_str()] {
                evs.push(ProviderEvent::Delta {
                    index,
                    delta: Delta::Arguments(piece.to_string()),
                });
            }
            evs.push(ProviderEvent::ItemDone { index });
        }
        let finish = match (calls, rng.random_range(0..4)) {
            (_, 0) => None,
            (0, 1) => Some(FinishReason::Length),
            (0, _) => Some(FinishReason::Stop),
            _ => Some(FinishReason::ToolCalls),
        };
        if let Some(f) = finish {
            evs.push(ProviderEvent::Finish(f));
        }
    }
    evs.push(ProviderEvent::Usage(Usage {
        input: 3,
        output: 7,
        reasoning: 2,
        ..Usage::default()
    }));
    evs
}

/// The completion a client rebuilds from the chunks.
fn rebuild(frames: &[Value], n: usize) -> Value {
    let mut choices: Vec<Value> = (0..n)
        .map(|i| {
            json!({"index": i, "content": null, "refusal": null,
            "reasoning": null, "calls": [], "finish": null, "logprobs": []})
        })
        .collect();
    let push = |slot: &mut Value, s: &str| {
        let prev = slot.as_str().unwrap_or("").to_string();
        *slot = Value::String(prev + s);
    };
    for f in frames {
        for ch in f["choices"].as_array().unwrap() {
            let i = ch["index"].as_u64().unwrap() as usize;
            let c = &mut choices[i];
            let d = &ch["delta"];
            if let Some(t) = d["content"].as_str()
                && (!t.is_empty() || !c["content"].is_null())
            {
                push(&mut c["content"], t);
            }
            if let Some(t) = d["refusal"].as_str() {
                push(&mut c["refusal"], t);
            }
            if let Some(t) = d["reasoning_content"].as_str() {
                push(&mut c["reasoning"], t);
            }
            for tc in d["tool_calls"].as_array().into_iter().flatten() {
                let k = tc["index"].as_u64().unwrap() as usize;
                let calls = c["calls"].as_array_mut().unwrap();
                if tc.get("id").is_some() {
                    assert_eq!(k, calls.len());
                    calls.push(json!({"id": tc["id"], "name": tc["function"]["name"], "arguments": ""}));
                }
                push(
                    &mut calls[k]["arguments"],
                    tc["function"]["arguments"].as_str().unwrap_or(""),
                );
            }
            if let Some(lp) = ch["logprobs"]["content"].as_array() {
                c["logprobs"]
                    .as_array_mut()
                    .unwrap()
                    .extend(lp.iter().cloned());
            }
            if !ch["finish_reason"].is_null() {
                assert!(c["finish"].is_null(), "two finishes: {f}");
                c["finish"] = ch["finish_reason"].clone();
            }
        }
    }
    Value::Array(choices)
}

/// The same view of a whole completion.
fn view(c: &Value) -> Value {
    Value::Array(
        c["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ch| {
                let m = &ch["message"];
                let content = match m["content"].as_str() {
                    Some("") => Value::Null,
                    _ => m["content"].clone(),
                };
                json!({"index": ch["index"], "content": content, "refusal": m["refusal"],
                    "reasoning": m.get("reasoning_content").cloned().unwrap_or(Value::Null),
                    "calls": m.get("tool_calls").and_then(|t| t.as_array()).map(|t| t.iter().map(|tc| json!({
                        "id": tc["id"], "name": tc["function"]["name"], "arguments": tc["function"]["arguments"]})).collect::<Vec<_>>()).unwrap_or_default(),
                    "finish": ch["finish_reason"],
                    "logprobs": ch["logprobs"]["content"].as_array().cloned().unwrap_or_default()})
            })
            .collect(),
    )
}

#[test]
fn stream_and_whole_completion_agree_for_any_answer() {
    for seed in 0..400u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.random_range(1..4);
        let include_usage = rng.random_bool(0.5);
        let evs = answer(&mut rng, n);
        let mut s = ChatBuilder::new(head(n), true, include_usage);
        let mut j = ChatBuilder::new(head(n), false, false);
        let mut frames = Vec::new();
        for ev in evs {
            j.apply(ev.clone());
            s.apply(ev);
            frames.extend(s.drain());
        }
        s.end(&Ending::Done);
        j.end(&Ending::Done);
        frames.extend(s.drain());
        assert!(j.drain().is_empty(), "the JSON builder emits nothing");
        let text: Vec<String> = frames
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        assert_eq!(text.last().unwrap(), "data: [DONE]\n\n", "seed {seed}");
        let chunks: Vec<Value> = text[..text.len() - 1]
            .iter()
            .map(|t| {
                let d = t
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                serde_json::from_str(d).unwrap()
            })
            .collect();
        let (body, usage) = if include_usage {
            let (last, body) = chunks.split_last().unwrap();
            assert_eq!(last["choices"], json!([]), "seed {seed}");
            assert_eq!(last["usage"]["total_tokens"], 10);
            assert_eq!(
                last["usage"]["completion_tokens_details"]["reasoning_tokens"],
                2
            );
            (body, true)
        } else {
            (&chunks[..], false)
        };
        for c in body {
            assert_eq!(c["id"], "chatcmpl-test");
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["system_fingerprint"], "fp_x", "seed {seed}: {c}");
            assert_eq!(c.get("usage").is_some(), usage);
            assert_eq!(c["choices"].as_array().unwrap().len(), 1);
        }
        // Per choice: role on the first chunk only, finish on the last.
        for i in 0..n as u64 {
            let of: Vec<&Value> = body
                .iter()
                .map(|c| &c["choices"][0])
                .filter(|ch| ch["index"] == i)
                .collect();
            assert_eq!(of[0]["delta"]["role"], "assistant", "seed {seed}");
            assert!(of[1..].iter().all(|ch| ch["delta"].get("role").is_none()));
            assert!(
                !of.last().unwrap()["finish_reason"].is_null(),
                "seed {seed}"
            );
        }
        let whole = serde_json::to_value(j.completion()).unwrap();
        assert_eq!(rebuild(body, n as usize), view(&whole), "seed {seed}");
        assert_eq!(whole["usage"]["total_tokens"], 10);
        assert_eq!(whole["system_fingerprint"], "fp_x");
    }
}

#[test]
fn a_failure_after_the_first_chunk_is_an_error_then_done() {
    let mut b = ChatBuilder::new(head(1), true, true);
    b.apply(ProviderEvent::Delta { index: 1, delta: Delta::Text("hi".into()) });
    b.end(&Ending::Failed {
        code: "server_error".into(),
        kind: "server_error".into(),
        message: "upstream broke".into(),
    });
    let frames: Vec<String> = b
        .drain()
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).unwrap())
        .collect();
    let n = frames.len();
    assert_eq!(frames[n - 1], "data: [DONE]\n\n");
    let err: Value = serde_json::from_str(
        frames[n - 2].strip_prefix("data: ").unwrap().trim_end(),
    )
    .unwrap();
    assert_eq!(
        err,
        json!({"error": {"message": "upstream broke", "type": "server_error",
            "param": null, "code": "server_error"}})
    );
    assert_eq!(b.status(), crate::api::ResponseStatus::Failed);
}
