-- The change feed (lookup contract v1.1). One counter row: a writer takes
-- the next sequence numbers with `UPDATE feed_head SET seq = seq + k`, the
-- last statement before its commit, so the row lock makes sequence order
-- commit order (PostgreSQL; SQLite serialises writers anyway).
-- `floor`: every change up to it has been pruned.
CREATE TABLE feed_head (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    seq    BIGINT NOT NULL,
    floor  BIGINT NOT NULL
);
INSERT INTO feed_head (id, seq, floor) VALUES (1, 0, 0);

-- The names one change affects: `host` an exact name, `zone` the name and
-- every name under it. At most 1000 names per sequence number.
CREATE TABLE change_names (
    seq   BIGINT NOT NULL,
    kind  TEXT NOT NULL CHECK (kind IN ('host', 'zone')),
    name  TEXT NOT NULL,
    PRIMARY KEY (seq, kind, name)
);
