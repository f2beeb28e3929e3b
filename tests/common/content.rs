//! `Pattern`: deterministic pseudo-random file content with random access, and streaming
//! verification of response bodies against it.

use super::*;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic pseudo-random content with random access, cheap enough for GiB files in a
/// debug build: a prime-length random base block, rotated by a per-MiB PRNG offset.
/// byte(i) = base[(i % MiB + rot(i / MiB)) % P]
pub struct Pattern {
    base: Vec<u8>,
    seed: u64,
}

const PATTERN_P: usize = 1_048_573; // prime, just under 1 MiB
const PATTERN_BLOCK: u64 = 1 << 20;

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        let mut base = Vec::with_capacity(PATTERN_P + 8);
        let mut s = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xD1B5_4A32_D192_ED03;
        while base.len() < PATTERN_P {
            // xorshift64*
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            base.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        base.truncate(PATTERN_P);
        Pattern { base, seed }
    }

    fn rot(&self, block: u64) -> usize {
        (splitmix64(self.seed ^ block.wrapping_mul(0x9E37_79B9)) % PATTERN_P as u64) as usize
    }

    /// Fills `out` with the bytes at `offset..offset+out.len()`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let mut off = offset;
        let mut done = 0;
        while done < out.len() {
            let block = off / PATTERN_BLOCK;
            let in_block = off % PATTERN_BLOCK;
            let n = (out.len() - done).min((PATTERN_BLOCK - in_block) as usize);
            let mut start = (in_block as usize + self.rot(block)) % PATTERN_P;
            let mut copied = 0;
            while copied < n {
                let m = (n - copied).min(PATTERN_P - start);
                out[done + copied..done + copied + m].copy_from_slice(&self.base[start..start + m]);
                copied += m;
                start = 0;
            }
            done += n;
            off += n as u64;
        }
    }

    pub fn bytes(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(offset, &mut v);
        v
    }

    /// True if `chunk` equals the pattern at `offset` (uses `scratch` to avoid allocations).
    pub fn matches(&self, offset: u64, chunk: &[u8], scratch: &mut Vec<u8>) -> bool {
        scratch.resize(chunk.len(), 0);
        self.fill(offset, scratch);
        scratch[..] == *chunk
    }

    /// Writes a real (non-sparse) file of `len` pattern bytes.
    pub fn write_file(&self, path: &Path, len: u64) {
        let mut f = io::BufWriter::with_capacity(4 << 20, std::fs::File::create(path).unwrap());
        let mut buf = vec![0u8; 4 << 20];
        let mut off = 0;
        while off < len {
            let n = (len - off).min(buf.len() as u64) as usize;
            self.fill(off, &mut buf[..n]);
            f.write_all(&buf[..n]).unwrap();
            off += n as u64;
        }
        f.flush().unwrap();
    }
}

/// `len` deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    Pattern::new(seed).bytes(0, len)
}

/// Writes a pattern file and returns its generator.
pub fn pattern_file(path: &Path, len: u64, seed: u64) -> Pattern {
    let p = Pattern::new(seed);
    p.write_file(path, len);
    p
}

/// Reads a response body of `len` bytes expected to equal `pattern[offset..offset+len]`.
/// Panics with the first mismatching position; panics on short bodies.
pub fn expect_pattern_body(conn: &mut Conn, pattern: &Pattern, offset: u64, len: u64, ctx: &str) {
    let mut scratch = Vec::new();
    let mut bad: Option<u64> = None;
    let (got, err) = conn.stream_body(len, |at, chunk| {
        if bad.is_none() && !pattern.matches(offset + at, chunk, &mut scratch) {
            let i = chunk
                .iter()
                .enumerate()
                .position(|(i, b)| *b != scratch[i])
                .unwrap();
            bad = Some(at + i as u64);
        }
    });
    if let Some(at) = bad {
        panic!("{ctx}: body differs from the file at body offset {at}");
    }
    if let Some(e) = err {
        panic!("{ctx}: body ended after {got} of {len} bytes: {e}");
    }
}

/// Panics unless the file at `path` holds exactly `pattern[offset..offset+len]` (a download
/// curl wrote).
pub fn assert_file_is(path: &Path, pattern: &Pattern, offset: u64, len: u64, ctx: &str) {
    let got_len = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{ctx}: {}: {e}", path.display()))
        .len();
    assert_eq!(got_len, len, "{ctx}: downloaded length");
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    let mut scratch = Vec::new();
    let mut at = 0u64;
    while at < len {
        let n = f.read(&mut buf).unwrap();
        assert!(n > 0, "{ctx}: file shorter than its metadata");
        if !pattern.matches(offset + at, &buf[..n], &mut scratch) {
            let i = (0..n).find(|&i| buf[i] != scratch[i]).unwrap();
            panic!(
                "{ctx}: body differs from the file at body offset {}",
                at + i as u64
            );
        }
        at += n as u64;
    }
}
