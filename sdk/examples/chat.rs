//! Chat Completions with a tool: the model calls `get_weather`, we answer
//! with its output, and stream the final answer.
//!
//! `MANIAC_API_KEY=… cargo run -p maniac-sdk --example chat`

use futures::StreamExt;
use maniac_sdk::{Client, types};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("MANIAC_BASE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let client = Client::with_key(&base, &std::env::var("MANIAC_API_KEY")?)?;
    let model =
        std::env::var("MANIAC_MODEL").unwrap_or_else(|_| "echo/echo".into());
    let parameters = serde_json::json!({
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    });
    let tools = vec![types::ChatTool {
        type_: types::FunctionType::Function,
        function: types::FunctionDefinition {
            name: "get_weather".into(),
            description: Some("The weather of a city".into()),
            parameters: serde_json::from_value(parameters)?,
            strict: None,
        },
    }];
    let mut messages = vec![types::ChatMessage::User {
        content: types::ChatContent::String("Paris".into()),
        name: None,
    }];
    // 1. The model calls the tool.
    let first = client
        .chat_completion_create()
        .body(
            types::CreateChatCompletion::builder()
                .model(model.clone())
                .messages(messages.clone())
                .tools(Some(tools.clone()))
                .tool_choice(Some(types::ChatToolChoice::ToolChoiceMode(
                    types::ToolChoiceMode::Required,
                ))),
        )
        .send()
        .await?
        .into_inner();
    let calls = first.choices[0].message.tool_calls.clone().unwrap_or_default();
    println!("{} called {} tool(s)", first.provider, calls.len());
    messages.push(types::ChatMessage::Assistant {
        content: None,
        refusal: None,
        tool_calls: Some(calls.clone()),
        name: None,
        annotations: None,
        reasoning_content: None,
        audio: None,
        function_call: None,
    });
    // 2. We run it and give the output back.
    for call in &calls {
        println!("  {}({})", call.function.name, call.function.arguments);
        messages.push(types::ChatMessage::Tool {
            content: types::ChatContent::String("sunny, 21 °C".into()),
            tool_call_id: call.id.clone(),
        });
    }
    // 3. The final answer, streamed.
    let mut chunks = client
        .create_chat_stream(
            types::CreateChatCompletion::builder()
                .model(model)
                .messages(messages)
                .tools(Some(tools)),
        )
        .await?;
    while let Some(chunk) = chunks.next().await {
        for choice in chunk?.choices {
            print!("{}", choice.delta.content.unwrap_or_default());
        }
    }
    println!();
    Ok(())
}
