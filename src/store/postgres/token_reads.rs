//! Concurrent reads of refresh-token state share round trips.
//!
//! A refresh without rotation asks PostgreSQL one question (is this token blacklisted, is its
//! session over?), and on a busy instance dozens ask at once. Each round trip costs both
//! processes a wake-up and a context switch, which on one machine is most of a refresh's CPU.
//! So a read joins a queue, and whoever holds one of a few leader places takes the whole queue
//! and asks for all of it in one statement (`WHERE jti = ANY($1)`), then hands each reader its
//! answer. A lone read leads at once and waits for nobody; under load, the queue grows while the
//! leaders' statements run, and the next leader's batch is larger.
//!
//! Every answer comes from a statement that started after its read was queued, so it sees
//! everything committed before the read began: the guarantee of a read of its own. A batch that
//! fails, or a leader that is dropped (its client went away), answers nobody: each of its
//! readers then reads alone, and gets its own result or error.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::{Semaphore, oneshot};

use crate::store::TokenState;

/// The most tokens one statement asks about.
const MOST_PER_BATCH: usize = 256;

/// Batches in flight at once: one runs while the next gathers. More leaders make smaller
/// batches: with one per pooled connection (10), refresh on PostgreSQL gained a third; with
/// two, it went from 0.25 to 0.78 of SQLite's figure (docs/benchmarks.md). A read waits at
/// most for the batches already running, one round trip.
const LEADERS: usize = 2;

struct Reader {
    jti: String,
    /// `None`: the batch failed; read alone.
    answer: oneshot::Sender<Option<TokenState>>,
}

pub(super) struct TokenReads {
    queue: Mutex<Vec<Reader>>,
    leaders: Semaphore,
}

impl TokenReads {
    pub(super) fn new() -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            leaders: Semaphore::new(LEADERS),
        }
    }

    /// The state of `jti`, read together with whatever other reads are waiting; `None` when
    /// the batch failed (the caller reads alone). `fetch` asks for the states of a batch's
    /// tokens; a token it leaves out is unknown (the default state).
    pub(super) async fn read<F, Fut>(&self, jti: &str, fetch: F) -> Option<TokenState>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Option<HashMap<String, TokenState>>>,
    {
        let (answer, mut answered) = oneshot::channel();
        self.queue.lock().ok()?.push(Reader {
            jti: jti.to_owned(),
            answer,
        });
        let permit = tokio::select! {
            biased;
            // Another leader took this read along.
            answer = &mut answered => return answer.ok().flatten(),
            permit = self.leaders.acquire() => permit.ok()?,
        };
        let batch: Vec<Reader> = {
            let mut queue = self.queue.lock().ok()?;
            let n = queue.len().min(MOST_PER_BATCH);
            queue.drain(..n).collect()
        };
        if !batch.is_empty() {
            let jtis = batch.iter().map(|r| r.jti.clone()).collect();
            let states = fetch(jtis).await;
            drop(permit);
            for reader in batch {
                let state = states
                    .as_ref()
                    .map(|states| states.get(&reader.jti).cloned().unwrap_or_default());
                let _ = reader.answer.send(state);
            }
        } else {
            drop(permit);
        }
        // This read was in this batch, or in one another leader took just before.
        answered.await.ok().flatten()
    }
}
