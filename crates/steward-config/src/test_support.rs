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

/// Makes a named pipe at `path` (opening one for reading blocks until a writer comes).
pub(crate) fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run mkfifo: {e}"));
    assert!(status.success(), "mkfifo {} failed", path.display());
}

/// Runs `f` on a thread of its own and answers what it returns, or panics if it has not
/// returned within five seconds (a blocked open would otherwise hang the test forever).
#[track_caller]
pub(crate) fn within_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(value) => value,
        Err(_) => panic!("still blocked after 5 s"),
    }
}
