//! The hash of the datagram server's peer table, looked up once per datagram: a folded multiply
//! (as foldhash and wyhash do) keyed with random seeds, where std's SipHash-1-3 cost about 235
//! instructions of a round trip's 1,800. A peer chooses its own port (and, spoofing, its address),
//! so the seeds are drawn per table from std's `RandomState`: without them a sender cannot aim its
//! addresses at one bucket.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Builds [`PeerHasher`]s with this table's seeds.
#[derive(Clone)]
pub struct PeerHashing {
    seeds: [u64; 2],
}

impl Default for PeerHashing {
    fn default() -> Self {
        let random = RandomState::new();
        // Odd, so that the multiply loses nothing.
        PeerHashing { seeds: [random.hash_one(1u8), random.hash_one(2u8) | 1] }
    }
}

impl BuildHasher for PeerHashing {
    type Hasher = PeerHasher;

    fn build_hasher(&self) -> PeerHasher {
        PeerHasher { state: self.seeds[0], multiplier: self.seeds[1] }
    }
}

/// Hashes the bytes of a socket address eight at a time.
pub struct PeerHasher {
    state: u64,
    multiplier: u64,
}

impl PeerHasher {
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(self.multiplier);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for PeerHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length too, so that trailing zero bytes still tell two addresses apart.
            self.mix(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        // One more round, so the high bits (hashbrown's tag) depend on every input bit.
        let product = u128::from(self.state) * u128::from(self.multiplier);
        (product as u64) ^ ((product >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::SocketAddr;

    use socket2::SockAddr;

    fn hash(build: &PeerHashing, addr: &str) -> u64 {
        let addr: SocketAddr = addr.parse().expect("an address");
        build.hash_one(SockAddr::from(addr))
    }

    #[test]
    fn addresses_that_differ_in_one_port_or_one_byte_hash_apart() {
        let build = PeerHashing::default();
        let mut seen = HashSet::new();
        for port in 1..=2000u16 {
            assert!(seen.insert(hash(&build, &format!("10.0.0.1:{port}"))), "port {port} collided");
        }
        for last in 0..=255u8 {
            assert!(seen.insert(hash(&build, &format!("10.0.1.{last}:5001"))));
            assert!(seen.insert(hash(&build, &format!("[fd00::{last:x}]:5001"))));
        }
        // The buckets a table of 4,096 would use are spread, not piled up: no bucket over 8.
        let mut buckets = vec![0u32; 4096];
        for port in 1..=4096u16 {
            buckets[(hash(&build, &format!("10.0.0.1:{port}")) & 4095) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n <= 8), "{:?}", buckets.iter().max());
    }

    #[test]
    fn each_table_has_its_own_seeds() {
        let (a, b) = (PeerHashing::default(), PeerHashing::default());
        assert_ne!(hash(&a, "10.0.0.1:5001"), hash(&b, "10.0.0.1:5001"));
        assert_eq!(hash(&a, "10.0.0.1:5001"), hash(&a, "10.0.0.1:5001"));
    }
}
