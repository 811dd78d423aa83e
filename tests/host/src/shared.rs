//! Shared data and shared queues: one store for every VM of a host, as Envoy keeps one per vm_id.

use std::collections::{HashMap, VecDeque};

use crate::abi::Status;

/// Key/value store with compare-and-swap, shared by all workers.
#[derive(Debug, Default)]
pub struct SharedData {
    entries: HashMap<String, (Vec<u8>, u32)>,
}

impl SharedData {
    /// The value and its cas, or `NotFound`.
    pub fn get(&self, key: &str) -> Result<(Vec<u8>, u32), Status> {
        self.entries.get(key).cloned().ok_or(Status::NotFound)
    }

    /// Stores `value`. `cas` 0 is unconditional; otherwise it must equal the current cas of an
    /// existing key (`CasMismatch` if not). A fresh key starts at cas 1; each set increments it.
    pub fn set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        match self.entries.get_mut(key) {
            Some((v, current)) => {
                if cas != 0 && cas != *current {
                    return Err(Status::CasMismatch);
                }
                *v = value.to_vec();
                *current = current.wrapping_add(1).max(1);
            }
            None => {
                self.entries.insert(key.to_string(), (value.to_vec(), 1));
            }
        }
        Ok(())
    }

    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.entries.keys().cloned().collect();
        k.sort();
        k
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[derive(Debug)]
struct Queue {
    vm_id: String,
    name: String,
    /// The worker and root context that registered it last: they get `on_queue_ready`.
    owner: (usize, u32),
    items: VecDeque<Vec<u8>>,
}

/// Shared queues: registered by one VM, resolvable and writable by all.
#[derive(Debug, Default)]
pub struct SharedQueues {
    queues: HashMap<u32, Queue>,
    next_token: u32,
    /// (worker, root context, queue token) notifications not yet delivered.
    ready: VecDeque<(usize, u32, u32)>,
}

impl SharedQueues {
    /// Registers (or re-registers, taking ownership of) the queue `name` of `vm_id`.
    pub fn register(&mut self, vm_id: &str, name: &str, worker: usize, root_ctx: u32) -> u32 {
        if let Some((token, q)) = self.queues.iter_mut().find(|(_, q)| q.vm_id == vm_id && q.name == name) {
            q.owner = (worker, root_ctx);
            return *token;
        }
        self.next_token += 1;
        let token = self.next_token;
        self.queues.insert(
            token,
            Queue {
                vm_id: vm_id.to_string(),
                name: name.to_string(),
                owner: (worker, root_ctx),
                items: VecDeque::new(),
            },
        );
        token
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Result<u32, Status> {
        self.queues.iter().find(|(_, q)| q.vm_id == vm_id && q.name == name).map(|(t, _)| *t).ok_or(Status::NotFound)
    }

    /// Appends and schedules `on_queue_ready` for the owner.
    pub fn enqueue(&mut self, token: u32, value: &[u8]) -> Result<(), Status> {
        let q = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        q.items.push_back(value.to_vec());
        self.ready.push_back((q.owner.0, q.owner.1, token));
        Ok(())
    }

    pub fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let q = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        q.items.pop_front().ok_or(Status::Empty)
    }

    /// Items waiting in the queue `token`.
    pub fn depth(&self, token: u32) -> usize {
        self.queues.get(&token).map_or(0, |q| q.items.len())
    }

    pub(crate) fn take_ready(&mut self) -> Option<(usize, u32, u32)> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas() {
        let mut d = SharedData::default();
        assert_eq!(d.get("k"), Err(Status::NotFound));
        d.set("k", b"a", 0).unwrap();
        assert_eq!(d.get("k"), Ok((b"a".to_vec(), 1)));
        assert_eq!(d.set("k", b"b", 7), Err(Status::CasMismatch));
        d.set("k", b"b", 1).unwrap();
        assert_eq!(d.get("k"), Ok((b"b".to_vec(), 2)));
        assert_eq!(d.set("k", b"c", 1), Err(Status::CasMismatch));
        d.set("k", b"c", 0).unwrap();
        assert_eq!(d.get("k").unwrap().1, 3);
    }

    #[test]
    fn queues() {
        let mut q = SharedQueues::default();
        let t = q.register("", "q", 0, 1);
        assert_eq!(q.resolve("", "q"), Ok(t));
        assert_eq!(q.resolve("", "nope"), Err(Status::NotFound));
        assert_eq!(q.dequeue(t), Err(Status::Empty));
        q.enqueue(t, b"x").unwrap();
        assert_eq!(q.take_ready(), Some((0, 1, t)));
        assert_eq!(q.dequeue(t), Ok(b"x".to_vec()));
        assert_eq!(q.enqueue(99, b""), Err(Status::NotFound));
    }
}
