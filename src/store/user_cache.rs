//! The PostgreSQL store's memory of users: what every authenticated request asks for, kept
//! between requests and forgotten when the row changes, whoever changes it.
//!
//! - **Exact within one instance.** This instance's own writes to a user forget it before the
//!   write returns.
//! - **Other writers** (other instances, the CLI, a Django app on the same database) are heard
//!   through `NOTIFY restjwt_user_changed, '<id>'`, sent at commit by a trigger on `auth_user`
//!   (`UPDATE`, `DELETE`, `TRUNCATE`). Between their commit and the notification's arrival an
//!   instance may still answer from memory: that delay is the staleness bound
//!   (docs/benchmarks.md measures it; a few milliseconds on one machine).
//! - **Only while listening.** Until the listener is subscribed, and from the moment its
//!   connection is lost until it is subscribed again, nothing is served from memory (and all is
//!   forgotten on subscribing, since notifications sent meanwhile were lost).
//! - **Only while the listener is known to be alive.** A connection that dies silently (a
//!   network partition without a reset) delivers nothing and reports nothing. So the listener
//!   pings the database every [`HEARTBEAT`]; each answered ping (which PostgreSQL sends after
//!   every notification committed before it) extends a lease of [`LEASE`] from the moment the
//!   ping was sent, and the memory serves nothing once the lease has run out. A change is
//!   therefore seen within its notification's delay while the connection works, and within
//!   `LEASE` whatever happens to it.
//! - **At most [`MAX_AGE`] old**, whatever the notifications say: a backstop for a trigger
//!   that someone dropped.
//! - **No stale entry from a race.** A read that began before a change and finishes after its
//!   notification would file the old row: each read notes the generation (bumped by every
//!   forgetting) before it starts, and the row is kept only if no forgetting happened since.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::User;

/// The longest an entry is served, whatever the notifications say.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// How often the listener pings the database to show that its connection is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// How long after an answered ping was sent the memory may serve: the staleness bound when
/// the listener's connection dies without a word.
pub const LEASE: Duration = Duration::from_millis(1500);

/// Enough for the active users of a busy instance; past it the memory starts over.
const ENTRIES: usize = 16_384;

/// The channel of the `auth_user` trigger; the payload is the user's id, or empty for all.
pub const USER_CHANGED_CHANNEL: &str = "restjwt_user_changed";

#[derive(Default)]
struct Inner {
    users: HashMap<i64, (User, Instant)>,
    /// Bumped by every forgetting: a read noted at an older generation is not kept.
    generation: u64,
    /// Until when the listener is known to hear every notification; `None`: not listening.
    live_until: Option<Instant>,
}

/// Users by id, served while the listener is subscribed and the entry is young enough.
#[derive(Default)]
pub(crate) struct UserMemory {
    inner: RwLock<Inner>,
}

impl UserMemory {
    /// The remembered user, if it may be served.
    pub(crate) fn get(&self, id: i64) -> Option<User> {
        let inner = self.inner.read().ok()?;
        let now = Instant::now();
        if inner.live_until.is_none_or(|until| now >= until) {
            return None;
        }
        let (user, at) = inner.users.get(&id)?;
        (now.saturating_duration_since(*at) < MAX_AGE).then(|| user.clone())
    }

    /// The generation to note before reading a user from the database (see [`Self::put`]).
    pub(crate) fn generation(&self) -> Option<u64> {
        let inner = self.inner.read().ok()?;
        inner.live_until.is_some().then_some(inner.generation)
    }

    /// Keeps `user`, read by a query that began at `generation`, unless something was
    /// forgotten since (the row may be older than what a notification announced).
    pub(crate) fn put(&self, generation: u64, user: &User, read_at: Instant) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if inner.live_until.is_none() || inner.generation != generation {
            return;
        }
        if inner.users.len() >= ENTRIES {
            inner.users.clear();
        }
        inner.users.insert(user.id, (user.clone(), read_at));
    }

    /// Forgets one user (`Some`) or all (`None`).
    pub(crate) fn forget(&self, id: Option<i64>) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        inner.generation = inner.generation.wrapping_add(1);
        match id {
            Some(id) => {
                inner.users.remove(&id);
            }
            None => inner.users.clear(),
        }
    }

    /// The listener subscribed (`true`: everything is forgotten, since notifications may
    /// have been missed) or lost its connection (`false`: nothing is served until it is back).
    pub(crate) fn set_listening(&self, is_listening: bool) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        inner.generation = inner.generation.wrapping_add(1);
        inner.users.clear();
        inner.live_until = is_listening.then(|| Instant::now() + LEASE);
    }

    /// A ping sent at `sent` was answered: every notification committed before it has been
    /// received, so the memory may serve until `sent + LEASE`.
    pub(crate) fn extend_lease(&self, sent: Instant) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if let Some(until) = &mut inner.live_until {
            *until = (*until).max(sent + LEASE);
        }
    }

    /// Reads a notification's payload: a user id, or anything else as "all users".
    pub(crate) fn forget_payload(&self, payload: &str) {
        self.forget(payload.parse().ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn user(id: i64, email: &str) -> User {
        User {
            id,
            username: format!("u{id}"),
            password: String::new(),
            email: email.into(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            last_login: None,
            date_joined: DateTime::default(),
        }
    }

    #[test]
    fn nothing_is_served_until_the_listener_is_subscribed() {
        let memory = UserMemory::default();
        assert_eq!(memory.generation(), None);
        memory.put(0, &user(1, "a"), Instant::now());
        assert_eq!(memory.get(1), None);
        memory.set_listening(true);
        let at = memory.generation().expect("listening");
        memory.put(at, &user(1, "a"), Instant::now());
        assert_eq!(memory.get(1).map(|u| u.email), Some("a".into()));
        memory.set_listening(false);
        assert_eq!(memory.get(1), None, "a lost listener serves nothing");
        memory.set_listening(true);
        assert_eq!(memory.get(1), None, "and forgets what it had");
    }

    #[test]
    fn nothing_is_served_once_the_lease_has_run_out() {
        let memory = UserMemory::default();
        memory.set_listening(true);
        let at = memory.generation().expect("listening");
        memory.put(at, &user(1, "a"), Instant::now());
        assert!(memory.get(1).is_some());
        let Some(long_ago) = Instant::now().checked_sub(LEASE * 2) else {
            return; // a clock this young cannot express the age
        };
        // Pretend the last answered ping is long past.
        memory.inner.write().expect("lock").live_until = Some(long_ago + LEASE);
        assert_eq!(memory.get(1), None, "no ping answered within the lease");
        memory.extend_lease(Instant::now());
        assert!(memory.get(1).is_some(), "a ping answered now extends it");
    }

    #[test]
    fn a_read_that_began_before_a_change_is_not_kept() {
        let memory = UserMemory::default();
        memory.set_listening(true);
        let before = memory.generation().expect("listening");
        // The change's notification arrives while the read is under way.
        memory.forget_payload("1");
        memory.put(before, &user(1, "old"), Instant::now());
        assert_eq!(memory.get(1), None);
        let after = memory.generation().expect("listening");
        memory.put(after, &user(1, "new"), Instant::now());
        assert_eq!(memory.get(1).map(|u| u.email), Some("new".into()));
    }

    #[test]
    fn a_notification_forgets_its_user_or_all_and_old_entries_expire() {
        let memory = UserMemory::default();
        memory.set_listening(true);
        let at = memory.generation().expect("listening");
        memory.put(at, &user(1, "a"), Instant::now());
        memory.put(at, &user(2, "b"), Instant::now());
        memory.forget_payload("1");
        assert_eq!(memory.get(1), None);
        assert!(memory.get(2).is_some());
        memory.forget_payload("");
        assert_eq!(memory.get(2), None);
        let at = memory.generation().expect("listening");
        let Some(long_ago) = Instant::now().checked_sub(MAX_AGE) else {
            return; // a clock this young cannot express the age
        };
        memory.put(at, &user(3, "c"), long_ago);
        assert_eq!(memory.get(3), None, "older than MAX_AGE");
    }
}
