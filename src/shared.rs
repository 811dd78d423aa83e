//! The cache and lock tables in Proxy-Wasm shared data (one store per
//! `vm_id`, shared by every worker VM of an Envoy).

use cname_guard_core::cache::{choose_victim, decode_slot, raise_uses, Entry, Slots, Worth};
use cname_guard_core::changes::{self, Eviction, Lease};
use cname_guard_core::coalesce::{self, Lock, Step};
use cname_guard_core::inflight::Table;
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

const CAS_TRIES: usize = 4;

fn slot_key(n: u32) -> String {
    format!("cname_guard.slot.{n}")
}

fn lock_key(set: u32) -> String {
    format!("cname_guard.lock.{set}")
}

fn get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    hostcalls::get_shared_data(key).unwrap_or((None, None))
}

/// The entry of `host`, if either slot of its set holds one.
pub fn read(slots: Slots, host: &str) -> Option<Entry> {
    if !slots.enabled() {
        return None;
    }
    slots.slots_of(host).into_iter().find_map(|n| get(&slot_key(n)).0.and_then(|v| Entry::decode(&v, host)))
}

/// What a write did to the table, for the metrics.
#[derive(Debug, Default)]
pub struct Written {
    pub filled_empty: bool,
    pub evicted: bool,
}

/// Stores `entry` for `host`, with CAS so that two workers writing one set
/// don't lose each other's entries; gives up after a few collisions. A
/// live entry of another host gives way only to one used more often, by
/// this worker's count (`frequency`) or the slot's note of its use (core's
/// `choose_victim`); otherwise nothing is written.
pub fn write(slots: Slots, host: &str, entry: &Entry, now: u64, frequency: impl Fn(&[u8]) -> u8) -> Written {
    if !slots.enabled() {
        return Written::default();
    }
    let keys = slots.slots_of(host).map(slot_key);
    let uses = frequency(host.as_bytes());
    let value = entry.encode_used(host, uses);
    let candidate = Worth::of(entry, uses, now);
    for _ in 0..CAS_TRIES {
        let current = [get(&keys[0]), get(&keys[1])];
        let values = [current[0].0.as_deref(), current[1].0.as_deref()];
        let Some((i, evicted)) = choose_victim(host, values, candidate, now, &frequency) else {
            break;
        };
        let filled_empty = current[i].0.as_deref().and_then(decode_slot).is_none();
        match hostcalls::set_shared_data(&keys[i], Some(&value), current[i].1) {
            Ok(()) => return Written { filled_empty, evicted },
            Err(Status::CasMismatch) => continue,
            Err(_) => break,
        }
    }
    Written::default()
}

/// Notes in `host`'s slot that this worker saw it used `uses` times
/// lately (its map's hits, which other workers' sketches never see). One
/// try: a lost race leaves the note for the next one.
pub fn note_uses(slots: Slots, host: &str, uses: u8, now: u64) {
    if !slots.enabled() {
        return;
    }
    for n in slots.slots_of(host) {
        let key = slot_key(n);
        // Only with a CAS: a write without one could put back an entry
        // the feed has just evicted.
        let (Some(value), Some(cas)) = get(&key) else { continue };
        if let Some(raised) = raise_uses(&value, host, uses, now) {
            let _ = hostcalls::set_shared_data(&key, Some(&raised), Some(cas));
            return;
        }
        if Entry::decode(&value, host).is_some() {
            return;
        }
    }
}

/// Takes the coalescing step for `host` on its set's lock, atomically.
pub fn take_lock(slots: Slots, host: &str, my_queue: u32, now: u64, lock_for_ms: u64) -> Step {
    if !slots.enabled() {
        return Step::Alone;
    }
    let key = lock_key(slots.set_of(host));
    for _ in 0..CAS_TRIES {
        let (value, cas) = get(&key);
        let Some(cas) = cas else {
            // Create the key first: only an existing key can be CAS'd.
            let _ = hostcalls::set_shared_data(&key, Some(&[]), None);
            continue;
        };
        let step = coalesce::step(value.as_deref().and_then(Lock::decode), host, my_queue, now, lock_for_ms);
        let lock = match &step {
            Step::Lead(lock) | Step::Wait(lock) => lock,
            Step::Alone => return step,
        };
        match hostcalls::set_shared_data(&key, Some(&lock.encode()), Some(cas)) {
            Ok(()) => return step,
            Err(Status::CasMismatch) => continue,
            Err(_) => break,
        }
    }
    Step::Alone
}

/// Releases the lock we lead for `host`, returning the queues to wake.
pub fn release_lock(slots: Slots, host: &str) -> Vec<u32> {
    if !slots.enabled() {
        return Vec::new();
    }
    let key = lock_key(slots.set_of(host));
    for _ in 0..CAS_TRIES {
        let (value, cas) = get(&key);
        let Some(lock) = value.as_deref().and_then(Lock::decode).filter(|l| l.host == host) else {
            return Vec::new();
        };
        match hostcalls::set_shared_data(&key, Some(&[]), cas) {
            Ok(()) => return lock.waiters,
            Err(Status::CasMismatch) => continue,
            Err(_) => break,
        }
    }
    Vec::new()
}

const IN_FLIGHT_KEY: &str = "cname_guard.inflight";
/// Every worker of the Envoy writes the one key: more tries than elsewhere.
const IN_FLIGHT_TRIES: usize = 16;

/// Takes a slot of `lookup.max_in_flight` for the lookup `tag` until
/// `deadline`. False when the bound is reached (or the writes kept
/// colliding: the lookup is shed rather than let past the bound).
pub fn take_slot(tag: u64, now: u64, deadline: u64, max: u32) -> bool {
    for _ in 0..IN_FLIGHT_TRIES {
        let (value, cas) = get(IN_FLIGHT_KEY);
        let Some(cas) = cas else {
            let _ = hostcalls::set_shared_data(IN_FLIGHT_KEY, Some(&[]), None);
            continue;
        };
        let Some(next) = Table::decode(value.as_deref().unwrap_or(&[])).take(tag, now, deadline, max) else {
            return false;
        };
        match hostcalls::set_shared_data(IN_FLIGHT_KEY, Some(&next.encode()), Some(cas)) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(_) => break,
        }
    }
    false
}

/// Gives the slot of lookup `tag` back (a slot not given back, for lost
/// races, frees itself at its deadline).
pub fn release_slot(tag: u64, now: u64) {
    for _ in 0..IN_FLIGHT_TRIES {
        let (value, cas) = get(IN_FLIGHT_KEY);
        let Some(next) = Table::decode(value.as_deref().unwrap_or(&[])).release(tag, now) else { return };
        match hostcalls::set_shared_data(IN_FLIGHT_KEY, Some(&next.encode()), cas) {
            Ok(()) => return,
            Err(Status::CasMismatch) => continue,
            Err(_) => return,
        }
    }
}

const LEASE_KEY: &str = "cname_guard.changes.lease";
const WORKERS_KEY: &str = "cname_guard.changes.workers";

/// The feed poller's lease: the one we now hold, or `None` when another
/// worker holds it (or the write lost a race: we try again next tick).
pub fn claim_lease(me: u32, now: u64, lease_ms: u64, seq: Option<u64>) -> Option<Lease> {
    for _ in 0..CAS_TRIES {
        let (value, cas) = get(LEASE_KEY);
        let Some(cas) = cas else {
            let _ = hostcalls::set_shared_data(LEASE_KEY, Some(&[]), None);
            continue;
        };
        let lease = Lease::claim(value.as_deref().and_then(Lease::decode), me, now, lease_ms, seq)?;
        match hostcalls::set_shared_data(LEASE_KEY, Some(&lease.encode()), Some(cas)) {
            Ok(()) => return Some(lease),
            Err(Status::CasMismatch) => continue,
            Err(_) => break,
        }
    }
    None
}

/// The lease as it stands (for a non-holder's cheap check).
pub fn lease() -> Option<Lease> {
    get(LEASE_KEY).0.as_deref().and_then(Lease::decode)
}

/// Marks our queue alive in the registry the poller reads.
pub fn register_worker(me: u32, now: u64) {
    for _ in 0..CAS_TRIES {
        let (value, cas) = get(WORKERS_KEY);
        let Some(cas) = cas else {
            let _ = hostcalls::set_shared_data(WORKERS_KEY, Some(&[]), None);
            continue;
        };
        let next = changes::register(&changes::decode_workers(value.as_deref().unwrap_or(&[])), me, now);
        match hostcalls::set_shared_data(WORKERS_KEY, Some(&changes::encode_workers(&next)), Some(cas)) {
            Ok(()) => return,
            Err(Status::CasMismatch) => continue,
            Err(_) => break,
        }
    }
}

/// Every worker queue alive now.
pub fn workers(now: u64) -> Vec<u32> {
    changes::alive(&changes::decode_workers(get(WORKERS_KEY).0.as_deref().unwrap_or(&[])), now)
}

/// Empties the slots an eviction names; returns how many entries went.
/// Named hosts only: their two slots each. Zones or a reset: every slot
/// (a scan of `max_entries` keys, by the poller, never on a request).
pub fn evict(slots: Slots, e: &Eviction) -> u64 {
    if !slots.enabled() || e.is_empty() {
        return 0;
    }
    let mut gone = 0;
    let mut clear = |n: u32| {
        let key = slot_key(n);
        for _ in 0..CAS_TRIES {
            let (value, cas) = get(&key);
            let hit = value.as_deref().and_then(decode_slot).is_some_and(|(h, _)| {
                std::str::from_utf8(h).is_ok_and(|h| e.matches(h))
            });
            if !hit {
                return;
            }
            match hostcalls::set_shared_data(&key, Some(&[]), cas) {
                Ok(()) => {
                    gone += 1;
                    return;
                }
                Err(Status::CasMismatch) => continue,
                Err(_) => return,
            }
        }
    };
    if e.hosts_only() {
        for h in &e.hosts {
            for n in slots.slots_of(h) {
                clear(n);
            }
        }
    } else {
        for n in 0..slots.capacity() {
            clear(n);
        }
    }
    gone
}
