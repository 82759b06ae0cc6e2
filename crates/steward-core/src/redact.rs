//! Masking the secret values Steward knows in text it stores from elsewhere: what a program
//! printed, what a probed server answered, why either failed. A program or a server may echo
//! a secret it was given (or dig one out of the daemon's `/proc` entry); the store, and
//! everyone who may read it, must never see it.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use aho_corasick::AhoCorasick;

/// What a secret is replaced by.
pub const MASK: &str = "***";

/// Values shorter than this many characters are not masked: a short value (`on`, `1`, `dev`)
/// would mask ordinary text everywhere it appears, and reveals little where it leaks.
pub const MIN_SECRET_CHARS: usize = 4;

/// A set of secret values and the text that hides them.
///
/// Every occurrence of every secret is masked, overlapping occurrences of different secrets
/// included, and each run of masked text becomes one [`MASK`], so a secret inside a longer one
/// leaves nothing of the longer one behind. `Debug` shows how many secrets it holds, never one.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secrets, longest first, without duplicates.
    secrets: Vec<String>,
    /// Finds them all at once; `None` when there are none.
    matcher: Option<AhoCorasick>,
}

impl Redactor {
    /// A redactor of `secrets`; values shorter than [`MIN_SECRET_CHARS`] are left out.
    pub fn new<I>(secrets: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.as_ref().to_owned())
            .filter(|s| s.chars().count() >= MIN_SECRET_CHARS)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        // Building fails only past the automaton's size limits; `ranges` then searches for
        // each secret in turn.
        let matcher = (!secrets.is_empty())
            .then(|| AhoCorasick::new(&secrets).ok())
            .flatten();
        Self { secrets, matcher }
    }

    /// True when it masks nothing.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret masked.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.mask(text, Vec::new())
    }

    /// `text`, the end of something longer (a program's last output), with every secret
    /// masked, and also a start that is the end of a secret cut off before it (at least
    /// [`MIN_SECRET_CHARS`] long).
    pub fn redact_tail<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let cut: Vec<Range<usize>> = self
            .secrets
            .iter()
            .filter_map(|secret| longest_suffix_starting(secret, text))
            .max()
            .map(|len| 0..len)
            .into_iter()
            .collect();
        self.mask(text, cut)
    }

    /// `text`, the start of something longer (a body cut at its limit), with every secret
    /// masked, and also an end that is the start of a secret cut off after it (at least
    /// [`MIN_SECRET_CHARS`] long).
    pub fn redact_head<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let cut: Vec<Range<usize>> = self
            .secrets
            .iter()
            .filter_map(|secret| longest_prefix_ending(secret, text))
            .max()
            .map(|len| text.len() - len..text.len())
            .into_iter()
            .collect();
        self.mask(text, cut)
    }

    /// Masks every secret in the strings of `value`, object keys included.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        if !self.is_empty() {
            crate::text::map_json_strings(value, &|text| self.redact(text));
        }
    }

    /// `text` with the secrets found in it and the `extra` ranges masked.
    fn mask<'t>(&self, text: &'t str, mut ranges: Vec<Range<usize>>) -> Cow<'t, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.extend(self.ranges(text));
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.sort_by_key(|r| r.start);
        let mut masked = String::with_capacity(text.len());
        let mut done = 0;
        let mut runs = ranges.into_iter().peekable();
        while let Some(mut run) = runs.next() {
            while let Some(next) = runs.next_if(|next| next.start <= run.end) {
                run.end = run.end.max(next.end);
            }
            masked.push_str(&text[done..run.start]);
            masked.push_str(MASK);
            done = run.end;
        }
        masked.push_str(&text[done..]);
        Cow::Owned(masked)
    }

    /// Where the secrets occur in `text`, overlapping occurrences included.
    fn ranges(&self, text: &str) -> Vec<Range<usize>> {
        match &self.matcher {
            Some(matcher) => matcher
                .find_overlapping_iter(text)
                .map(|found| found.range())
                .collect(),
            None => self
                .secrets
                .iter()
                .flat_map(|secret| {
                    text.match_indices(secret.as_str())
                        .map(|(at, s)| at..at + s.len())
                })
                .collect(),
        }
    }
}

/// The length of the longest proper suffix of `secret`, of at least [`MIN_SECRET_CHARS`], that
/// `text` starts with.
fn longest_suffix_starting(secret: &str, text: &str) -> Option<usize> {
    secret
        .char_indices()
        .skip(1)
        .map(|(at, _)| &secret[at..])
        .take_while(|suffix| suffix.chars().count() >= MIN_SECRET_CHARS)
        .find(|suffix| text.starts_with(suffix))
        .map(str::len)
}

/// The length of the longest proper prefix of `secret`, of at least [`MIN_SECRET_CHARS`], that
/// `text` ends with.
fn longest_prefix_ending(secret: &str, text: &str) -> Option<usize> {
    secret
        .char_indices()
        .rev()
        .map(|(at, _)| &secret[..at])
        .take_while(|prefix| prefix.chars().count() >= MIN_SECRET_CHARS)
        .find(|prefix| text.ends_with(prefix))
        .map(str::len)
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn every_secret_is_masked_and_short_values_are_not_secrets() {
        let redactor = Redactor::new(["hunter2", "abc", "s3cr3t-token"]);
        assert_eq!(
            redactor.redact("pw=hunter2 t=s3cr3t-token abc"),
            "pw=*** t=*** abc"
        );
        assert_eq!(redactor.redact("nothing here"), "nothing here");
        assert!(matches!(redactor.redact("plain"), Cow::Borrowed(_)));
        assert!(Redactor::new(["abc", ""]).is_empty());
        assert_eq!(Redactor::default().redact("hunter2"), "hunter2");
    }

    #[test]
    fn overlapping_and_nested_secrets_leave_nothing_behind() {
        let redactor = Redactor::new(["abcd", "cdefgh", "Bearer abcd-1234", "1234"]);
        assert_eq!(redactor.redact("xabcdefghy"), "x***y");
        assert_eq!(
            redactor.redact("Authorization: Bearer abcd-1234"),
            "Authorization: ***"
        );
        assert_eq!(redactor.redact("abcdabcd"), "***");
    }

    #[test]
    fn a_cut_secret_is_masked_at_the_edge_it_was_cut() {
        let redactor = Redactor::new(["0123456789"]);
        assert_eq!(redactor.redact_tail("56789 and more"), "*** and more");
        assert_eq!(redactor.redact_tail("789 and more"), "789 and more");
        assert_eq!(redactor.redact_head("text then 012345"), "text then ***");
        assert_eq!(redactor.redact_head("text then 012"), "text then 012");
        assert_eq!(redactor.redact_tail("9 then 0123456789"), "9 then ***");
    }

    #[test]
    fn json_strings_and_keys_are_masked() {
        let redactor = Redactor::new(["hunter2"]);
        let mut value = json!({ "token": "hunter2", "hunter2": [1, "x hunter2"], "n": 5 });
        redactor.redact_json(&mut value);
        assert_eq!(
            value,
            json!({ "token": "***", "***": [1, "x ***"], "n": 5 })
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", Redactor::new(["hunter2"]));
        assert_eq!(shown, "Redactor(1 secrets)");
    }

    proptest! {
        #[test]
        fn no_secret_survives(
            secrets in proptest::collection::vec("[a-d]{1,6}", 0..4),
            text in "[a-d ]{0,40}",
        ) {
            let redactor = Redactor::new(&secrets);
            let masked = redactor.redact(&text);
            for secret in secrets.iter().filter(|s| s.len() >= MIN_SECRET_CHARS) {
                prop_assert!(!masked.contains(secret.as_str()), "{} in {}", secret, masked);
            }
        }

        #[test]
        fn the_end_of_a_cut_secret_is_masked(
            secret in "[a-z]{4,12}",
            before in "[a-z ]{0,8}",
            after in "[0-9 ]{0,8}",
            cut in 0usize..12,
        ) {
            let whole = format!("{before}{secret}{after}");
            let start = (before.len() + cut).min(before.len() + secret.len() - MIN_SECRET_CHARS);
            let redactor = Redactor::new([&secret]);
            let masked = redactor.redact_tail(&whole[start..]);
            prop_assert!(!masked.contains(&secret[secret.len() - MIN_SECRET_CHARS..]), "{}", masked);
        }

        #[test]
        fn text_without_secrets_is_kept(text in "[a-z ]{0,40}") {
            let redactor = Redactor::new(["0123", "ZZZZZZ"]);
            prop_assert_eq!(redactor.redact(&text), text.as_str());
        }
    }
}
