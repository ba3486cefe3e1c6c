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
//! - **A failed job changes nothing**: a batch where one fails is rolled back and run again
//!   with each job inside a savepoint that is rolled back when it fails, so its partial
//!   writes never reach the commit of the others (see [`commit_batch`]).
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
use super::wal_index::{WalIndex, checkpoint_if_due};
use super::{db_err, poisoned};

/// The most jobs one transaction takes, so that a long queue still commits (and answers) in
/// steps of bounded latency.
const MAX_BATCH: usize = 256;

/// A write waiting for its batch.
trait Job: Send {
    /// Runs the write on `conn` (again, when its batch is redone), keeps its result and says
    /// whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands the kept result to the caller once the fate of the batch's commit is known.
    fn deliver(self: Box<Self>, commit: Result<(), String>);
}

struct Write<T, F> {
    f: F,
    /// `None` until the write has run to its end (never run, or it panicked).
    result: Option<Result<T, StoreError>>,
    answer: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        // A panic below leaves `None`, not an earlier run's result.
        self.result = None;
        let result = (self.f)(conn);
        let is_ok = result.is_ok();
        self.result = Some(result);
        is_ok
    }

    fn deliver(self: Box<Self>, commit: Result<(), String>) {
        let result = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            // Its own error says more than the commit's (it was rolled back anyway).
            (Err(_), Some(Err(own))) => Err(own),
            (Err(e), _) => Err(StoreError::unavailable(e)),
            (Ok(()), None) => Err(StoreError::unavailable(
                "a grouped write did not finish (it panicked)",
            )),
        };
        // The caller may have gone (a dropped request): the write stands regardless.
        let _ = self.answer.send(result);
    }
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Box<dyn Job>>,
    /// A blocking task is running batches: new jobs only need to queue.
    is_draining: bool,
}

/// The group committer of one writer connection.
pub(super) struct GroupCommit {
    writer: Arc<Mutex<Connection>>,
    queue: Arc<Mutex<Queue>>,
    /// The database's wal-index when the writer's checkpoints are left to the committer
    /// (its `wal_autocheckpoint` off): see [`checkpoint_if_due`].
    wal: Option<Arc<WalIndex>>,
}

impl GroupCommit {
    pub(super) fn new(writer: Arc<Mutex<Connection>>, wal: Option<Arc<WalIndex>>) -> Self {
        Self {
            writer,
            queue: Arc::default(),
            wal,
        }
    }

    /// Runs `f` inside a transaction shared with the writes queued beside it, and returns its
    /// result once that transaction is committed. `f` must not begin or end transactions of
    /// its own, and may run twice: when another write of its batch fails, the batch is rolled
    /// back and run again (see [`commit_batch`]), so `f` must depend only on what it captured
    /// and on the database.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Box::new(Write {
            f,
            result: None,
            answer,
        });
        let start = {
            let mut queue = self.queue.lock().map_err(|_| poisoned())?;
            queue.jobs.push(job);
            !std::mem::replace(&mut queue.is_draining, true)
        };
        if start {
            let writer = Arc::clone(&self.writer);
            let queue = Arc::clone(&self.queue);
            let wal = self.wal.clone();
            tokio::task::spawn_blocking(move || drain(&writer, &queue, wal.as_deref()));
        }
        answered
            .await
            .map_err(|_| StoreError::unavailable("a grouped write was lost (its batch panicked)"))?
    }
}

/// Commits batches until the queue is empty.
fn drain(writer: &Mutex<Connection>, queue: &Mutex<Queue>, wal: Option<&WalIndex>) {
    loop {
        // Where the server shares one core with its runtime, the writes that queue while
        // this thread runs are few; a yield lets the runtime queue the requests it has
        // already read, so that they share the batch (4x larger batches, 1.06x rotations on
        // one core). With a core to spare, nothing else is waiting and it returns at once.
        std::thread::yield_now();
        // The writer is locked per batch, so other writes of this process (migrations,
        // maintenance) get their turn between batches.
        let conn = writer.lock();
        let mut jobs = {
            let Ok(mut queue) = queue.lock() else { return };
            if queue.jobs.is_empty() {
                queue.is_draining = false;
                return;
            }
            let take = queue.jobs.len().min(MAX_BATCH);
            queue.jobs.drain(..take).collect::<Vec<_>>()
        };
        match conn {
            Ok(conn) => {
                let commit = commit_batch(&conn, &mut jobs);
                for job in jobs {
                    job.deliver(commit.clone());
                }
                if let Some(wal) = wal {
                    checkpoint_if_due(&conn, wal);
                }
            }
            // Dropping the jobs drops their answer channels: each caller gets an error.
            Err(_) => drop(jobs),
        }
    }
}

/// Runs `jobs` in one transaction and commits it; a failed job changes nothing.
///
/// The batch runs first without savepoints. A savepoint per job made SQLite copy every page
/// a job touched into its statement journal before changing it (8% of a rotation's CPU), only
/// to undo a failure that does not come in normal operation (a rotation's refusals are
/// answers, not errors). When a job does fail (or panics), the whole transaction is rolled
/// back and the batch runs again from the same state, each job in a savepoint that is rolled
/// back when it fails: the jobs before it do what they did the first time.
fn commit_batch(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), String> {
    plain(conn, jobs).unwrap_or_else(|| with_savepoints(conn, jobs))
}

/// The batch in one transaction without savepoints; `None` when a job failed, with the
/// transaction rolled back so that the batch can run again from the same state.
fn plain(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Option<Result<(), String>> {
    if let Err(e) = begin(conn) {
        // None ran: each answer is the error.
        return Some(Err(e));
    }
    for job in jobs.iter_mut() {
        if !run_job(conn, job.as_mut()) || conn.is_autocommit() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return None;
        }
    }
    Some(finish(conn, Ok(())))
}

/// The batch in one transaction, each job in a savepoint rolled back when the job fails.
fn with_savepoints(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), String> {
    begin(conn)?;
    let ran = jobs.iter_mut().try_for_each(|job| {
        run(conn, "SAVEPOINT job").map_err(|e| db_err(e).to_string())?;
        let end = if run_job(conn, job.as_mut()) {
            run(conn, "RELEASE job")
        } else {
            run(conn, "ROLLBACK TO job").and_then(|()| run(conn, "RELEASE job"))
        };
        end.map_err(|e| db_err(e).to_string())?;
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (a full disk, an I/O error).
            return Err("the database rolled the batch's transaction back".to_owned());
        }
        Ok(())
    });
    finish(conn, ran)
}

fn begin(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| db_err(e).to_string())
}

/// Runs one job; a panic counts as a failure (its caller is told by [`Job::deliver`]).
fn run_job(conn: &Connection, job: &mut dyn Job) -> bool {
    std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn))).unwrap_or(false)
}

/// Commits when the jobs ran, and leaves no transaction open either way.
fn finish(conn: &Connection, ran: Result<(), String>) -> Result<(), String> {
    let commit = ran.and_then(|()| {
        conn.execute_batch("COMMIT")
            .map_err(|e| db_err(e).to_string())
    });
    // Open here only after an error: a failed job's, or a failed COMMIT's (a deferred
    // constraint), which leaves its transaction open.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    commit
}

/// Runs one statement of the batch's bookkeeping, compiled once per connection (they run
/// twice per job when a batch is redone).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn store() -> (Arc<Mutex<Connection>>, GroupCommit) {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .expect("create");
        let writer = Arc::new(Mutex::new(conn));
        (Arc::clone(&writer), GroupCommit::new(writer, None))
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

    /// Queues `f` behind the writes already queued and waits until it is queued, so that a
    /// test decides the order of a batch. Each call counts its runs in `runs[i]`.
    async fn queue(
        group: &Arc<GroupCommit>,
        runs: &Arc<[AtomicUsize; 3]>,
        i: usize,
        f: fn(&Connection) -> Result<i64, StoreError>,
    ) -> tokio::task::JoinHandle<Result<i64, StoreError>> {
        let queued = group.queue.lock().expect("queue").jobs.len();
        let task = {
            let (group, runs) = (Arc::clone(group), Arc::clone(runs));
            tokio::spawn(async move {
                group
                    .run(move |conn| {
                        runs[i].fetch_add(1, Ordering::SeqCst);
                        f(conn)
                    })
                    .await
            })
        };
        while group.queue.lock().expect("queue").jobs.len() == queued {
            tokio::task::yield_now().await;
        }
        task
    }

    fn insert(conn: &Connection, n: i64) -> Result<i64, StoreError> {
        conn.execute("INSERT INTO t (n) VALUES (?)", [n])
            .map_err(db_err)?;
        Ok(n)
    }

    /// Three writes in one batch (queued while the writer is held), the middle one `middle`:
    /// what each was answered and how often each ran.
    #[allow(
        clippy::await_holding_lock,
        reason = "the point: the writer thread waits on this lock while the writes queue; \
                  the awaits only queue them, on a runtime with other workers"
    )]
    async fn batch_of_three(
        middle: fn(&Connection) -> Result<i64, StoreError>,
    ) -> (Vec<Result<i64, String>>, Vec<usize>, Vec<i64>) {
        let (writer, group) = store();
        let group = Arc::new(group);
        let runs = Arc::new([const { AtomicUsize::new(0) }; 3]);
        let held = writer.lock().expect("lock");
        let tasks = [
            queue(&group, &runs, 0, |conn| insert(conn, 1)).await,
            queue(&group, &runs, 1, middle).await,
            queue(&group, &runs, 2, |conn| insert(conn, 3)).await,
        ];
        drop(held);
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("task").map_err(|e| e.to_string()));
        }
        let runs = runs.iter().map(|n| n.load(Ordering::SeqCst)).collect();
        (answers, runs, rows(&writer))
    }

    /// A batch that fails nowhere runs each write once, without savepoints.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_without_failures_runs_each_write_once() {
        let (answers, runs, rows) = batch_of_three(|conn| insert(conn, 2)).await;
        assert_eq!(answers, [Ok(1), Ok(2), Ok(3)]);
        assert_eq!(runs, [1, 1, 1]);
        assert_eq!(rows, [1, 2, 3]);
    }

    /// A write that fails after writing sends its batch round again with savepoints: the
    /// write before it runs twice but is stored once, and the failed write leaves nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_reruns_its_batch_and_leaves_nothing() {
        let (answers, runs, rows) = batch_of_three(|conn| {
            insert(conn, 2)?;
            Err(StoreError::unavailable("refused"))
        })
        .await;
        assert_eq!(answers[0], Ok(1));
        assert!(answers[1].is_err(), "{answers:?}");
        assert_eq!(answers[2], Ok(3));
        // The third was not reached the first time.
        assert_eq!(runs, [2, 2, 1]);
        assert_eq!(rows, [1, 3]);
    }

    /// A write that panics after writing is answered with an error and leaves nothing; the
    /// others of its batch commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_write_leaves_nothing_and_the_others_commit() {
        let (answers, runs, rows) = batch_of_three(|conn| {
            insert(conn, 2)?;
            panic!("a write that panics");
        })
        .await;
        assert_eq!(answers[0], Ok(1));
        assert!(
            answers[1].as_ref().is_err_and(|e| e.contains("panicked")),
            "{answers:?}"
        );
        assert_eq!(answers[2], Ok(3));
        assert_eq!(runs, [2, 2, 1]);
        assert_eq!(rows, [1, 3]);
    }

    /// A batch whose `COMMIT` fails (here on a deferred foreign key) answers its write with the
    /// error, stores nothing of it, and leaves the writer ready for the next batch.
    #[tokio::test]
    async fn a_failed_commit_is_answered_and_the_next_batch_commits() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE t (n INTEGER PRIMARY KEY,
                             p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .expect("create");
        let writer = Arc::new(Mutex::new(conn));
        let group = GroupCommit::new(Arc::clone(&writer), None);
        let insert = |sql: &'static str| {
            move |conn: &Connection| conn.execute(sql, []).map(drop).map_err(db_err)
        };
        let orphan = group
            .run(insert("INSERT INTO t (n, p) VALUES (1, 99)"))
            .await;
        assert!(orphan.is_err(), "its commit failed: {orphan:?}");
        group
            .run(insert("INSERT INTO t (n) VALUES (2)"))
            .await
            .expect("the next batch");
        assert_eq!(rows(&writer), vec![2]);
    }
}
