//! `pat()` patterns: `*` matches any run of characters (including none), `?` exactly one
//! character, and every other character itself.

/// Whether `text` matches `pattern` as a whole.
///
/// The standard two-pointer wildcard match: on a mismatch it backtracks only to the last `*`,
/// so it takes at most `O(pattern × text)` steps — never the exponential blow-up of a naive
/// recursive matcher — and usually `O(pattern + text)`.
pub(super) fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The last `*` seen, and the text position it has been tried up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some('*'), _) => {
                star = Some((p, t));
                p += 1;
            }
            (Some(wanted), Some(got)) if *wanted == '?' || wanted == got => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    // Let the last `*` swallow one more character and retry after it.
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn gatus_pattern_cases() {
        // Gatus's own pattern tests (pattern/pattern_test.go).
        for (pattern, text, expected) in [
            ("*", "livingroom_123", true),
            ("**", "livingroom_123", true),
            ("living*", "livingroom_123", true),
            ("*living*", "livingroom_123", true),
            ("*123", "livingroom_123", true),
            ("*_*", "livingroom_123", true),
            ("living*_*3", "livingroom_123", true),
            ("living*room_*3", "livingroom_123", true),
            ("*vin*om*2*", "livingroom_123", true),
            ("livingroom_123", "livingroom_123", true),
            ("*livingroom_123*", "livingroom_123", true),
            ("*test*", "\\test", true),
            ("livingroom", "livingroom_123", false),
            ("livingroom123", "livingroom_123", false),
            ("what", "livingroom_123", false),
            ("*what*", "livingroom_123", false),
            ("*.*", "livingroom_123", false),
            ("room*123", "livingroom_123", false),
        ] {
            assert_eq!(matches(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn wildcards_and_literals() {
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(matches("*", ""));
        assert!(!matches("?", ""));
        assert!(matches("?", "é"));
        assert!(matches("v1.?.*", "v1.2.3"));
        assert!(!matches("v1.?.*", "v1.22.3"));
        assert!(matches("*OK*", "status: OK!"));
        assert!(matches("192.168.*", "192.168.0.1"));
        assert!(!matches("192.168.*", "10.0.0.1"));
        assert!(matches("*/api/*", "https://x/api/v1"));
        assert!(matches("[ok]", "[ok]"));
        assert!(!matches("[ok]", "o"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn adversarial_patterns_finish_quickly() {
        let text = "a".repeat(20_000);
        let pattern = format!("{}b", "*a".repeat(500));
        assert!(!matches(&pattern, &text));
        assert!(matches(&format!("{}*", "*a".repeat(500)), &text));
    }
}
