//! The data directory's exclusive lock: an OS file lock, released by the kernel when the
//! process dies (even by SIGKILL), holding the owner's pid for the error message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use steward_store::StoreError;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "steward.lock";

/// Held while the store is open; dropping it releases the lock.
pub(crate) struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub(crate) fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io_err = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    path: data_dir.to_path_buf(),
                    holder: (!holder.is_empty()).then(|| holder.to_owned()),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        write!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(Self { _file: file })
    }
}
