//! The generated Rust SDK (`maniac-sdk`) against a real gateway: every
//! operation, typed event streams of create and resume, and typed errors.

use std::time::Duration;

use futures::StreamExt;
use maniac_sdk::{ResponseExt, SdkError, StreamEvent, types};
use maniac_tests::gateway;

fn request(model: &str, input: &str) -> types::builder::CreateResponse {
    types::CreateResponse::builder()
        .model(model.to_string())
        .input(types::Input::from(input))
}

#[tokio::test]
async fn sdk_create_view_items_delete() {
    let gw = gateway!();
    let client = gw.sdk(&gw.key);
    let first = client
        .response_create()
        .body(request("echo/x", "My name is Ada"))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.output_text(), "My name is Ada");
    assert_eq!(first.status, types::ResponseStatus::Completed);
    assert_eq!(first.provider, "echo");
    let second = client
        .response_create()
        .body(
            request("fake/m", "What is my name?")
                .previous_response_id(Some(first.id.clone())),
        )
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.output_text(), "You said: What is my name?");
    let viewed = client
        .response_view()
        .response_id(&second.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(viewed.id, second.id);
    assert_eq!(viewed.output_text(), second.output_text());
    let items = client
        .response_input_items_list()
        .response_id(&second.id)
        .order(types::Order::Asc)
        .limit(2)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(items.data.len(), 2);
    assert!(items.has_more);
    let deleted = client
        .response_delete()
        .response_id(&first.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    let err =
        client.response_view().response_id(&first.id).send().await.unwrap_err();
    let err = SdkError::from(err);
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    assert!(err.api_error().unwrap().message.contains("not found"));
}

#[tokio::test]
async fn sdk_typed_errors_carry_param_and_code() {
    let gw = gateway!();
    let client = gw.sdk(&gw.key);
    let err = client
        .response_create()
        .body(request("echo/x", "x").temperature(Some(5.0)))
        .send()
        .await
        .unwrap_err();
    let err = SdkError::from(err);
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    let api = err.api_error().unwrap();
    assert_eq!(api.param.as_deref(), Some("temperature"));
    assert_eq!(api.code.as_deref(), Some("invalid_value"));
    let bad = gw.sdk("sk-mn-nope");
    let err = SdkError::from(
        bad.response_view().response_id("resp_x").send().await.unwrap_err(),
    );
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
}

#[tokio::test]
async fn sdk_create_stream_yields_typed_events_in_order() {
    let gw = gateway!();
    let client = gw.sdk(&gw.key);
    let mut stream =
        client.create_stream(request("fake/m", "one two")).await.unwrap();
    let mut names = Vec::new();
    let mut text = String::new();
    let mut last = None;
    while let Some(ev) = stream.next().await {
        let ev = ev.unwrap();
        assert!(
            matches!(ev, StreamEvent::Known(_)),
            "every event is typed: {}",
            ev.type_name()
        );
        assert_eq!(ev.sequence_number(), Some(names.len() as i64));
        if let Some(d) = ev.text_delta() {
            text.push_str(d);
        }
        names.push(ev.type_name().to_string());
        if ev.is_terminal() {
            last = ev.response().cloned();
        }
    }
    assert_eq!(names.first().unwrap(), "response.created");
    assert_eq!(names.last().unwrap(), "response.completed");
    assert_eq!(text, "You said: one two");
    assert_eq!(last.unwrap().output_text(), "You said: one two");
    // Errors before the first event are typed API errors.
    let err = client
        .create_stream(request("fake/m", "FAULT:429"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
}

#[tokio::test]
async fn sdk_background_resume_wait_and_cancel() {
    let gw = gateway!();
    let client = gw.sdk(&gw.key);
    let queued = client
        .response_create()
        .body(request("fake/m", "SLOW:10 WORDS:12").background(Some(true)))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.status, types::ResponseStatus::Queued);
    let done = client
        .wait_for_done(
            &queued.id,
            Duration::from_millis(50),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(done.status, types::ResponseStatus::Completed);
    // Resume from a cursor after the run ended: typed events, then the end.
    let resumed = client.resume_stream(&queued.id, Some(3)).await.unwrap();
    let evs: Vec<StreamEvent> = resumed.map(|e| e.unwrap()).collect().await;
    assert_eq!(evs[0].sequence_number(), Some(4));
    assert_eq!(evs.last().unwrap().type_name(), "response.completed");
    let final_response = client
        .resume_stream(&queued.id, None)
        .await
        .unwrap()
        .final_response()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(final_response.output_text(), done.output_text());
    // Cancel a running run.
    let running = client
        .response_create()
        .body(request("fake/m", "SLOW:100 WORDS:100").background(Some(true)))
        .send()
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let cancelled = client
        .response_cancel()
        .response_id(&running.id)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, types::ResponseStatus::Cancelled);
}
