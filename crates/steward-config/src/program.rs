//! Whether a program a shell executor or a command check names can be run where the config is
//! read. The answer is only advice: the daemon may run on another host or with another PATH,
//! so what is found missing becomes a warning, never an error.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why `command` (an absolute path or a bare program name) cannot be run here, or `None` when
/// it can or when that cannot be told: a bare name without a PATH to look it up in, or a
/// relative path (`bin/tool`), which is not looked up in PATH and depends on the directory the
/// program is started from.
pub(crate) fn program_problem(command: &str, path_var: Option<&str>) -> Option<String> {
    if command.starts_with('/') {
        return absolute_problem(command);
    }
    if command.contains('/') {
        return None;
    }
    let found = path_var?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .any(|dir| is_executable_file(&Path::new(dir).join(command)));
    (!found).then(|| format!("`{command}` is not found in PATH (the daemon's PATH may differ)"))
}

fn absolute_problem(command: &str) -> Option<String> {
    match std::fs::metadata(command) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(format!("`{command}` does not exist"))
        }
        Err(e) => Some(format!("`{command}` cannot be looked at: {e}")),
        Ok(meta) if !meta.is_file() => Some(format!("`{command}` is not a file")),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => {
            Some(format!("`{command}` is not executable"))
        }
        Ok(_) => None,
    }
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_looked_up_in_every_path_directory() {
        assert_eq!(
            program_problem("sh", Some("/nonexistent::/bin:/usr/bin")),
            None
        );
        assert_eq!(
            program_problem("sh", Some("/nonexistent")).as_deref(),
            Some("`sh` is not found in PATH (the daemon's PATH may differ)")
        );
        assert_eq!(
            program_problem("no-such-program", None),
            None,
            "no PATH: unknown"
        );
        assert_eq!(
            program_problem("bin/no-such-program", Some("/nonexistent")),
            None,
            "a relative path is not looked up in PATH"
        );
    }
}
