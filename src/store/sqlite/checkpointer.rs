//! Checkpoints on a thread of their own, so that the writer never waits for an `fsync`.
//!
//! In WAL mode a commit appends pages to the WAL, and a checkpoint copies them into the
//! database file, syncing both. By default SQLite runs the checkpoint inside the commit that
//! takes the WAL past 1,000 pages, on the committing connection: that commit waits for the
//! syncs, and every write queued behind it waits too (profiling rotations, the writer's core
//! was 22% idle, and `fsync` 7% of its samples). Here the writer runs with
//! `wal_autocheckpoint=0`, and this thread, on a connection of its own, runs a `PASSIVE`
//! checkpoint (which waits for no reader or writer) every [`INTERVAL`]. The next write after a
//! complete checkpoint starts the WAL over, so it stays bounded.
//!
//! The checkpoint syncs the WAL first, so under `synchronous=NORMAL` a commit is safe from a
//! power loss within about one interval, where before it waited for the 1,000th page.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::super::StoreError;
use super::{db_err, open};

/// How often the WAL is copied into the database file.
const INTERVAL: Duration = Duration::from_millis(100);

/// Runs until dropped (the thread ends at its next wake-up).
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub(super) fn start(path: &PathBuf) -> Result<Self, StoreError> {
        let conn = open(Some(path))?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("restjwt-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    // A row (busy, log pages, checkpointed pages); a busy checkpoint (another
                    // process's under way) is simply tried again next time.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "SQLite checkpoint failed");
                    }
                }
            })
            .map_err(db_err)?;
        Ok(Self { _stop: stop })
    }
}
