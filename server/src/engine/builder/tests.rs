//! Property tests of the builder: for any sequence of provider events,
//! the emitted stream is a valid Responses taxonomy and the final output
//! equals what the deltas said.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::*;

fn response() -> Response {
    serde_json::from_value(serde_json::json!({
        "id": "resp_test", "object": "response", "created_at": 1,
        "status": "in_progress", "background": false, "error": null,
        "incomplete_details": null, "instructions": null,
        "max_output_tokens": null, "max_tool_calls": null, "model": "p/m",
        "output": [], "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "service_tier": "default", "store": false, "temperature": 1.0,
        "top_p": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
        "top_logprobs": 0, "text": {"format": {"type": "text"}},
        "tool_choice": "auto", "tools": [], "truncation": "disabled",
        "usage": null, "user": null, "safety_identifier": null,
        "prompt_cache_key": null, "metadata": {}, "provider": "p",
        "tags": [], "trace": null
    }))
    .expect("a response")
}

fn random_events(rng: &mut StdRng) -> Vec<ProviderEvent> {
    let n_items = rng.random_range(0..4);
    let mut open: Vec<(usize, u8)> =
        (0..n_items).map(|i| (i * 3 + 1, rng.random_range(0..3u8))).collect();
    let mut started = HashSet::new();
    let mut evs = Vec::new();
    let words = ["a", "bc ", "déf", " 日本", "{\"k\":1}", ""];
    while !open.is_empty() {
        let k = rng.random_range(0..open.len());
        let (index, kind) = open[k];
        if !started.contains(&index) && (kind == 1 || rng.random_bool(0.7)) {
            started.insert(index);
            let kind = match kind {
                0 => ItemKind::Message,
                1 => ItemKind::FunctionCall {
                    call_id: format!("call_{index}"),
                    name: "f".into(),
                },
                _ => ItemKind::Reasoning,
            };
            evs.push(ProviderEvent::ItemStarted { index, kind });
            continue;
        }
        started.insert(index);
        let w = words[rng.random_range(0..words.len())].to_string();
        let delta = match (kind, rng.random_range(0..3)) {
            (0, 0 | 1) => Delta::Text(w),
            (0, _) => Delta::Refusal(w),
            (1, _) => Delta::Arguments(w),
            (_, 0) => Delta::ReasoningText(w),
            (_, 1) => Delta::ReasoningSummary {
                part: rng.random_range(0..2),
                text: w,
            },
            (_, _) => Delta::EncryptedReasoning(w),
        };
        evs.push(ProviderEvent::Delta { index, delta });
        if rng.random_bool(0.15) {
            evs.push(ProviderEvent::ItemDone { index });
            open.remove(k);
        } else if rng.random_bool(0.05) {
            open.remove(k);
        }
        if rng.random_bool(0.05) {
            evs.push(ProviderEvent::Usage(Usage {
                input: rng.random_range(0..9),
                ..Usage::default()
            }));
        }
    }
    match rng.random_range(0..4) {
        0 => evs.push(ProviderEvent::Finish(FinishReason::Length)),
        1 => evs.push(ProviderEvent::Finish(FinishReason::Stop)),
        _ => {}
    }
    evs
}

/// Checks the taxonomy and returns the text each item's deltas built,
/// keyed by `(output_index, channel)`.
fn check_stream(events: &[Value]) -> HashMap<(i64, String), String> {
    let mut added = HashSet::new();
    let mut done_items = HashSet::new();
    let mut parts_open = HashSet::new();
    let mut summaries_open = HashSet::new();
    let mut built: HashMap<(i64, String), String> = HashMap::new();
    let mut terminal = 0;
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev["sequence_number"], i as i64, "consecutive: {ev}");
        let t = ev["type"].as_str().expect("type");
        assert_eq!(terminal, 0, "nothing after the terminal event: {t}");
        let oi = ev["output_index"].as_i64().unwrap_or(-1);
        let ci = ev["content_index"].as_i64().unwrap_or(-1);
        let si = ev["summary_index"].as_i64().unwrap_or(-1);
        let item_live = || {
            assert!(added.contains(&oi), "{t} before its item: {ev}");
            assert!(!done_items.contains(&oi), "{t} after item done: {ev}");
        };
        match t {
            "response.created" => assert_eq!(i, 0),
            "response.in_progress" => {}
            "response.output_item.added" => {
                assert_eq!(oi, added.len() as i64, "indexes in order");
                assert!(added.insert(oi));
            }
            "response.output_item.done" => {
                item_live();
                assert!(
                    !parts_open.iter().any(|(o, _)| *o == oi)
                        && !summaries_open.iter().any(|(o, _)| *o == oi),
                    "parts closed before the item: {ev}"
                );
                done_items.insert(oi);
            }
            "response.content_part.added" => {
                item_live();
                assert!(parts_open.insert((oi, ci)));
            }
            "response.content_part.done" => {
                item_live();
                assert!(parts_open.remove(&(oi, ci)), "part done twice {ev}");
            }
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.reasoning_text.delta" => {
                item_live();
                assert!(parts_open.contains(&(oi, ci)), "delta before part");
                let ch = format!("{}:{ci}", &t[..t.len() - 6]);
                built
                    .entry((oi, ch))
                    .or_default()
                    .push_str(ev["delta"].as_str().unwrap());
            }
            "response.output_text.done"
            | "response.refusal.done"
            | "response.reasoning_text.done" => {
                item_live();
                assert!(parts_open.contains(&(oi, ci)));
                let ch = format!("{}:{ci}", &t[..t.len() - 5]);
                let field =
                    if t.contains("refusal") { "refusal" } else { "text" };
                let text = built.get(&(oi, ch)).cloned().unwrap_or_default();
                assert_eq!(ev[field].as_str().unwrap(), text, "{ev}");
            }
            "response.reasoning_summary_part.added" => {
                item_live();
                assert!(summaries_open.insert((oi, si)));
            }
            "response.reasoning_summary_part.done" => {
                item_live();
                assert!(summaries_open.remove(&(oi, si)));
            }
            "response.reasoning_summary_text.delta" => {
                item_live();
                assert!(summaries_open.contains(&(oi, si)));
                built
                    .entry((oi, format!("summary:{si}")))
                    .or_default()
                    .push_str(ev["delta"].as_str().unwrap());
            }
            "response.reasoning_summary_text.done" => {
                item_live();
                let text = built
                    .get(&(oi, format!("summary:{si}")))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(ev["text"].as_str().unwrap(), text);
            }
            "response.function_call_arguments.delta" => {
                item_live();
                built
                    .entry((oi, "arguments".into()))
                    .or_default()
                    .push_str(ev["delta"].as_str().unwrap());
            }
            "response.function_call_arguments.done" => {
                item_live();
                let text = built
                    .get(&(oi, "arguments".into()))
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(ev["arguments"].as_str().unwrap(), text);
            }
            "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "error" => {
                terminal += 1;
                assert_eq!(
                    done_items.len(),
                    added.len(),
                    "every item done before the end"
                );
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert_eq!(terminal, 1, "exactly one terminal event");
    built
}

/// What the final output says, in the same keys.
fn output_texts(r: &Response) -> HashMap<(i64, String), String> {
    let mut out = HashMap::new();
    for (oi, item) in r.output.iter().enumerate() {
        let oi = oi as i64;
        match item {
            OutputItem::Message { content, .. } => {
                for (ci, c) in content.iter().enumerate() {
                    let (ch, text) = match c {
                        OutputContent::OutputText { text, .. } => {
                            ("response.output_text", text)
                        }
                        OutputContent::Refusal { refusal } => {
                            ("response.refusal", refusal)
                        }
                    };
                    out.insert((oi, format!("{ch}:{ci}")), text.clone());
                }
            }
            OutputItem::Reasoning { summary, content, .. } => {
                for (ci, ReasoningContent::ReasoningText { text }) in
                    content.iter().enumerate()
                {
                    out.insert(
                        (oi, format!("response.reasoning_text:{ci}")),
                        text.clone(),
                    );
                }
                for (si, SummaryPart::SummaryText { text }) in
                    summary.iter().enumerate()
                {
                    out.insert((oi, format!("summary:{si}")), text.clone());
                }
            }
            OutputItem::FunctionCall { arguments, .. } => {
                out.insert((oi, "arguments".into()), arguments.clone());
            }
        }
    }
    out
}

#[test]
fn any_provider_events_give_a_valid_stream_whose_output_is_its_deltas() {
    for seed in 0..500u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let events = random_events(&mut rng);
        let mut b = ResponseBuilder::new(response(), 0, true, true);
        b.start();
        let mut frames = b.drain();
        for ev in events.clone() {
            b.apply(ev);
            frames.extend(b.drain());
        }
        match rng.random_range(0..5) {
            0 => b.fail("server_error", "server_error", "boom"),
            1 => b.cancel(),
            _ => b.complete(),
        }
        frames.extend(b.drain());
        let parsed: Vec<Value> = frames
            .iter()
            .map(|f| serde_json::from_str(f.json()).expect("event JSON"))
            .collect();
        let built = check_stream(&parsed);
        let mut finals = output_texts(b.snapshot());
        // Empty parts appear in the output but never got a delta.
        finals.retain(|k, v| !v.is_empty() || built.contains_key(k));
        let built: HashMap<_, _> =
            built.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        finals.retain(|_, v| !v.is_empty());
        assert_eq!(finals, built, "seed {seed}: {events:?}");

        // The JSON path (no events) builds the same output.
        let mut quiet = ResponseBuilder::new(response(), 0, false, false);
        quiet.apply_all(Completion { events });
        quiet.complete();
        if b.snapshot().status != ResponseStatus::Failed
            && b.snapshot().status != ResponseStatus::Cancelled
        {
            let without_ids = |r: &Response| {
                let mut v = serde_json::to_value(&r.output).unwrap();
                for item in v.as_array_mut().unwrap() {
                    item.as_object_mut().unwrap().remove("id");
                }
                v
            };
            assert_eq!(
                without_ids(quiet.snapshot()),
                without_ids(b.snapshot()),
                "seed {seed}"
            );
        }
    }
}

#[test]
fn reasoning_then_message_is_two_items_with_their_events() {
    let mut b = ResponseBuilder::new(response(), 0, true, false);
    b.start();
    for ev in [
        ProviderEvent::ItemStarted { index: 0, kind: ItemKind::Reasoning },
        ProviderEvent::Delta {
            index: 0,
            delta: Delta::ReasoningText("think".into()),
        },
        ProviderEvent::ItemDone { index: 0 },
        ProviderEvent::Delta { index: 1, delta: Delta::Text("hi".into()) },
        ProviderEvent::Finish(FinishReason::Stop),
        ProviderEvent::Usage(Usage {
            input: 3,
            output: 5,
            reasoning: 2,
            ..Usage::default()
        }),
    ] {
        b.apply(ev);
    }
    b.complete();
    let types: Vec<String> = b
        .drain()
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(e.json()).unwrap();
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let r = b.snapshot();
    let usage = r.usage.as_ref().unwrap();
    assert_eq!(usage.output_tokens_details.reasoning_tokens, 2);
    let json = serde_json::to_value(&r.output).unwrap();
    assert_eq!(json[0]["type"], "reasoning");
    assert_eq!(json[0]["summary"], serde_json::json!([]));
    assert_eq!(json[0]["content"][0]["text"], "think");
    assert_eq!(json[1]["content"][0]["text"], "hi");
}
