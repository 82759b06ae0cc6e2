//! Text from outside (probed servers, receivers' answers, alert labels) made safe to store,
//! log and print.

/// `text` with control characters (a NUL, terminal escapes) replaced by U+FFFD: PostgreSQL
/// refuses NUL in text, and a terminal must not obey escapes someone else wrote.
pub fn printable(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect()
    } else {
        text.to_owned()
    }
}

/// `text` with each NUL replaced by U+FFFD and nothing else changed (lines and tabs stay): no
/// store keeps a NUL the same way (PostgreSQL refuses one in text), so what a program printed
/// or a server answered is stored with it made visible instead.
pub fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// [`without_nul`] for every string and key of a JSON value (PostgreSQL's `jsonb` refuses
/// `\u0000`).
pub fn json_without_nul(value: &mut serde_json::Value) {
    map_json_strings(value, &without_nul);
}

/// Rewrites every string of a JSON value, object keys included, with `rewrite`, which answers
/// `Cow::Borrowed` for a string it leaves as it is.
pub fn map_json_strings<F>(value: &mut serde_json::Value, rewrite: &F)
where
    F: for<'a> Fn(&'a str) -> std::borrow::Cow<'a, str>,
{
    use serde_json::Value;
    match value {
        Value::String(text) => {
            if let std::borrow::Cow::Owned(rewritten) = rewrite(text) {
                *text = rewritten;
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| map_json_strings(item, rewrite)),
        Value::Object(fields) => {
            for (key, mut field) in std::mem::take(fields) {
                map_json_strings(&mut field, rewrite);
                let key = match rewrite(&key) {
                    std::borrow::Cow::Borrowed(_) => key,
                    std::borrow::Cow::Owned(rewritten) => rewritten,
                };
                fields.insert(key, field);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` on one line: whitespace runs become one space, control characters spaces, and it is
/// cut to at most `max_chars` characters, the last an ellipsis when it was cut.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let joined: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if joined.chars().count() <= max_chars {
        return joined;
    }
    let mut cut: String = joined.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nuls_are_made_visible_and_nothing_else_changes() {
        assert_eq!(without_nul("a\nb\tc"), "a\nb\tc");
        assert!(matches!(
            without_nul("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(without_nul("a\0b\0"), "a\u{fffd}b\u{fffd}");
        let mut json =
            serde_json::json!({ "k\u{0}": ["x\u{0}", 1, { "y": "\u{0}" }], "ok": "line\n" });
        json_without_nul(&mut json);
        assert_eq!(
            json,
            serde_json::json!({ "k\u{fffd}": ["x\u{fffd}", 1, { "y": "\u{fffd}" }], "ok": "line\n" })
        );
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("ok"), "ok");
        assert_eq!(printable("a\0b\u{1b}[31m"), "a\u{fffd}b\u{fffd}[31m");
    }

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("  a\n\tb  c ", 10), "a b c");
        assert_eq!(one_line("abcdef", 6), "abcdef");
        assert_eq!(one_line("abcdefg", 6), "abcde…");
        assert_eq!(one_line("a\u{7}b", 6), "a b");
    }
}
