//! Noticing commits to a WAL-mode SQLite file without a transaction: the user cache's clock,
//! and the size of the WAL that tells the writer when to checkpoint ([`checkpoint_if_due`]).
//!
//! Every connection in WAL mode, in any process, shares the wal-index (the `-shm` file, mapped
//! into each connection's memory). Its header is rewritten by every commit before the commit
//! returns: a change counter, the last committed WAL frame, the WAL salts and a checksum over
//! them (<https://sqlite.org/walformat.html>). Its layout is part of SQLite's file format, since
//! processes linked with different SQLite versions share it, so reading it is sound across
//! versions. Reading it is one `pread` of 96 bytes from the page every connection maps (the
//! kernel's page cache: always the current bytes); a read transaction costs two `fcntl` lock
//! calls and SQLite's own work, which were a tenth of a `GET /api/user/`. (Mapping the page
//! ourselves would save the system call too, but needs `unsafe`, which the crate forbids.)
//!
//! A reader sees a commit of another process the moment it returns. What this cannot see is a
//! process that bypasses the wal-index (SQLite's `locking_mode=EXCLUSIVE` keeps it in private
//! memory); such a process also locks every other connection out of the file, so this
//! server's writes would fail at once.

use std::fs::File;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The header is 48 bytes, written twice (the second copy first); readers compare the two.
const HEADER_BYTES: usize = 48;
/// Byte 12 of the header, `isInit`: 0 until a connection has built the index.
const IS_INIT: usize = 12;
/// Bytes 16 to 19 of the header, `mxFrame`: the WAL's last committed frame (in the byte order
/// of the machine, as the whole wal-index).
const MX_FRAME: usize = 16;

/// A point in the database's commit history: equal stamps mean no commit in between.
pub(super) type Stamp = [u8; HEADER_BYTES];

/// SQLite's own default for `wal_autocheckpoint`: the WAL is checkpointed once it holds this
/// many frames.
pub(super) const CHECKPOINT_FRAMES: u32 = 1000;

/// The wal-index file of one database.
pub(super) struct WalIndex {
    file: File,
}

impl WalIndex {
    /// Opens `database`'s wal-index. `None` when it has none (not WAL mode, or no connection
    /// has read the database yet).
    ///
    /// The caller must keep a connection to the database open in WAL mode for as long as it
    /// uses the result: SQLite removes or truncates the `-shm` file only when the last
    /// connection closes, and a removed file would no longer see commits.
    pub(super) fn open(database: &Path) -> Option<Self> {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let file = File::open(Path::new(&shm)).ok()?;
        if file.metadata().ok()?.len() < 2 * HEADER_BYTES as u64 {
            return None;
        }
        Some(Self { file })
    }

    /// The current stamp, or `None` while a commit is rewriting the header (or before the
    /// index exists, or if it cannot be read): then nothing may be assumed, and the caller
    /// reads the database.
    pub(super) fn stamp(&self) -> Option<Stamp> {
        let mut both = [0u8; 2 * HEADER_BYTES];
        read_at_start(&self.file, &mut both)?;
        // SQLite's own reader protocol (walIndexTryHdr): writers write the second copy, then
        // the first, so equal copies are a whole header, and a torn read shows as unequal.
        let (first, second) = both.split_at(HEADER_BYTES);
        (first[IS_INIT] != 0 && first == second).then(|| first.try_into().ok())?
    }

    /// How many frames the WAL holds (committed since it last started over), or `None` when
    /// the header cannot be read whole.
    pub(super) fn frames(&self) -> Option<u32> {
        let stamp = self.stamp()?;
        Some(u32::from_ne_bytes(
            stamp[MX_FRAME..MX_FRAME + 4].try_into().ok()?,
        ))
    }
}

/// The writer connection's checkpoint, taken off its commits.
///
/// SQLite checkpoints inside the `COMMIT` that brings the WAL to [`CHECKPOINT_FRAMES`]: the
/// commit returns only after the checkpoint has copied the pages into the database file and
/// synced both files, and nothing of its batch is answered until then. With the writer's
/// `wal_autocheckpoint` off, the same passive checkpoint runs here after the batch has been
/// answered, while the server reads the next requests. Writes queued meanwhile wait for it, as
/// they waited for the commit before.
pub(super) fn checkpoint_if_due(writer: &rusqlite::Connection, index: &WalIndex) {
    if index
        .frames()
        .is_some_and(|frames| frames >= CHECKPOINT_FRAMES)
    {
        // A checkpoint that fails (a reader holds the frames) is tried again after the next
        // commit, as SQLite's own would be.
        if let Err(e) = writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "WAL checkpoint failed");
        }
    }
}

#[cfg(unix)]
fn read_at_start(file: &File, buf: &mut [u8]) -> Option<()> {
    file.read_exact_at(buf, 0).ok()
}

/// No positioned read that leaves a shared handle's cursor alone: every request reads the
/// database instead.
#[cfg(not(unix))]
fn read_at_start(_file: &File, _buf: &mut [u8]) -> Option<()> {
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn every_commit_of_any_connection_moves_the_stamp_and_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let a = Connection::open(&path).unwrap();
        a.pragma_update(None, "journal_mode", "WAL").unwrap();
        a.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let index = WalIndex::open(&path).expect("a WAL database has a wal-index");
        let start = index.stamp().expect("an initialised header");

        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&a), 0);
        assert_eq!(index.stamp(), Some(start), "a read is not a commit");

        // Another connection, as another process would be.
        let b = Connection::open(&path).unwrap();
        b.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let after_insert = index.stamp().unwrap();
        assert_ne!(after_insert, start);
        b.execute("UPDATE t SET x = 2", []).unwrap();
        assert_ne!(index.stamp().unwrap(), after_insert);

        // A checkpoint moves pages into the file but commits nothing new.
        let before_checkpoint = index.stamp().unwrap();
        b.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(index.stamp(), Some(before_checkpoint));
        // The commit after a full checkpoint restarts the WAL from its start, with new salts,
        // and must not look like an old point in history.
        b.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        b.execute("UPDATE t SET x = 3", []).unwrap();
        let restarted = index.stamp().unwrap();
        assert!(![start, after_insert, before_checkpoint].contains(&restarted));
    }

    #[test]
    fn a_database_outside_wal_mode_has_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        assert!(WalIndex::open(&path).is_none());
    }

    /// Only a file that holds both copies of the header is an index, and only an initialised
    /// header whose copies agree is a stamp (a commit rewriting it shows as copies that differ).
    #[test]
    fn a_short_torn_or_uninitialised_header_is_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let shm = dir.path().join("db.sqlite3-shm");
        let header = |init: u8, frames: u32| {
            let mut header = [0u8; HEADER_BYTES];
            header[IS_INIT] = init;
            header[MX_FRAME..MX_FRAME + 4].copy_from_slice(&frames.to_ne_bytes());
            header
        };
        std::fs::write(&shm, [0u8; 60]).unwrap();
        assert!(WalIndex::open(&path).is_none(), "shorter than two headers");

        std::fs::write(&shm, [header(1, 7), header(1, 7)].concat()).unwrap();
        let index = WalIndex::open(&path).expect("two headers");
        assert_eq!(index.frames(), Some(7));
        std::fs::write(&shm, [header(1, 7), header(1, 8)].concat()).unwrap();
        assert_eq!(index.stamp(), None, "torn");
        std::fs::write(&shm, [header(0, 7), header(0, 7)].concat()).unwrap();
        assert_eq!(index.stamp(), None, "not initialised");
    }
}
