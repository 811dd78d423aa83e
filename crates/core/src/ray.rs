//! Ray ids: `<16 lowercase hex>-<COLO>`, fresh for every error response.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// A per-VM (per-thread) seed: the process's hash randomness mixed with the clock.
pub fn seed(now_ms: u64) -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(now_ms);
    h.finish()
}

/// A small xorshift64* generator; ray ids need to be unique, not secret.
pub struct RayGen {
    state: u64,
}

impl RayGen {
    pub fn new(seed: u64) -> RayGen {
        RayGen { state: seed | 1 }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn ray_id(&mut self, colo: &str) -> String {
        format!("{:016x}-{}", self.next_u64(), colo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_ids_are_fresh_and_well_formed() {
        let mut g = RayGen::new(0);
        let a = g.ray_id("ARN");
        let b = g.ray_id("ARN");
        assert_ne!(a, b);
        let (hex, colo) = a.split_once('-').expect("dash");
        assert_eq!(hex.len(), 16);
        assert!(hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_eq!(colo, "ARN");
    }
}
