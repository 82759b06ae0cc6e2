//! Opening the files Steward reads because a config names them (the config itself, CSV
//! registries, the audit mirror, certificate files) without ever blocking on one.
//!
//! Opening a FIFO for reading blocks until a writer comes, and reading a character device may
//! never end, so anything but a regular file is refused. The type is checked before opening
//! (what the path names now) and again on the opened handle (what was actually opened, in case
//! the path was swapped in between); the open itself is non-blocking, so a FIFO swapped in
//! between cannot block it either.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened or its metadata read.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path names a directory, a FIFO, a socket or a device.
    #[error("{}: not a regular file ({kind})", .path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead, such as `a FIFO`.
        kind: &'static str,
    },
    /// The file is larger than its reader takes.
    #[error("{}: {size} bytes, more than the {max} it may hold", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least `max + 1` when it grew while read).
        size: u64,
        /// The most it may hold.
        max: u64,
    },
}

impl FileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. }
            | FileError::NotAFile { path, .. }
            | FileError::TooLarge { path, .. } => path,
        }
    }
}

/// Opens `path` for reading if it is a regular file, with its metadata from the opened handle.
pub fn open_regular(path: &Path) -> Result<(File, Metadata), FileError> {
    open_regular_with(path, OpenOptions::new().read(true))
}

/// The bytes of `path` if it is a regular file of at most `max` bytes. The size is checked
/// before reading, and the read stops one byte past `max` in case the file grew meanwhile.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, FileError> {
    use std::io::Read as _;
    let (file, meta) = open_regular(path)?;
    let too_large = |size: u64| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        max,
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(path, source))?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > max {
        return Err(too_large(read));
    }
    Ok(bytes)
}

/// Opens `path` with `options` if it is a regular file, with its metadata from the opened
/// handle. A path that does not exist is left to `options` (it may create the file).
pub fn open_regular_with(
    path: &Path,
    options: &OpenOptions,
) -> Result<(File, Metadata), FileError> {
    match std::fs::metadata(path) {
        Ok(meta) => refuse_non_file(path, &meta)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(io_error(path, source)),
    }
    open_and_verify(path, options)
}

/// The open and the check on the handle, without the check on the path first.
fn open_and_verify(path: &Path, options: &OpenOptions) -> Result<(File, Metadata), FileError> {
    // O_NONBLOCK makes opening a FIFO return at once; on a regular file it changes nothing
    // (reads and writes of regular files never block in that sense), so the handle is kept.
    let file = options
        .clone()
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    let meta = file.metadata().map_err(|source| io_error(path, source))?;
    refuse_non_file(path, &meta)?;
    Ok((file, meta))
}

fn refuse_non_file(path: &Path, meta: &Metadata) -> Result<(), FileError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(FileError::NotAFile {
        path: path.to_path_buf(),
        kind: kind_of(meta),
    })
}

fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

fn io_error(path: &Path, source: std::io::Error) -> FileError {
    FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{mkfifo, within_seconds};
    use std::io::{Read, Write};

    #[test]
    fn a_regular_file_opens_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        let (mut file, meta) = open_regular(&path).unwrap();
        assert_eq!(meta.len(), 5);
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
    }

    #[test]
    fn a_read_takes_a_file_up_to_its_bound_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular(&path, 5).unwrap(), b"12345");
        match read_regular(&path, 4) {
            Err(FileError::TooLarge {
                size: 5, max: 4, ..
            }) => {}
            other => panic!("expected too large, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_may_be_created_by_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.jsonl");
        let (mut file, _) =
            open_regular_with(&path, OpenOptions::new().create(true).append(true)).unwrap();
        file.write_all(b"x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n");
        let missing = dir.path().join("missing");
        let err = open_regular(&missing).unwrap_err();
        assert!(matches!(err, FileError::Io { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read", missing.display()))
        );
    }

    #[test]
    fn a_fifo_is_refused_before_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe");
        mkfifo(&path);
        let shown = path.display().to_string();
        let err = within_seconds(move || open_regular(&path)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{shown}: not a regular file (a FIFO)")
        );
    }

    #[test]
    fn a_fifo_opened_anyway_is_refused_on_its_handle_without_blocking() {
        // What the open does when the path became a FIFO after it was looked at.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe");
        mkfifo(&path);
        let appending = within_seconds({
            let path = path.clone();
            move || open_and_verify(&path, OpenOptions::new().read(true).append(true))
        });
        let reading = within_seconds(move || open_and_verify(&path, OpenOptions::new().read(true)));
        for err in [appending.unwrap_err(), reading.unwrap_err()] {
            assert!(
                matches!(err, FileError::NotAFile { kind: "a FIFO", .. }),
                "{err}"
            );
        }
    }

    #[test]
    fn directories_and_devices_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_regular(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("not a regular file (a directory)"),
            "{err}"
        );
        let err = open_regular(Path::new("/dev/null")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/null: not a regular file (a character device)"
        );
    }
}
