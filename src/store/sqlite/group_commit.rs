//! Group commit: the writes that arrive while one transaction commits share the next one.
//!
//! A rotation's own work (read one row, write four) is a few microseconds; its commit is most
//! of its cost: the WAL frames of every page it touched (the token table and its indexes, the
//! blacklist, the session), the wal-index update, and every thousand frames a checkpoint with
//! its `fsync`s. Concurrent rotations touch the same few pages, so N of them in one
//! transaction write those pages once instead of N times, and hand off to the blocking thread
//! once instead of N times.
//!
//! What each caller is promised does not change:
//! - **Nothing is answered before it is committed.** A job's result is held back until the
//!   `COMMIT` of its batch returns; if the commit fails, every job of the batch gets the error
//!   (none of them was committed).
//! - **Jobs run one after the other, in arrival order, on the one writer connection**, each
//!   seeing what the jobs before it wrote: of N rotations of one token in one batch, the first
//!   rotates and the others find it rotated, exactly as if each had had its own transaction.
//! - **A failed job changes nothing**: each runs inside a savepoint that is rolled back when
//!   it returns an error, so its partial writes never reach the commit of the others.
//! - `BEGIN IMMEDIATE` takes SQLite's write lock before the first job reads, so other
//!   processes' writes are ordered before or after the whole batch, never inside it.
//!
//! The queue has no timer: a write that arrives when nothing is committing starts a batch of
//! one at once, so a lone write waits for nobody. Batches form only under load, from the
//! writes that queued while the previous commit ran.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::super::StoreError;
use super::{db_err, poisoned};

/// The most jobs one transaction takes, so that a long queue still commits (and answers) in
/// steps of bounded latency.
const MAX_BATCH: usize = 256;

/// What a job hands back after running: whether it succeeded (its savepoint is kept) and how
/// to deliver its result once the batch's commit is known.
type Ran = (bool, Box<dyn FnOnce(Result<(), String>) + Send>);

/// A write waiting for its batch: called with the connection to run on, or with `None` when
/// the batch failed before its turn (then it only delivers the batch's error).
type Job = Box<dyn FnOnce(Option<&Connection>) -> Ran + Send>;

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A blocking task is running batches: new jobs only need to queue.
    is_draining: bool,
}

/// The group committer of one writer connection.
pub(super) struct GroupCommit {
    writer: Arc<Mutex<Connection>>,
    queue: Arc<Mutex<Queue>>,
}

impl GroupCommit {
    pub(super) fn new(writer: Arc<Mutex<Connection>>) -> Self {
        Self {
            writer,
            queue: Arc::default(),
        }
    }

    /// Runs `f` inside a transaction shared with the writes queued beside it, and returns its
    /// result once that transaction is committed. `f` must not begin or end transactions of
    /// its own.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = conn.map(f);
            let is_ok = matches!(result, Some(Ok(_)));
            let deliver = move |commit: Result<(), String>| {
                let result = match (commit, result) {
                    (Ok(()), Some(result)) => result,
                    // Its own error says more than the commit's (it was rolled back anyway).
                    (Err(_), Some(Err(own))) => Err(own),
                    (Err(e), _) => Err(StoreError::unavailable(e)),
                    (Ok(()), None) => Err(StoreError::unavailable("a grouped write was not run")),
                };
                // The caller may have gone (a dropped request): the write stands regardless.
                let _ = answer.send(result);
            };
            (is_ok, Box::new(deliver) as Box<dyn FnOnce(_) + Send>)
        });
        let start = {
            let mut queue = self.queue.lock().map_err(|_| poisoned())?;
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.is_draining, true)
        };
        if start {
            let writer = Arc::clone(&self.writer);
            let queue = Arc::clone(&self.queue);
            tokio::task::spawn_blocking(move || drain(&writer, &queue));
        }
        answered
            .await
            .map_err(|_| StoreError::unavailable("a grouped write was lost (its batch panicked)"))?
    }
}

/// Commits batches until the queue is empty.
fn drain(writer: &Mutex<Connection>, queue: &Mutex<Queue>) {
    loop {
        // Where the server shares one core with its runtime, the writes that queue while
        // this thread runs are few; a yield lets the runtime queue the requests it has
        // already read, so that they share the batch (4x larger batches, 1.06x rotations on
        // one core). With a core to spare, nothing else is waiting and it returns at once.
        std::thread::yield_now();
        // The writer is locked per batch, so other writes of this process (migrations,
        // maintenance) get their turn between batches.
        let conn = writer.lock();
        let jobs = {
            let Ok(mut queue) = queue.lock() else { return };
            if queue.jobs.is_empty() {
                queue.is_draining = false;
                return;
            }
            let take = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..take).collect::<Vec<_>>()
        };
        match conn {
            Ok(conn) => commit_batch(&conn, jobs),
            // Dropping the jobs drops their answer channels: each caller gets an error.
            Err(_) => drop(jobs),
        }
    }
}

/// Runs `jobs` in one transaction, each in a savepoint, then commits and delivers.
fn commit_batch(conn: &Connection, jobs: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = db_err(e).to_string();
        for job in jobs {
            // Not run: its answer is the error.
            let (_, deliver) = job(None);
            deliver(Err(e.clone()));
        }
        return;
    }
    let mut delivers = Vec::with_capacity(jobs.len());
    let mut broken: Option<String> = None;
    for job in jobs {
        if broken.is_some() {
            delivers.push(job(None).1);
            continue;
        }
        if let Err(e) = run(conn, "SAVEPOINT job") {
            broken = Some(db_err(e).to_string());
            delivers.push(job(None).1);
            continue;
        }
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| job(Some(conn))));
        let is_ok = matches!(&ran, Ok((true, _)));
        let end = if is_ok {
            run(conn, "RELEASE job")
        } else {
            run(conn, "ROLLBACK TO job").and_then(|()| run(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            broken = Some(db_err(e).to_string());
        } else if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (a full disk, an I/O error).
            broken = Some("the database rolled the batch's transaction back".into());
        }
        // A panicking job dropped its answer channel: its caller gets an error.
        if let Ok((_, deliver)) = ran {
            delivers.push(deliver);
        }
    }
    let commit = match broken {
        Some(e) => Err(e),
        None => conn
            .execute_batch("COMMIT")
            .map_err(|e| db_err(e).to_string()),
    };
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for deliver in delivers {
        deliver(commit.clone());
    }
}

/// Runs one statement of the batch's bookkeeping, compiled once per connection (they run
/// twice per job).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (Arc<Mutex<Connection>>, GroupCommit) {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .expect("create");
        let writer = Arc::new(Mutex::new(conn));
        (Arc::clone(&writer), GroupCommit::new(writer))
    }

    fn rows(writer: &Mutex<Connection>) -> Vec<i64> {
        let conn = writer.lock().expect("lock");
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").expect("prepare");
        stmt.query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Many writes at once (so they share batches): each is answered after its commit, a
    /// failing one leaves nothing behind and the others are unaffected, and later writes see
    /// earlier ones of their batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_in_a_batch_changes_nothing_and_the_others_commit() {
        let (writer, group) = store();
        let group = Arc::new(group);
        let tasks: Vec<_> = (0..200_i64)
            .map(|n| {
                let group = Arc::clone(&group);
                tokio::spawn(async move {
                    group
                        .run(move |conn| {
                            conn.execute("INSERT INTO t (n) VALUES (?)", [n])
                                .map_err(db_err)?;
                            if n % 7 == 0 {
                                return Err(StoreError::unavailable("refused"));
                            }
                            // The same key again fails inside SQLite: the whole job is undone.
                            if n % 11 == 0 {
                                conn.execute("INSERT INTO t (n) VALUES (?)", [n])
                                    .map_err(db_err)?;
                            }
                            Ok(n)
                        })
                        .await
                })
            })
            .collect();
        let mut answered = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                Ok(n) => answered.push(n),
                Err(e) => assert!(matches!(e, StoreError::Unavailable(_)), "{e}"),
            }
        }
        let expected: Vec<i64> = (0..200).filter(|n| n % 7 != 0 && n % 11 != 0).collect();
        assert_eq!(answered, expected);
        assert_eq!(
            rows(&writer),
            expected,
            "exactly the answered writes are stored"
        );

        // A write sees the earlier writes of its batch: it is answered with what it read.
        let seen = group
            .run(|conn| {
                conn.query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0))
                    .map_err(db_err)
            })
            .await
            .expect("count");
        assert_eq!(usize::try_from(seen).ok(), Some(expected.len()));
    }
}
