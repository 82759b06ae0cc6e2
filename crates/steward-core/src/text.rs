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
