//! Two chained turns: the second sees the first through
//! `previous_response_id`.
//!
//! `MANIAC_API_KEY=… cargo run -p maniac-sdk --example chain`

use maniac_sdk::{Client, ResponseExt, types};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("MANIAC_BASE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let client = Client::with_key(&base, &std::env::var("MANIAC_API_KEY")?)?;
    let model =
        std::env::var("MANIAC_MODEL").unwrap_or_else(|_| "echo/demo".into());
    let first = client
        .response_create()
        .body(
            types::CreateResponse::builder()
                .model(model.clone())
                .input(types::Input::from("My name is Ada."))
                .store(Some(true)),
        )
        .send()
        .await?
        .into_inner();
    let second = client
        .response_create()
        .body(
            types::CreateResponse::builder()
                .model(model)
                .input(types::Input::from("What's my name?"))
                .previous_response_id(Some(first.id.clone()))
                .store(Some(true)),
        )
        .send()
        .await?
        .into_inner();
    let items = client
        .response_input_items_list()
        .response_id(&second.id)
        .send()
        .await?
        .into_inner();
    println!("turn 1: {}", first.output_text());
    println!(
        "turn 2: {} (its context has {} items)",
        second.output_text(),
        items.data.len()
    );
    Ok(())
}
