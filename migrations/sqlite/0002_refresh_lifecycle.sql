-- Sessions (one per login), the refresh tokens issued in them (by hash: never the token), and
-- the blacklist. Times are Django-style UTC text, which sorts like the time it names.
CREATE TABLE restjwt_session (
    id TEXT PRIMARY KEY,
    user_id INTEGER NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    device TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    last_refreshed_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT NULL
);
CREATE INDEX restjwt_session_user ON restjwt_session (user_id);
CREATE INDEX restjwt_session_revoked ON restjwt_session (revoked_at);
CREATE INDEX restjwt_session_expires ON restjwt_session (expires_at);

CREATE TABLE restjwt_outstanding_token (
    jti TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    user_id INTEGER NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    session_id TEXT NULL REFERENCES restjwt_session (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    -- Set when the token is rotated out: what it was exchanged for, and when (Unix seconds,
    -- the successor's iat), so a retry within the grace gets the same pair back.
    successor_jti TEXT NULL,
    successor_access_jti TEXT NULL,
    rotated_at INTEGER NULL
);
CREATE INDEX restjwt_outstanding_token_expires ON restjwt_outstanding_token (expires_at);
CREATE INDEX restjwt_outstanding_token_session ON restjwt_outstanding_token (session_id);

CREATE TABLE restjwt_blacklisted_token (
    jti TEXT PRIMARY KEY REFERENCES restjwt_outstanding_token (jti) ON DELETE CASCADE,
    blacklisted_at TEXT NOT NULL
);
