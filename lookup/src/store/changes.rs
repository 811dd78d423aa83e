//! The change feed's rows: every change that can alter some host's answer
//! gets sequence numbers, written in the transaction of the change itself.
//!
//! Order: `record` allocates from the single `feed_head` row as the last
//! statement before the commit. On PostgreSQL the row lock makes the next
//! writer wait until this one has committed, so a reader that sees seq k+1
//! sees every seq up to k too; SQLite has one writer at a time anyway.

use super::{col, Store, StoreError};
use sqlx::{Any, Transaction};
use std::collections::BTreeSet;

/// Names per sequence number and per feed answer (feed-wire format).
pub const MAX_NAMES: usize = 1000;
/// Rows per INSERT statement (3 parameters each).
const INSERT_BATCH: usize = 100;

/// The names a transaction's changes affect, collected while it runs and
/// recorded by `record` just before its commit.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    hosts: BTreeSet<String>,
    zones: BTreeSet<String>,
    certs: BTreeSet<String>,
}

impl Pending {
    pub(crate) fn len(&self) -> usize {
        self.hosts.len() + self.zones.len() + self.certs.len()
    }

    pub(crate) fn host(&mut self, name: &str) {
        self.hosts.insert(name.to_string());
    }

    pub(crate) fn zone(&mut self, name: &str) {
        self.zones.insert(name.to_string());
    }

    /// The certificate served for `name` changed (issued, renewed, withdrawn).
    pub(crate) fn cert(&mut self, name: &str) {
        self.certs.insert(name.to_string());
    }

    /// Every custom hostname of `account` (its answers name the account).
    pub(crate) async fn hostnames_of(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        account: &str,
    ) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT hostname FROM custom_hostnames WHERE account = $1")
            .bind(account)
            .fetch_all(&mut **tx)
            .await?;
        for row in &rows {
            self.hosts.insert(col(row, "hostname")?);
        }
        Ok(())
    }

    /// The zones and custom hostnames of `account`: what its suspension touches.
    pub(crate) async fn account(&mut self, tx: &mut Transaction<'_, Any>, account: &str) -> Result<(), StoreError> {
        let rows = sqlx::query("SELECT name FROM zones WHERE account = $1").bind(account).fetch_all(&mut **tx).await?;
        for row in &rows {
            self.zones.insert(col(row, "name")?);
        }
        self.hostnames_of(tx, account).await
    }
}

/// Writes `pending` under fresh sequence numbers (one per 1000 names) and
/// answers the last, or `None` when nothing was named. Call it last, right
/// before the commit: it holds the counter's lock until then.
pub(crate) async fn record(tx: &mut Transaction<'_, Any>, pending: Pending) -> Result<Option<u64>, StoreError> {
    let names: Vec<(&str, &str)> = pending
        .hosts
        .iter()
        .map(|h| ("host", h.as_str()))
        .chain(pending.zones.iter().map(|z| ("zone", z.as_str())))
        .chain(pending.certs.iter().map(|c| ("cert", c.as_str())))
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let chunks: Vec<&[(&str, &str)]> = names.chunks(MAX_NAMES).collect();
    let count = i64::try_from(chunks.len()).map_err(|_| StoreError::Conflict("too many changes".into()))?;
    let row = sqlx::query("UPDATE feed_head SET seq = seq + $1 WHERE id = 1 RETURNING seq")
        .bind(count)
        .fetch_one(&mut **tx)
        .await?;
    let last: i64 = col(&row, "seq")?;
    let first = last - count + 1;
    for (seq, chunk) in (first..).zip(&chunks) {
        for batch in chunk.chunks(INSERT_BATCH) {
            let values: Vec<String> =
                (0..batch.len()).map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3)).collect();
            let sql = format!("INSERT INTO change_names (seq, kind, name) VALUES {}", values.join(", "));
            let mut query = sqlx::query(&sql);
            for (kind, name) in batch {
                query = query.bind(seq).bind(*kind).bind(*name);
            }
            query.execute(&mut **tx).await?;
        }
    }
    Ok(Some(seq_u64(last)))
}

fn seq_u64(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// What the feed answers for a `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Every change in (since, seq]: `seq == since` and nothing named when
    /// nothing changed.
    /// `certs`: hostnames whose certificate changed (contract v1.1 readers
    /// that know only hosts and zones ignore them).
    Page { seq: u64, hosts: Vec<String>, zones: Vec<String>, certs: Vec<String> },
    /// `since` is older than what is kept, or beyond the current sequence.
    Reset { seq: u64 },
}

impl Changes {
    pub fn seq(&self) -> u64 {
        match self {
            Changes::Page { seq, .. } | Changes::Reset { seq } => *seq,
        }
    }

    /// A page that names nothing (the long poll waits on it).
    pub fn is_empty(&self) -> bool {
        matches!(self, Changes::Page { hosts, zones, certs, .. } if hosts.is_empty() && zones.is_empty() && certs.is_empty())
    }
}

/// The counter row: the last sequence number given out and the last pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedHead {
    pub seq: u64,
    pub floor: u64,
}

impl Store {
    pub async fn feed_head(&self) -> Result<FeedHead, StoreError> {
        let row = sqlx::query("SELECT seq, floor FROM feed_head WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(FeedHead { seq: seq_u64(col(&row, "seq")?), floor: seq_u64(col(&row, "floor")?) })
    }

    /// The changes after `since`, at most `MAX_NAMES` names, whole sequence
    /// numbers only.
    pub async fn changes_since(&self, since: u64) -> Result<Changes, StoreError> {
        let Ok(after) = i64::try_from(since) else {
            return Ok(Changes::Reset { seq: self.feed_head().await?.seq });
        };
        let rows = sqlx::query("SELECT seq, kind, name FROM change_names WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind((MAX_NAMES + 1) as i64)
            .fetch_all(&self.pool)
            .await?;
        // Read after the rows: a prune that removed rows we wanted has
        // raised the floor by then (rows and floor change in one
        // transaction), and the head has seen every row read.
        let head = self.feed_head().await?;
        if since < head.floor || since > head.seq {
            return Ok(Changes::Reset { seq: head.seq });
        }
        let mut rows: Vec<(i64, String, String)> = rows
            .iter()
            .map(|r| Ok((col(r, "seq")?, col(r, "kind")?, col(r, "name")?)))
            .collect::<Result<_, StoreError>>()?;
        if rows.len() > MAX_NAMES {
            // The last sequence number may be cut: it goes to the next page.
            // Each holds at most MAX_NAMES names, so at least one remains.
            let cut = rows[MAX_NAMES].0;
            rows.retain(|(seq, _, _)| *seq < cut);
        }
        let seq = rows.last().map(|(seq, _, _)| seq_u64(*seq)).unwrap_or(since);
        let mut hosts = BTreeSet::new();
        let mut zones = BTreeSet::new();
        let mut certs = BTreeSet::new();
        for (_, kind, name) in rows {
            match kind.as_str() {
                "host" => hosts.insert(name),
                "zone" => zones.insert(name),
                "cert" => certs.insert(name),
                other => return Err(StoreError::Corrupt(format!("change kind {other:?}"))),
            };
        }
        Ok(Changes::Page {
            seq,
            hosts: hosts.into_iter().collect(),
            zones: zones.into_iter().collect(),
            certs: certs.into_iter().collect(),
        })
    }

    /// Drops every change but the last `keep` sequence numbers; the new floor.
    pub async fn prune_changes(&self, keep: u64) -> Result<u64, StoreError> {
        let head = self.feed_head().await?;
        let floor = head.seq.saturating_sub(keep);
        if floor <= head.floor {
            return Ok(head.floor);
        }
        let floor = i64::try_from(floor).map_err(|_| StoreError::Corrupt("feed_head.seq".into()))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE feed_head SET floor = $1 WHERE id = 1 AND floor < $1")
            .bind(floor)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM change_names WHERE seq <= $1").bind(floor).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(seq_u64(floor))
    }

    /// The newest sequence number this process knows of, updated at once
    /// by its own writes and by `refresh_head` for other processes' writes.
    pub fn subscribe_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Reads the counter row and wakes local waiters if it moved.
    pub async fn refresh_head(&self) -> Result<u64, StoreError> {
        let seq = self.feed_head().await?.seq;
        self.announce(Some(seq));
        Ok(seq)
    }

    /// After a commit: wakes whoever waits for a sequence number past `seq`'s.
    pub(crate) fn announce(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.head.send_if_modified(|known| {
                let newer = seq > *known;
                if newer {
                    *known = seq;
                }
                newer
            });
        }
    }
}
