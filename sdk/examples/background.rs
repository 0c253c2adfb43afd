//! A background run: submit, poll until done; then a second one that is
//! cancelled while it runs.
//!
//! `MANIAC_API_KEY=… cargo run -p maniac-sdk --example background`

use std::time::Duration;

use maniac_sdk::{Client, ResponseExt, types};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("MANIAC_BASE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let client = Client::with_key(&base, &std::env::var("MANIAC_API_KEY")?)?;
    let model =
        std::env::var("MANIAC_MODEL").unwrap_or_else(|_| "echo/demo".into());
    let request = |input: &str| {
        types::CreateResponse::builder()
            .model(model.clone())
            .input(types::Input::from(input))
            .background(Some(true))
            .store(Some(true))
    };
    let job = client
        .response_create()
        .body(request("Write a long essay."))
        .send()
        .await?
        .into_inner();
    println!("queued {} ({:?})", job.id, job.status);
    let done = client
        .wait_for_done(
            &job.id,
            Duration::from_millis(200),
            Duration::from_secs(120),
        )
        .await?;
    println!("{:?}: {}", done.status, done.output_text());

    let long = std::env::var("MANIAC_LONG_INPUT")
        .unwrap_or_else(|_| "Write a very long essay.".into());
    let job = client
        .response_create()
        .body(request(&long))
        .send()
        .await?
        .into_inner();
    // A run that already finished cannot be cancelled (400): say so.
    match client.response_cancel().response_id(&job.id).send().await {
        Ok(r) => {
            let r = r.into_inner();
            println!("cancelled {}: {:?}", r.id, r.status)
        }
        Err(e) => println!("not cancelled: {}", maniac_sdk::SdkError::from(e)),
    }
    Ok(())
}
