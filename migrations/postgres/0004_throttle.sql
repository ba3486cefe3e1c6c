-- Rate-limit buckets shared by every instance (GCRA): one row a bucket, keyed by a hash of
-- the scope and what it counts (an address, an account), holding the theoretical arrival time
-- of the next request in Unix milliseconds. UNLOGGED: a bucket lost in a crash only forgets
-- some recent attempts, and a login costs no WAL write for it.
CREATE UNLOGGED TABLE restjwt_throttle (
    key text PRIMARY KEY,
    tat bigint NOT NULL
);
CREATE INDEX restjwt_throttle_tat ON restjwt_throttle (tat);
