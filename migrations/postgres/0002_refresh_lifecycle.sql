-- Sessions (one per login), the refresh tokens issued in them (by hash: never the token), and
-- the blacklist: the SQLite schema with PostgreSQL's types.
CREATE TABLE restjwt_session (
    id text PRIMARY KEY,
    user_id integer NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    device text NOT NULL DEFAULT '',
    ip text NOT NULL DEFAULT '',
    created_at timestamp with time zone NOT NULL,
    last_refreshed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone NULL
);
CREATE INDEX restjwt_session_user ON restjwt_session (user_id);
CREATE INDEX restjwt_session_revoked ON restjwt_session (revoked_at);
CREATE INDEX restjwt_session_expires ON restjwt_session (expires_at);

CREATE TABLE restjwt_outstanding_token (
    jti text PRIMARY KEY,
    token_hash text NOT NULL,
    user_id integer NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    session_id text NULL REFERENCES restjwt_session (id) ON DELETE CASCADE,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    -- Set when the token is rotated out: what it was exchanged for, and when (Unix seconds,
    -- the successor's iat), so a retry within the grace gets the same pair back.
    successor_jti text NULL,
    successor_access_jti text NULL,
    rotated_at bigint NULL
);
CREATE INDEX restjwt_outstanding_token_expires ON restjwt_outstanding_token (expires_at);
CREATE INDEX restjwt_outstanding_token_session ON restjwt_outstanding_token (session_id);
CREATE INDEX restjwt_outstanding_token_user ON restjwt_outstanding_token (user_id);

CREATE TABLE restjwt_blacklisted_token (
    jti text PRIMARY KEY REFERENCES restjwt_outstanding_token (jti) ON DELETE CASCADE,
    blacklisted_at timestamp with time zone NOT NULL
);

-- Every instance keeps the set of ended sessions in memory (ACCESS_TOKEN_REVOCATION =
-- "session"). Whoever ends a session (an instance, the CLI, plain SQL), this tells every
-- listening instance at commit: NOTIFY restjwt_session_ended, '<session id>'.
CREATE FUNCTION restjwt_notify_session_ended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('restjwt_session_ended', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER restjwt_session_ended
    AFTER UPDATE OF revoked_at ON restjwt_session
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
    EXECUTE FUNCTION restjwt_notify_session_ended();
