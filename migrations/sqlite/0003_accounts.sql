-- django-allauth's account_emailaddress and account_emailconfirmation, column for column, so a
-- Django database with allauth installed is used as it is (IF NOT EXISTS keeps its tables).
-- restjwt's confirmation keys are allauth's HMAC keys; account_emailconfirmation records when
-- each was sent (the resend cooldown).
CREATE TABLE IF NOT EXISTS "account_emailaddress" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "verified" bool NOT NULL,
    "primary" bool NOT NULL,
    "user_id" integer NOT NULL REFERENCES "auth_user" ("id") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    "email" varchar(254) NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS "account_emailaddress_user_id_email_987c8728_uniq"
    ON "account_emailaddress" ("user_id", "email");
CREATE INDEX IF NOT EXISTS "account_emailaddress_user_id_2c513194"
    ON "account_emailaddress" ("user_id");
CREATE INDEX IF NOT EXISTS "account_emailaddress_email_03be32b2"
    ON "account_emailaddress" ("email");
CREATE TABLE IF NOT EXISTS "account_emailconfirmation" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "created" datetime NOT NULL,
    "sent" datetime NULL,
    "key" varchar(64) NOT NULL UNIQUE,
    "email_address_id" integer NOT NULL REFERENCES "account_emailaddress" ("id") ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX IF NOT EXISTS "account_emailconfirmation_email_address_id_5b7f8c58"
    ON "account_emailconfirmation" ("email_address_id");
