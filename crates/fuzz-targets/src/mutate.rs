//! A small seeded mutator for fuzzing without cargo-fuzz: no coverage feedback, but the same
//! kinds of damage libFuzzer does (flips, inserts, deletes, splices, repeats, interesting
//! integers), reproducible from a seed.

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

const INTERESTING: [u32; 8] = [0, 1, 0x7f, 0xff, 0x8000, 0xffff, 0x0010_0000, u32::MAX];

/// A mutation of `input` (a few stacked edits), spliced with `other` sometimes.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(i..i, bytes);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                let n = 1 + rng.below(out.len() - i);
                out.drain(i..i + n);
            }
            4 if !other.is_empty() => {
                let at = rng.below(out.len() + 1);
                let from = rng.below(other.len());
                let n = 1 + rng.below(other.len() - from);
                out.truncate(at);
                out.extend_from_slice(&other[from..from + n]);
            }
            5 if !out.is_empty() => {
                let from = rng.below(out.len());
                let n = 1 + rng.below((out.len() - from).min(64));
                let piece = out[from..from + n].to_vec();
                for _ in 0..1 + rng.below(8) {
                    out.extend_from_slice(&piece);
                }
            }
            6 if out.len() >= 4 => {
                let i = rng.below(out.len() - 3);
                let value = INTERESTING[rng.below(INTERESTING.len())];
                out[i..i + 4].copy_from_slice(&value.to_be_bytes());
            }
            _ => {
                let n = rng.below(out.len() + 1);
                out.truncate(n);
            }
        }
    }
    out.truncate(max_len);
    out
}

/// The corpus of `target` under `dir` (`fuzz/corpus/<target>/*`), sorted by name.
pub fn corpus(dir: &std::path::Path, target: &str) -> Vec<Vec<u8>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(target))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}
