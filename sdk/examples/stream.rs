//! Stream a response: print text deltas as they arrive.
//!
//! `MANIAC_API_KEY=… cargo run -p maniac-sdk --example stream`

use futures::StreamExt;
use maniac_sdk::{Client, types};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("MANIAC_BASE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let client = Client::with_key(&base, &std::env::var("MANIAC_API_KEY")?)?;
    let model =
        std::env::var("MANIAC_MODEL").unwrap_or_else(|_| "echo/demo".into());
    let mut events = client
        .create_stream(types::CreateResponse::builder().model(model).input(
            types::Input::from("Stream this sentence back to me, please."),
        ))
        .await?;
    let mut count = 0;
    while let Some(event) = events.next().await {
        let event = event?;
        count += 1;
        if let Some(delta) = event.text_delta() {
            print!("{delta}");
        }
        if event.is_terminal() {
            println!("\n[{}] after {count} events", event.type_name());
        }
    }
    Ok(())
}
