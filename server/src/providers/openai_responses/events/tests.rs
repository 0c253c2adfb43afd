//! The event parser against OpenAI-shaped streams and answers.

use super::*;
use serde_json::json;

fn run(events: Vec<Value>) -> Result<Vec<ProviderEvent>, ProviderError> {
    let mut p = EventParser::default();
    let mut out = Vec::new();
    for e in events {
        p.event(serde_json::from_value(e).unwrap(), &mut out)?;
    }
    assert!(p.finished);
    Ok(out)
}

fn completed(status: &str, extra: Value) -> Value {
    let mut r = json!({"status": status, "output": [],
        "usage": {"input_tokens": 5, "output_tokens": 9,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens_details": {"reasoning_tokens": 4}}});
    if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    json!({"type": format!("response.{status}"), "response": r})
}

#[test]
fn reasoning_then_a_streamed_call_become_items_in_order() {
    let out = run(vec![
        json!({"type": "response.created", "response": {"status": "in_progress"}}),
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
        json!({"type": "response.reasoning_summary_text.delta",
            "output_index": 0, "summary_index": 0, "delta": "hm"}),
        json!({"type": "response.output_item.done", "output_index": 0,
            "item": {"type": "reasoning", "id": "rs_1", "encrypted_content": "enc-1",
                "summary": [{"type": "summary_text", "text": "hm"}]}}),
        json!({"type": "response.output_item.added", "output_index": 1,
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                "name": "f", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{\"a\""}),
        json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": ":1}"}),
        json!({"type": "response.function_call_arguments.done", "output_index": 1, "arguments": "{\"a\":1}"}),
        json!({"type": "response.output_item.done", "output_index": 1,
            "item": {"type": "function_call", "call_id": "call_1", "name": "f",
                "arguments": "{\"a\":1}", "status": "completed"}}),
        completed("completed", json!({})),
    ])
    .unwrap();
    use ProviderEvent as E;
    let call =
        ItemKind::FunctionCall { call_id: "call_1".into(), name: "f".into() };
    assert_eq!(
        out,
        vec![
            E::ItemStarted { index: 0, kind: ItemKind::Reasoning },
            E::Delta {
                index: 0,
                delta: Delta::ReasoningSummary { part: 0, text: "hm".into() }
            },
            E::Delta {
                index: 0,
                delta: Delta::EncryptedReasoning("openai:enc-1".into())
            },
            E::ItemDone { index: 0 },
            E::ItemStarted { index: 1, kind: call },
            E::Delta { index: 1, delta: Delta::Arguments("{\"a\"".into()) },
            E::Delta { index: 1, delta: Delta::Arguments(":1}".into()) },
            E::ItemDone { index: 1 },
            E::Usage(Usage {
                input: 5,
                cached: 2,
                cache_write: 0,
                output: 9,
                reasoning: 4
            }),
            E::Finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn a_cut_message_closes_after_the_length_finish() {
    let out = run(vec![
        json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"type": "message", "content": []}}),
        json!({"type": "response.output_text.delta", "output_index": 0, "delta": "a b"}),
        json!({"type": "response.output_item.done", "output_index": 0,
            "item": {"type": "message", "status": "incomplete"}}),
        completed("incomplete", json!({"incomplete_details": {"reason": "max_output_tokens"}})),
    ])
    .unwrap();
    let n = out.len();
    assert_eq!(out[n - 2], ProviderEvent::Finish(FinishReason::Length));
    assert_eq!(out[n - 1], ProviderEvent::ItemDone { index: 0 });
}

#[test]
fn failures_mid_stream_are_errors() {
    let table = [
        (
            json!({"type": "response.failed", "response": {"status": "failed",
            "error": {"code": "server_error", "message": "boom"}}}),
            "boom (code: server_error)",
        ),
        (
            json!({"type": "error", "sequence_number": 3,
            "error": {"type": "too_many_requests", "code": "too_many_requests", "message": "slow down"}}),
            "slow down (code: too_many_requests)",
        ),
        (
            json!({"type": "error", "code": null, "message": "flat", "param": null}),
            "flat",
        ),
    ];
    for (ev, want) in table {
        let mut p = EventParser::default();
        let got = p.event(
            serde_json::from_value(ev.clone()).unwrap(),
            &mut Vec::new(),
        );
        match got {
            Err(ProviderError::Stream(r)) => {
                assert_eq!(r.to_string(), want, "{ev}")
            }
            other => panic!("{ev}: {other:?}"),
        }
    }
}

#[test]
fn a_whole_response_fills_items_from_the_output() {
    let r: ResponseObject = serde_json::from_value(json!({
        "status": "incomplete", "incomplete_details": {"reason": "content_filter"},
        "output": [
            {"type": "web_search_call", "id": "ws_1"},
            {"type": "message", "status": "incomplete", "content": [
                {"type": "output_text", "text": "hi", "annotations": []},
                {"type": "refusal", "refusal": "no"}]}
        ]
    }))
    .unwrap();
    let c = EventParser::completion(r).unwrap();
    use ProviderEvent as E;
    assert_eq!(
        c.events,
        vec![
            E::ItemStarted { index: 1, kind: ItemKind::Message },
            E::Delta { index: 1, delta: Delta::Text("hi".into()) },
            E::Delta { index: 1, delta: Delta::Refusal("no".into()) },
            E::Finish(FinishReason::ContentFilter),
            E::ItemDone { index: 1 },
        ]
    );
    let failed: ResponseObject = serde_json::from_value(json!({
        "status": "failed", "error": {"code": "server_error", "message": "x"}}))
    .unwrap();
    assert!(matches!(
        EventParser::completion(failed),
        Err(ProviderError::Stream(_))
    ));
}
