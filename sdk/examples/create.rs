//! Create a response and print its text.
//!
//! `MANIAC_BASE_URL=http://127.0.0.1:8080 MANIAC_API_KEY=… cargo run -p maniac-sdk --example create`

use maniac_sdk::{Client, ResponseExt, types};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = connect()?;
    let model =
        std::env::var("MANIAC_MODEL").unwrap_or_else(|_| "echo/demo".into());
    let response = client
        .response_create()
        .body(
            types::CreateResponse::builder()
                .model(model)
                .instructions(Some("You are a helpful assistant.".to_string()))
                .input(types::Input::from(
                    "Summarize the Maniac gateway in one line.",
                )),
        )
        .send()
        .await?
        .into_inner();
    println!(
        "{} ({:?}): {}",
        response.id,
        response.status,
        response.output_text()
    );
    Ok(())
}

fn connect() -> Result<Client, Box<dyn std::error::Error>> {
    let base = std::env::var("MANIAC_BASE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("MANIAC_API_KEY")?;
    Ok(Client::with_key(&base, &key)?)
}
