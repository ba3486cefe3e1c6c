//! Noticing commits to a WAL-mode SQLite file without a transaction: the user cache's clock.
//!
//! Every connection in WAL mode, in any process, shares the wal-index (the `-shm` file, mapped
//! into memory). Its header is rewritten by every commit before the commit returns: a change
//! counter, the last committed WAL frame, the WAL salts and a checksum over them
//! (<https://sqlite.org/walformat.html>). Its layout is part of SQLite's file format, since
//! processes linked with different SQLite versions share it, so reading it is sound across
//! versions. Reading it costs a few loads from mapped memory; a read transaction costs two
//! `fcntl` lock calls, which were a tenth of a `GET /api/user/`.
//!
//! A reader sees a commit of another process the moment it returns: the header is one shared
//! page, not a cache. What this cannot see is a process that bypasses the wal-index (SQLite's
//! `locking_mode=EXCLUSIVE` keeps it in private memory); such a process also locks every other
//! connection out of the file, so this server's writes would fail at once.

// Mapping memory that other processes write cannot be done in safe Rust.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering, fence};

use memmap2::{Mmap, MmapOptions};

/// The header is 48 bytes, written twice (the second copy first); readers compare the two.
const HEADER_WORDS: usize = 12;
const MAPPED_BYTES: usize = 2 * HEADER_WORDS * 4;
/// Word 3 holds `isInit` in its first byte: 0 until a connection has built the index.
const IS_INIT_WORD: usize = 3;

/// A point in the database's commit history: equal stamps mean no commit in between.
pub(super) type Stamp = [u32; HEADER_WORDS];

/// The mapped header of one database's wal-index.
pub(super) struct WalIndex {
    map: Mmap,
}

impl WalIndex {
    /// Maps the header of `database`'s wal-index. `None` when the file has none (not WAL mode,
    /// or no connection has read the database yet) or it cannot be mapped.
    ///
    /// The caller must keep a connection to the database open in WAL mode for as long as it
    /// uses the result: SQLite removes or truncates the `-shm` file only when the last
    /// connection closes, and a mapping of a removed file would no longer see commits.
    pub(super) fn open(database: &Path) -> Option<Self> {
        let mut shm = database.as_os_str().to_owned();
        shm.push("-shm");
        let file = File::open(Path::new(&shm)).ok()?;
        if file.metadata().ok()?.len() < MAPPED_BYTES as u64 {
            return None;
        }
        // SAFETY: the mapping is read-only and only ever read through atomic loads (see
        // `word`), because SQLite in this and other processes writes it concurrently; the file
        // is never shrunk below its first region while a connection is open (see above).
        let map = unsafe { MmapOptions::new().len(MAPPED_BYTES).map(&file) }.ok()?;
        Some(Self { map })
    }

    fn word(&self, index: usize) -> u32 {
        assert!(index < 2 * HEADER_WORDS);
        let base = self.map.as_ptr().cast::<AtomicU32>();
        // SAFETY: in bounds (asserted; the map is MAPPED_BYTES long), 4-byte aligned (mappings
        // are page-aligned), and alive as long as `self`. Atomic loads because other processes
        // write the page while we read it.
        unsafe { (*base.add(index)).load(Ordering::Relaxed) }
    }

    /// The current stamp, or `None` while a commit is rewriting the header (or before the
    /// index exists): then nothing may be assumed, and the caller reads the database.
    pub(super) fn stamp(&self) -> Option<Stamp> {
        // SQLite's own reader protocol (walIndexTryHdr): the first copy, a barrier, the
        // second; writers write them in the opposite order, so equal copies are a whole header.
        let first: Stamp = std::array::from_fn(|i| self.word(i));
        fence(Ordering::Acquire);
        let second: Stamp = std::array::from_fn(|i| self.word(HEADER_WORDS + i));
        fence(Ordering::Acquire);
        let initialised = first[IS_INIT_WORD].to_ne_bytes()[0] != 0;
        (initialised && first == second).then_some(first)
    }
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
}
