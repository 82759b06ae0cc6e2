//! A config text and the map from byte offsets to 1-based line and column numbers.

/// One file's text, named as it should appear in diagnostics.
pub(crate) struct Source {
    /// The name diagnostics give the file (its path, or what the caller chose).
    pub name: String,
    /// The whole text, as read.
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    /// Indexes where each line of `text` starts, so positions are found without rescanning.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line.saturating_sub(1)];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |prefix| prefix.chars().count() + 1);
        (line.max(1), column)
    }
}

/// 1-based line and column of the first invalid byte in a non-UTF-8 buffer.
pub(crate) fn position_in_bytes(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let s = Source::new("f", "ab\nçd\n\nx");
        assert_eq!(s.position(0), (1, 1));
        assert_eq!(s.position(1), (1, 2));
        assert_eq!(s.position(3), (2, 1));
        assert_eq!(s.position(5), (2, 2)); // after the two-byte 'ç'
        assert_eq!(s.position(7), (3, 1));
        assert_eq!(s.position(8), (4, 1));
        assert_eq!(s.position(999), (4, 2));
    }

    #[test]
    fn byte_positions_find_the_bad_byte() {
        assert_eq!(position_in_bytes(b"a\nbc\xff", 4), (2, 3));
    }
}
