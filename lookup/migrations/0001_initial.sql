-- One schema for SQLite and PostgreSQL: TEXT and BIGINT only, ids made by
-- the service (no SERIAL/AUTOINCREMENT), times in Unix seconds.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    suspended   BIGINT NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- An account with zones or hostnames cannot be deleted (NO ACTION; SQLite
-- reports RESTRICT with another error code): the
-- operator removes them first, so nothing disappears by accident.
CREATE TABLE zones (
    name        TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts (id),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX zones_account ON zones (account);

CREATE TABLE custom_hostnames (
    id                   TEXT PRIMARY KEY,
    hostname             TEXT NOT NULL UNIQUE,
    account              TEXT NOT NULL REFERENCES accounts (id),
    status               TEXT NOT NULL
        CHECK (status IN ('pending', 'active', 'moved', 'blocked', 'timed_out')),
    verification_token   TEXT NOT NULL,
    -- A JSON array of sentences.
    verification_errors  TEXT NOT NULL DEFAULT '[]',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    last_checked_at      BIGINT,
    next_check_at        BIGINT,
    -- The replica checking this hostname now, and until when.
    lease_owner          TEXT,
    lease_until          BIGINT
);
CREATE INDEX custom_hostnames_account ON custom_hostnames (account, hostname);
CREATE INDEX custom_hostnames_due ON custom_hostnames (next_check_at);

-- Only the SHA-256 of a token's secret is kept.
CREATE TABLE api_tokens (
    id             TEXT PRIMARY KEY,
    account        TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret_sha256  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX api_tokens_account ON api_tokens (account);

CREATE TABLE audit_log (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    reason   TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);
