-- Rotation writes fewer pages. Every rotation added an entry to the index on `session_id`,
-- at the end of its session's range: each session's own leaf page, so N rotations of N
-- sessions in one commit wrote N pages of that index alone (three quarters of a busy
-- commit's WAL frames). The index now holds only the tokens not yet rotated out (one per
-- session while rotating), which is all that ending a session has to find: a rotated-out
-- token was blacklisted when it was rotated.
--
-- The foreign key to restjwt_session goes with it, since deleting a session would otherwise
-- scan the whole table for its tokens. Nothing needed its cascade: sessions are deleted only
-- once expired, after their tokens (a session lasts as long as its longest token), or with
-- their user, whose tokens go with it by `user_id`. SQLite changes a constraint only by
-- rebuilding the table (https://sqlite.org/lang_altertable.html#otheralter); migrations run
-- with foreign keys off and are checked before they commit.
CREATE TABLE restjwt_outstanding_token_new (
    jti TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    user_id INTEGER NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    session_id TEXT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    successor_jti TEXT NULL,
    successor_access_jti TEXT NULL,
    rotated_at INTEGER NULL
);
INSERT INTO restjwt_outstanding_token_new
    (jti, token_hash, user_id, session_id, created_at, expires_at, successor_jti,
     successor_access_jti, rotated_at)
SELECT jti, token_hash, user_id, session_id, created_at, expires_at, successor_jti,
       successor_access_jti, rotated_at
FROM restjwt_outstanding_token;
DROP TABLE restjwt_outstanding_token;
ALTER TABLE restjwt_outstanding_token_new RENAME TO restjwt_outstanding_token;
CREATE INDEX restjwt_outstanding_token_expires ON restjwt_outstanding_token (expires_at);
CREATE INDEX restjwt_outstanding_token_live_session ON restjwt_outstanding_token (session_id)
    WHERE successor_jti IS NULL;
