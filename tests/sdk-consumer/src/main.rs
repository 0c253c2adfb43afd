//! A small app built on `maniac-sdk` the way a user's would be: it creates
//! a response, streams one, chains a turn, runs a background job to
//! completion, and prints what it got. Exits non-zero on the first step
//! that fails or answers something unexpected.
//!
//! `MANIAC_BASE_URL=http://127.0.0.1:8080/v1 MANIAC_KEY=… cargo run`
//! (`MANIAC_MODEL` defaults to `echo/test`, which answers with the last user
//! message.) To add a step, write an `async fn(&App) -> Outcome` and list it
//! in [`STEPS`].

use std::{future::Future, pin::Pin, time::Duration};

use futures::StreamExt;
use maniac_sdk::{Client, ResponseExt, types};

type Error = Box<dyn std::error::Error>;
/// What a step prints when it passes.
type Outcome = Result<String, Error>;
type Step = for<'a> fn(&'a App) -> Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// The steps, run in order.
const STEPS: &[(&str, Step)] = &[
    ("create", |app| Box::pin(create(app))),
    ("stream", |app| Box::pin(stream(app))),
    ("chain", |app| Box::pin(chain(app))),
    ("background", |app| Box::pin(background(app))),
    ("models", |app| Box::pin(models(app))),
];

struct App {
    client: Client,
    model: String,
}

impl App {
    fn request(&self, input: &str) -> types::builder::CreateResponse {
        types::CreateResponse::builder()
            .model(self.model.clone())
            .input(types::Input::from(input))
    }
}

/// Fails with `what` unless `got == want`.
fn expect(what: &str, got: &str, want: &str) -> Result<(), Error> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, got {got:?}").into())
    }
}

async fn create(app: &App) -> Outcome {
    let input = "Hello from the SDK consumer";
    let response = app
        .client
        .response_create()
        .body(app.request(input))
        .send()
        .await?
        .into_inner();
    expect("status", &format!("{:?}", response.status), "Completed")?;
    expect("output_text", &response.output_text(), input)?;
    Ok(format!(
        "{} {:?}: {}",
        response.id,
        response.status,
        response.output_text()
    ))
}

async fn stream(app: &App) -> Outcome {
    let input = "Streamed, one delta at a time";
    let mut events = app.client.create_stream(app.request(input)).await?;
    let (mut count, mut text, mut last) = (0, String::new(), None);
    while let Some(event) = events.next().await {
        let event = event?;
        count += 1;
        if let Some(delta) = event.text_delta() {
            text.push_str(delta);
        }
        if event.is_terminal() {
            last = Some(event.type_name().to_string());
        }
    }
    expect("streamed text", &text, input)?;
    expect(
        "last event",
        last.as_deref().unwrap_or("none"),
        "response.completed",
    )?;
    Ok(format!("{count} events, text {text:?}"))
}

async fn chain(app: &App) -> Outcome {
    let first = app
        .client
        .response_create()
        .body(app.request("My name is Ada.").store(Some(true)))
        .send()
        .await?
        .into_inner();
    let second = app
        .client
        .response_create()
        .body(
            app.request("What is my name?")
                .store(Some(true))
                .previous_response_id(Some(first.id.clone())),
        )
        .send()
        .await?
        .into_inner();
    expect("second turn", &second.output_text(), "What is my name?")?;
    let items = app
        .client
        .response_input_items_list()
        .response_id(&second.id)
        .order(types::Order::Asc)
        .send()
        .await?
        .into_inner();
    // The second turn's context: turn 1's input and answer, then its own.
    if items.data.len() < 3 {
        return Err(
            format!("{} input items, expected 3", items.data.len()).into()
        );
    }
    Ok(format!(
        "{} -> {}: {:?}, context of {} items",
        first.id,
        second.id,
        second.output_text(),
        items.data.len()
    ))
}

async fn models(app: &App) -> Outcome {
    let list = app.client.model_list().send().await?.into_inner();
    let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
    let echo = app.client.model_view().model("echo/echo").send().await?;
    expect("owned_by", &echo.owned_by, "echo")?;
    Ok(format!("{} listed: {}", ids.len(), ids.join(", ")))
}

async fn background(app: &App) -> Outcome {
    let input = "Run this in the background";
    let job = app
        .client
        .response_create()
        .body(app.request(input).background(Some(true)).store(Some(true)))
        .send()
        .await?
        .into_inner();
    let queued = format!("{:?}", job.status);
    let done = app
        .client
        .wait_for_done(
            &job.id,
            Duration::from_millis(100),
            Duration::from_secs(60),
        )
        .await?;
    expect("final status", &format!("{:?}", done.status), "Completed")?;
    expect("output_text", &done.output_text(), input)?;
    Ok(format!(
        "{} {queued} -> {:?}: {}",
        job.id,
        done.status,
        done.output_text()
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let base_url = std::env::var("MANIAC_BASE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080/v1".to_string());
    let key = std::env::var("MANIAC_KEY")
        .map_err(|_| "set MANIAC_KEY to an API key")?;
    let app = App {
        client: Client::builder(&base_url).api_key(key).build()?,
        model: std::env::var("MANIAC_MODEL")
            .unwrap_or_else(|_| "echo/test".to_string()),
    };
    println!("maniac-sdk consumer against {base_url} with {}", app.model);
    for (name, step) in STEPS {
        match step(&app).await {
            Ok(line) => println!("ok   {name}: {line}"),
            Err(e) => {
                println!("FAIL {name}: {e}");
                return Err(format!("step {name} failed").into());
            }
        }
    }
    println!("all {} steps passed", STEPS.len());
    Ok(())
}
