//! Extended thinking: how `reasoning_effort` becomes a thinking budget,
//! and how a thinking block's signature (or a redacted block's data)
//! travels in a reasoning item's `encrypted_content` so the next turn can
//! replay it.
//!
//! `encrypted_content` is `anthropic:thinking:<signature>` for a thinking
//! block and `anthropic:redacted:<data>` for a redacted one. Anything else
//! (another provider's opaque state, or none) is not ours and is never
//! sent to Anthropic.

/// Prefix of a thinking block's signature.
const THINKING: &str = "anthropic:thinking:";
/// Prefix of a redacted thinking block's data.
const REDACTED: &str = "anthropic:redacted:";

/// The smallest budget Anthropic accepts.
pub(super) const MIN_BUDGET: i64 = 1024;

/// What a reasoning item's `encrypted_content` holds for us.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Replay<'a> {
    /// A thinking block with this signature (its text is the item's).
    Thinking(&'a str),
    /// A redacted thinking block with this data.
    Redacted(&'a str),
}

/// `encrypted_content` of a thinking block signed `signature`.
pub(super) fn encode_thinking(signature: &str) -> String {
    format!("{THINKING}{signature}")
}

/// `encrypted_content` of a redacted thinking block.
pub(super) fn encode_redacted(data: &str) -> String {
    format!("{REDACTED}{data}")
}

/// Reads an `encrypted_content` (None: not ours, or empty).
pub(super) fn decode(encrypted: &str) -> Option<Replay<'_>> {
    if let Some(sig) = encrypted.strip_prefix(THINKING) {
        return (!sig.is_empty()).then_some(Replay::Thinking(sig));
    }
    let data = encrypted.strip_prefix(REDACTED)?;
    (!data.is_empty()).then_some(Replay::Redacted(data))
}

/// The thinking budget for an effort and the `max_tokens` to send with it
/// (`None`: no thinking).
///
/// The rule: `minimal` and `low` ask for 1024 tokens, `medium` 4096,
/// `high` 16384, `xhigh` 32768; `none` (or an unknown effort) thinks not
/// at all. Anthropic wants `1024 <= budget < max_tokens`, so the budget
/// is clamped to `max_tokens - 1`, and when that is below 1024 the
/// budget stays 1024 and `max_tokens` is raised to 1025 so it fits
/// (thinking counts towards `max_tokens`).
pub(super) fn budget(
    effort: Option<&str>,
    max_tokens: i64,
) -> Option<(i64, i64)> {
    let wanted = match effort? {
        "minimal" | "low" => MIN_BUDGET,
        "medium" => 4096,
        "high" => 16384,
        "xhigh" => 32768,
        _ => return None,
    };
    let budget = wanted.min(max_tokens - 1);
    if budget < MIN_BUDGET {
        return Some((MIN_BUDGET, MIN_BUDGET + 1));
    }
    Some((budget, max_tokens))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_content_round_trips_and_rejects_foreign_state() {
        assert_eq!(
            decode(&encode_thinking("sig")),
            Some(Replay::Thinking("sig"))
        );
        assert_eq!(
            decode(&encode_redacted("blob")),
            Some(Replay::Redacted("blob"))
        );
        for foreign in ["gAAAAAB-openai", "", "anthropic:thinking:", "x:y"] {
            assert_eq!(decode(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn budget_fits_below_max_tokens() {
        let cases = [
            // (effort, max_tokens) -> (budget, max_tokens)
            (Some("low"), 4096, Some((1024, 4096))),
            (Some("medium"), 4096, Some((4095, 4096))),
            (Some("medium"), 8192, Some((4096, 8192))),
            (Some("high"), 4096, Some((4095, 4096))),
            (Some("high"), 100, Some((1024, 1025))),
            (Some("minimal"), 1024, Some((1024, 1025))),
            (Some("xhigh"), 64000, Some((32768, 64000))),
            (Some("none"), 4096, None),
            (None, 4096, None),
        ];
        for (effort, max, want) in cases {
            assert_eq!(budget(effort, max), want, "{effort:?} {max}");
        }
    }
}
