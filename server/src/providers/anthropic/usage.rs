//! Anthropic's token counts in our convention. Anthropic counts input
//! apart from the cache (`input_tokens` excludes cache reads and writes)
//! and reports in pieces: `message_start` has the input, `message_delta`
//! the cumulative output (and, in newer API versions, the input again).
//! Each field keeps its latest report, so nothing is counted twice.

use serde::Deserialize;

use crate::providers::Usage;

/// A `usage` object as Anthropic sends it (absent fields: not reported).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub(super) struct RawUsage {
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<i64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<i64>,
}

impl RawUsage {
    /// Takes every count `later` reports (they are running totals).
    pub fn update(&mut self, later: RawUsage) {
        fn pick(a: &mut Option<i64>, b: Option<i64>) {
            if b.is_some() {
                *a = b;
            }
        }
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        pick(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
    }

    /// Our usage: input includes cache reads and writes; `cached` is the
    /// reads, `cache_write` the writes.
    pub fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input: self.input_tokens.unwrap_or(0) + read + write,
            cached: read,
            cache_write: write,
            output: self.output_tokens.unwrap_or(0),
            reasoning: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_delta_reports_merge_without_double_counting() {
        let start: RawUsage = serde_json::from_str(
            r#"{"input_tokens":10,"cache_read_input_tokens":100,
                "cache_creation_input_tokens":20,"output_tokens":1}"#,
        )
        .unwrap();
        let mut u = RawUsage::default();
        u.update(start);
        // The cumulative end report repeats the input and has the output.
        u.update(
            serde_json::from_str(
                r#"{"input_tokens":10,"cache_read_input_tokens":100,
                    "cache_creation_input_tokens":20,"output_tokens":7}"#,
            )
            .unwrap(),
        );
        let want = Usage {
            input: 130,
            cached: 100,
            cache_write: 20,
            output: 7,
            reasoning: 0,
        };
        assert_eq!(u.to_usage(), want);
        // An older-style end report with only the output keeps the rest.
        let mut v = RawUsage::default();
        v.update(start);
        v.update(serde_json::from_str(r#"{"output_tokens":7}"#).unwrap());
        assert_eq!(v.to_usage(), want);
    }
}
