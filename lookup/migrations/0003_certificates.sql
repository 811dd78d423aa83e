-- Certificates for custom hostnames (issue 21). The hostname's SSL state
-- rides on its row (one lease, one compare-and-set); issued certificates
-- and the ACME account live apart, their private keys sealed (AES-256-GCM
-- under the key-encryption key, which is never in the database).

ALTER TABLE custom_hostnames ADD COLUMN ssl_method TEXT NOT NULL DEFAULT 'http';
ALTER TABLE custom_hostnames ADD COLUMN ssl_status TEXT NOT NULL DEFAULT 'initializing';
-- A JSON array of sentences a customer can act on.
ALTER TABLE custom_hostnames ADD COLUMN ssl_errors TEXT NOT NULL DEFAULT '[]';
-- When the issuer acts next (order, retry, renewal); NULL: never by itself.
ALTER TABLE custom_hostnames ADD COLUMN ssl_next_at BIGINT DEFAULT 0;
ALTER TABLE custom_hostnames ADD COLUMN ssl_attempts BIGINT NOT NULL DEFAULT 0;
-- When the current attempt to get a certificate began (timeouts).
ALTER TABLE custom_hostnames ADD COLUMN ssl_since BIGINT;
ALTER TABLE custom_hostnames ADD COLUMN ssl_lease_owner TEXT;
ALTER TABLE custom_hostnames ADD COLUMN ssl_lease_until BIGINT;
-- The order in flight: its URL, the certificate id it will get, and that
-- certificate's key (sealed, the id as associated data), so another
-- replica can finish what a dead one began.
ALTER TABLE custom_hostnames ADD COLUMN ssl_order_url TEXT;
ALTER TABLE custom_hostnames ADD COLUMN ssl_order_cert TEXT;
ALTER TABLE custom_hostnames ADD COLUMN ssl_order_key TEXT;
-- HTTP-01: the token and the body the edge must answer; DNS-01: the TXT value.
ALTER TABLE custom_hostnames ADD COLUMN ssl_http_token TEXT;
ALTER TABLE custom_hostnames ADD COLUMN ssl_http_body TEXT;
ALTER TABLE custom_hostnames ADD COLUMN ssl_txt_value TEXT;
-- The certificate in service, if any.
ALTER TABLE custom_hostnames ADD COLUMN ssl_certificate TEXT;
CREATE INDEX custom_hostnames_ssl_due ON custom_hostnames (ssl_next_at);

CREATE TABLE certificates (
    id                     TEXT PRIMARY KEY,
    hostname_id            TEXT NOT NULL,
    hostname               TEXT NOT NULL,
    chain_pem              TEXT NOT NULL,
    key_sealed             TEXT NOT NULL,
    certificate_authority  TEXT NOT NULL,
    issuer                 TEXT NOT NULL,
    serial_number          TEXT NOT NULL,
    not_before             BIGINT NOT NULL,
    expires_on             BIGINT NOT NULL,
    renew_at               BIGINT NOT NULL,
    created_at             BIGINT NOT NULL
);
CREATE INDEX certificates_hostname ON certificates (hostname_id);

-- One ACME account per directory URL, created once, its key sealed.
CREATE TABLE acme_accounts (
    directory    TEXT PRIMARY KEY,
    credentials  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- The feed names certificates too (kind 'cert': the SDS side reloads the
-- hostname's certificate; the filter ignores it). The CHECK is widened by
-- a rebuild, the one way both SQLite and PostgreSQL accept.
CREATE TABLE change_names_v3 (
    seq   BIGINT NOT NULL,
    kind  TEXT NOT NULL CHECK (kind IN ('host', 'zone', 'cert')),
    name  TEXT NOT NULL,
    PRIMARY KEY (seq, kind, name)
);
INSERT INTO change_names_v3 (seq, kind, name) SELECT seq, kind, name FROM change_names;
DROP TABLE change_names;
ALTER TABLE change_names_v3 RENAME TO change_names;
