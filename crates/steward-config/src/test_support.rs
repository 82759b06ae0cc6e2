//! Helpers of this crate's unit tests: parse config text and look at its errors.

#![allow(clippy::panic)]

use crate::load::parse_str;

/// The test environment: `TOKEN` is set, nothing else.
pub(crate) fn env(name: &str) -> Option<String> {
    (name == "TOKEN").then(|| "hunter2".to_owned())
}

/// The config `text` declares (panics when it is refused).
pub(crate) fn parse(text: &str) -> crate::Config {
    match parse_str("f.toml", text, &env) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("{e}"),
    }
}

/// Every problem `text` has, as printed (panics when it is accepted).
pub(crate) fn errors(text: &str) -> String {
    match parse_str("f.toml", text, &env) {
        Ok(loaded) => panic!("accepted: {:?}", loaded.config),
        Err(e) => e.to_string(),
    }
}

/// Asserts that an error on `line` contains `expected` (which names the field).
#[track_caller]
pub(crate) fn assert_error(text: &str, line: usize, expected: &str) {
    let all = errors(text);
    let prefix = format!("f.toml:{line}:");
    assert!(
        all.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(": error: ") && l.contains(expected)),
        "expected an error on line {line} containing {expected:?}, got:\n{all}"
    );
}
