//! What both backends owe `ChatStore`, written once and run against a real
//! SQLite file (`sqlite/tests.rs`) and a real PostgreSQL database
//! (`postgres/tests.rs`). Tables print every failing row with its name.

use std::fmt::Debug;

use futures::future::join_all;

use super::*;

const ORG: &str = "org_chat_a";
const OTHER: &str = "org_chat_b";
const GPT: &str = "openai/gpt-4o";
const CLAUDE: &str = "anthropic/claude";
/// A key with a quote and a dot, which must match literally.
const ODD_KEY: &str = "it's.k";

fn completion(
    id: &str,
    org: &str,
    model: &str,
    created_at: i64,
    metadata: &[(&str, &str)],
    messages: usize,
) -> NewChatCompletion {
    let metadata: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    NewChatCompletion {
        id: id.to_string(),
        org_id: org.to_string(),
        model: model.to_string(),
        metadata: serde_json::Value::Object(metadata).to_string(),
        body: format!(r#"{{"id":"{id}","object":"chat.completion"}}"#),
        messages: (0..messages)
            .map(|n| ItemRow {
                id: format!("{id}-{n}"),
                body: format!(r#"{{"role":"user","content":"{id} {n}"}}"#),
            })
            .collect(),
        created_at,
    }
}

/// Completions of `ORG`, by time e (100), b c d (200), a (300): the ids
/// sort otherwise except within the tie, which is inserted out of id
/// order, so ties must be broken by id and never by insertion, and a
/// cursor must compare times before ids.
fn fixtures() -> Vec<NewChatCompletion> {
    let billing = [("topic", "billing"), (ODD_KEY, "v.1")];
    vec![
        completion("chatcmpl-d", ORG, GPT, 200, &[("topic", "support")], 1),
        completion("chatcmpl-e", ORG, GPT, 100, &[], 0),
        completion("chatcmpl-c", ORG, CLAUDE, 200, &[("topic", "billing")], 1),
        completion("chatcmpl-b", ORG, GPT, 200, &billing, 3),
        completion(
            "chatcmpl-a",
            ORG,
            GPT,
            300,
            &[("topic", "billing"), (ODD_KEY, "v.1"), ("$.topic", "x")],
            1,
        ),
        completion("chatcmpl-b1", OTHER, GPT, 150, &billing, 2),
    ]
}

/// Collects the rows of a table whose answer differs from the expected one.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check<T: PartialEq + Debug>(&mut self, name: &str, got: T, want: T) {
        if got != want {
            self.0.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }

    fn assert_none(self, table: &str) {
        assert!(self.0.is_empty(), "{table}:\n{}", self.0.join("\n"));
    }
}

fn page_ids(page: Option<Vec<StoredChatCompletion>>) -> Option<Vec<String>> {
    page.map(|p| p.into_iter().map(|c| c.id).collect())
}

fn message_ids(page: Option<Vec<ItemRow>>) -> Option<Vec<String>> {
    page.map(|p| p.into_iter().map(|m| m.id).collect())
}

fn owned(ids: Option<&[&str]>) -> Option<Vec<String>> {
    ids.map(|ids| ids.iter().map(|s| s.to_string()).collect())
}

/// Runs every behaviour against `store`, an empty database.
pub(super) async fn exercise(store: &dyn ChatStore) {
    // Inserted concurrently, so that SQLite's writer batches them.
    let inserts =
        fixtures().into_iter().map(|c| store.insert_chat_completion(c));
    for result in join_all(inserts).await {
        result.expect("insert");
    }
    insert_and_get(store).await;
    list_pages(store).await;
    message_pages(store).await;
    other_orgs_ids_are_missing(store).await;
    update_changes_only_metadata(store).await;
    delete_takes_the_messages(store).await;
}

async fn insert_and_get(store: &dyn ChatStore) {
    let got = store.get_chat_completion(ORG, "chatcmpl-b").await.unwrap();
    let got = got.expect("stored completion");
    let want = completion(
        "chatcmpl-b",
        ORG,
        GPT,
        200,
        &[("topic", "billing"), (ODD_KEY, "v.1")],
        3,
    );
    assert_eq!(
        (got.id, got.body, got.metadata, got.created_at),
        (want.id, want.body, want.metadata, want.created_at)
    );
    assert!(
        store.get_chat_completion(ORG, "chatcmpl-9").await.unwrap().is_none()
    );

    // A duplicate id is a conflict, and fails alone: a completion
    // inserted beside it (in the same SQLite batch) is stored.
    let (dup, fresh) = futures::join!(
        store.insert_chat_completion(completion(
            "chatcmpl-e",
            ORG,
            GPT,
            1,
            &[],
            1
        )),
        store.insert_chat_completion(completion(
            "chatcmpl-c1",
            "org_chat_c",
            GPT,
            1,
            &[],
            1
        )),
    );
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    fresh.expect("insert beside a conflict");
    let c1 = store.get_chat_completion("org_chat_c", "chatcmpl-c1").await;
    assert!(c1.unwrap().is_some());
    let first = store.get_chat_completion(ORG, "chatcmpl-e").await.unwrap();
    assert_eq!(first.map(|c| c.created_at), Some(100), "original kept");
}

async fn list_pages(store: &dyn ChatStore) {
    struct Case {
        name: &'static str,
        after: Option<&'static str>,
        limit: i64,
        descending: bool,
        model: Option<&'static str>,
        metadata: &'static [(&'static str, &'static str)],
        want: Option<&'static [&'static str]>,
    }
    const ALL: Case = Case {
        name: "",
        after: None,
        limit: 10,
        descending: false,
        model: None,
        metadata: &[],
        want: None,
    };
    const BILLING_ODD: &[(&str, &str)] =
        &[("topic", "billing"), (ODD_KEY, "v.1")];
    let cases = [
        Case {
            name: "all, oldest first, ties by id",
            want: Some(&[
                "chatcmpl-e",
                "chatcmpl-b",
                "chatcmpl-c",
                "chatcmpl-d",
                "chatcmpl-a",
            ]),
            ..ALL
        },
        Case {
            name: "all, newest first",
            descending: true,
            want: Some(&[
                "chatcmpl-a",
                "chatcmpl-d",
                "chatcmpl-c",
                "chatcmpl-b",
                "chatcmpl-e",
            ]),
            ..ALL
        },
        Case {
            name: "first page",
            limit: 2,
            want: Some(&["chatcmpl-e", "chatcmpl-b"]),
            ..ALL
        },
        Case {
            name: "after the first of a tie",
            after: Some("chatcmpl-b"),
            limit: 2,
            want: Some(&["chatcmpl-c", "chatcmpl-d"]),
            ..ALL
        },
        Case {
            name: "after the middle of a tie",
            after: Some("chatcmpl-c"),
            want: Some(&["chatcmpl-d", "chatcmpl-a"]),
            ..ALL
        },
        Case {
            name: "after the last of a tie, newest first",
            after: Some("chatcmpl-d"),
            limit: 2,
            descending: true,
            want: Some(&["chatcmpl-c", "chatcmpl-b"]),
            ..ALL
        },
        Case {
            name: "after the middle of a tie, newest first",
            after: Some("chatcmpl-c"),
            descending: true,
            want: Some(&["chatcmpl-b", "chatcmpl-e"]),
            ..ALL
        },
        Case {
            name: "after the last",
            after: Some("chatcmpl-a"),
            want: Some(&[]),
            ..ALL
        },
        Case { name: "limit 0", limit: 0, want: Some(&[]), ..ALL },
        Case {
            name: "negative limit is empty",
            limit: -1,
            want: Some(&[]),
            ..ALL
        },
        Case {
            name: "model",
            model: Some(CLAUDE),
            want: Some(&["chatcmpl-c"]),
            ..ALL
        },
        Case {
            name: "unknown model",
            model: Some("openai/gpt"),
            want: Some(&[]),
            ..ALL
        },
        Case {
            name: "model after a cursor",
            after: Some("chatcmpl-b"),
            model: Some(GPT),
            want: Some(&["chatcmpl-d", "chatcmpl-a"]),
            ..ALL
        },
        Case {
            name: "cursor outside the model filter",
            after: Some("chatcmpl-c"),
            model: Some(GPT),
            descending: true,
            want: Some(&["chatcmpl-b", "chatcmpl-e"]),
            ..ALL
        },
        Case {
            name: "one metadata pair",
            metadata: &[("topic", "billing")],
            want: Some(&["chatcmpl-b", "chatcmpl-c", "chatcmpl-a"]),
            ..ALL
        },
        Case {
            name: "two pairs, one key with a quote and a dot",
            metadata: BILLING_ODD,
            want: Some(&["chatcmpl-b", "chatcmpl-a"]),
            ..ALL
        },
        Case {
            name: "two pairs, newest first, after a cursor",
            after: Some("chatcmpl-a"),
            descending: true,
            metadata: BILLING_ODD,
            want: Some(&["chatcmpl-b"]),
            ..ALL
        },
        Case {
            name: "two pairs and a model",
            model: Some(CLAUDE),
            metadata: BILLING_ODD,
            want: Some(&[]),
            ..ALL
        },
        Case {
            name: "value must match exactly",
            metadata: &[(ODD_KEY, "v")],
            want: Some(&[]),
            ..ALL
        },
        Case {
            name: "one key asked with two values",
            metadata: &[("topic", "billing"), ("topic", "support")],
            want: Some(&[]),
            ..ALL
        },
        Case {
            name: "a key is never a JSON path",
            metadata: &[("$.topic", "billing")],
            want: Some(&[]),
            ..ALL
        },
        Case {
            name: "a key that looks like a path matches literally",
            metadata: &[("$.topic", "x")],
            want: Some(&["chatcmpl-a"]),
            ..ALL
        },
        Case { name: "after an unknown id", after: Some("chatcmpl-9"), ..ALL },
        Case {
            name: "after another org's id",
            after: Some("chatcmpl-b1"),
            ..ALL
        },
    ];
    let mut failures = Failures::default();
    for case in &cases {
        let q = ChatListQuery {
            after: case.after.map(str::to_string),
            limit: case.limit,
            descending: case.descending,
            model: case.model.map(str::to_string),
            metadata: case
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let got = store.list_chat_completions(ORG, &q).await.unwrap();
        failures.check(case.name, page_ids(got), owned(case.want));
    }
    failures.assert_none("list_chat_completions");
}

async fn message_pages(store: &dyn ChatStore) {
    struct Case {
        name: &'static str,
        id: &'static str,
        after: Option<&'static str>,
        limit: i64,
        descending: bool,
        want: Option<&'static [&'static str]>,
    }
    const B: Case = Case {
        name: "",
        id: "chatcmpl-b",
        after: None,
        limit: 10,
        descending: false,
        want: None,
    };
    let cases = [
        Case {
            name: "all in order",
            want: Some(&["chatcmpl-b-0", "chatcmpl-b-1", "chatcmpl-b-2"]),
            ..B
        },
        Case {
            name: "first page",
            limit: 2,
            want: Some(&["chatcmpl-b-0", "chatcmpl-b-1"]),
            ..B
        },
        Case {
            name: "after the first",
            after: Some("chatcmpl-b-0"),
            want: Some(&["chatcmpl-b-1", "chatcmpl-b-2"]),
            ..B
        },
        Case {
            name: "after the last",
            after: Some("chatcmpl-b-2"),
            want: Some(&[]),
            ..B
        },
        Case {
            name: "last first",
            descending: true,
            want: Some(&["chatcmpl-b-2", "chatcmpl-b-1", "chatcmpl-b-0"]),
            ..B
        },
        Case {
            name: "last first, after the last",
            after: Some("chatcmpl-b-2"),
            limit: 1,
            descending: true,
            want: Some(&["chatcmpl-b-1"]),
            ..B
        },
        Case {
            name: "last first, after the first",
            after: Some("chatcmpl-b-0"),
            descending: true,
            want: Some(&[]),
            ..B
        },
        Case { name: "limit 0", limit: 0, want: Some(&[]), ..B },
        Case {
            name: "negative limit is empty",
            limit: -1,
            want: Some(&[]),
            ..B
        },
        Case { name: "no messages", id: "chatcmpl-e", want: Some(&[]), ..B },
        Case {
            name: "after another completion's message",
            after: Some("chatcmpl-d-0"),
            ..B
        },
        Case {
            name: "after an unknown message",
            after: Some("chatcmpl-b-9"),
            descending: true,
            ..B
        },
        Case { name: "unknown completion", id: "chatcmpl-9", ..B },
        Case { name: "another org's completion", id: "chatcmpl-b1", ..B },
    ];
    let mut failures = Failures::default();
    for case in &cases {
        let q = MessagesQuery {
            after: case.after.map(str::to_string),
            limit: case.limit,
            descending: case.descending,
        };
        let got = store.chat_messages(ORG, case.id, &q).await.unwrap();
        failures.check(case.name, message_ids(got), owned(case.want));
    }
    failures.assert_none("chat_messages");
    let q = MessagesQuery { limit: 1, ..MessagesQuery::default() };
    let first = store.chat_messages(ORG, "chatcmpl-b", &q).await.unwrap();
    assert_eq!(
        first.and_then(|p| p.into_iter().next()).map(|m| m.body).as_deref(),
        Some(r#"{"role":"user","content":"chatcmpl-b 0"}"#)
    );
}

/// Another organization's id answers exactly as a missing one, in every
/// method, and changes nothing.
async fn other_orgs_ids_are_missing(store: &dyn ChatStore) {
    for (org, id) in [(OTHER, "chatcmpl-b"), (ORG, "chatcmpl-b1")] {
        let get = store.get_chat_completion(org, id).await.unwrap();
        assert!(get.is_none(), "get {id} as {org}");
        let q = ChatListQuery {
            after: Some(id.to_string()),
            limit: 10,
            ..ChatListQuery::default()
        };
        let list = store.list_chat_completions(org, &q).await.unwrap();
        assert!(list.is_none(), "list after {id} as {org}");
        let update = store.update_chat_metadata(org, id, r#"{"x":"y"}"#).await;
        assert!(update.unwrap().is_none(), "update {id} as {org}");
        let q = MessagesQuery { limit: 10, ..MessagesQuery::default() };
        let messages = store.chat_messages(org, id, &q).await.unwrap();
        assert!(messages.is_none(), "messages of {id} as {org}");
        let delete = store.delete_chat_completion(org, id).await.unwrap();
        assert!(!delete, "delete {id} as {org}");
    }
    // Still there for their owners, unchanged.
    for (org, id, messages) in
        [(ORG, "chatcmpl-b", 3), (OTHER, "chatcmpl-b1", 2)]
    {
        let got = store.get_chat_completion(org, id).await.unwrap();
        assert!(got.is_some_and(|c| !c.metadata.contains("\"x\"")), "{id}");
        let q = MessagesQuery { limit: 10, ..MessagesQuery::default() };
        let page = store.chat_messages(org, id, &q).await.unwrap();
        assert_eq!(page.map(|p| p.len()), Some(messages), "{id}");
    }
    let q = ChatListQuery { limit: 10, ..ChatListQuery::default() };
    let theirs = store.list_chat_completions(OTHER, &q).await.unwrap();
    assert_eq!(page_ids(theirs), owned(Some(&["chatcmpl-b1"])));
}

async fn update_changes_only_metadata(store: &dyn ChatStore) {
    let before = store.get_chat_completion(ORG, "chatcmpl-b").await.unwrap();
    let before = before.expect("stored");
    let metadata = r#"{"topic":"closed"}"#;
    let updated = store
        .update_chat_metadata(ORG, "chatcmpl-b", metadata)
        .await
        .unwrap()
        .expect("updated");
    let after = store.get_chat_completion(ORG, "chatcmpl-b").await.unwrap();
    let after = after.expect("stored");
    for got in [&updated, &after] {
        assert_eq!(got.metadata, metadata);
        assert_eq!(
            (&got.id, &got.body, got.created_at),
            (&before.id, &before.body, before.created_at)
        );
    }
    let none = store.update_chat_metadata(ORG, "chatcmpl-9", metadata).await;
    assert!(none.unwrap().is_none());
    // Filters see the new metadata.
    let q = ChatListQuery {
        limit: 10,
        metadata: vec![("topic".into(), "billing".into())],
        ..ChatListQuery::default()
    };
    let billing = store.list_chat_completions(ORG, &q).await.unwrap();
    assert_eq!(page_ids(billing), owned(Some(&["chatcmpl-c", "chatcmpl-a"])));
}

async fn delete_takes_the_messages(store: &dyn ChatStore) {
    assert!(store.delete_chat_completion(ORG, "chatcmpl-b").await.unwrap());
    assert!(
        store.get_chat_completion(ORG, "chatcmpl-b").await.unwrap().is_none()
    );
    let q = MessagesQuery { limit: 10, ..MessagesQuery::default() };
    assert!(
        store.chat_messages(ORG, "chatcmpl-b", &q).await.unwrap().is_none()
    );
    assert!(!store.delete_chat_completion(ORG, "chatcmpl-b").await.unwrap());
    let q = ChatListQuery {
        after: Some("chatcmpl-b".into()),
        limit: 10,
        ..ChatListQuery::default()
    };
    assert!(store.list_chat_completions(ORG, &q).await.unwrap().is_none());
    // The old messages are gone: the id can be stored again with one
    // message (leftovers would conflict with it or show up beside it).
    store
        .insert_chat_completion(completion("chatcmpl-b", ORG, GPT, 400, &[], 1))
        .await
        .expect("reinsert");
    let q = MessagesQuery { limit: 10, ..MessagesQuery::default() };
    let page = store.chat_messages(ORG, "chatcmpl-b", &q).await.unwrap();
    assert_eq!(message_ids(page), owned(Some(&["chatcmpl-b-0"])));
}
