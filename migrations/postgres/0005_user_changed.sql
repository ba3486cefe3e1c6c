-- Every instance remembers the users it has read (store::user_cache). Whoever changes or
-- deletes a user (an instance, the CLI, a Django app, plain SQL), this tells every listening
-- instance at commit: NOTIFY restjwt_user_changed, '<user id>' ('' after a TRUNCATE: all).
-- Inserts need no notice: a user is remembered only once read.
CREATE FUNCTION restjwt_notify_user_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('restjwt_user_changed', '');
    ELSE
        PERFORM pg_notify('restjwt_user_changed', OLD.id::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER restjwt_user_changed
    AFTER UPDATE OR DELETE ON auth_user
    FOR EACH ROW
    EXECUTE FUNCTION restjwt_notify_user_changed();
CREATE TRIGGER restjwt_users_truncated
    AFTER TRUNCATE ON auth_user
    FOR EACH STATEMENT
    EXECUTE FUNCTION restjwt_notify_user_changed();
