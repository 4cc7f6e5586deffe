//! XXH64, the 64-bit xxHash of Yann Collet, written out here so the format
//! depends on no hashing crate. The algorithm is the published one (and is
//! tested against its reference vectors), so any xxHash tool can re-check a
//! `.kann` file by hand. Every checksum in the format is `xxh64(bytes, 0)`.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// The checksum the format uses everywhere: XXH64 with seed 0.
pub fn checksum(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// XXH64 of `bytes` with `seed`.
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    let mut rest = bytes;
    let mut h = if bytes.len() >= 32 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        let mut stripes = rest.chunks_exact(32);
        for stripe in &mut stripes {
            // Four independent lanes: written out so they stay in registers.
            v1 = round(v1, read_u64(&stripe[0..8]));
            v2 = round(v2, read_u64(&stripe[8..16]));
            v3 = round(v3, read_u64(&stripe[16..24]));
            v4 = round(v4, read_u64(&stripe[24..32]));
        }
        rest = stripes.remainder();
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for acc in [v1, v2, v3, v4] {
            h = merge_round(h, acc);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(bytes.len() as u64);

    let mut words = rest.chunks_exact(8);
    for word in &mut words {
        h ^= round(0, read_u64(word));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    }
    rest = words.remainder();
    if rest.len() >= 4 {
        let (word, tail) = rest.split_at(4);
        let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        h ^= u64::from(w).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = tail;
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }

    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge_round(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffer of xxHash's own sanity check (xxhsum.c): 101 bytes from a
    /// squared 32-bit generator.
    fn sanity_buffer() -> Vec<u8> {
        let prime: u32 = 2_654_435_761;
        let mut gen = prime;
        (0..101)
            .map(|_| {
                let b = (gen >> 24) as u8;
                gen = gen.wrapping_mul(gen);
                b
            })
            .collect()
    }

    #[test]
    fn reference_vectors() {
        let prime = 2_654_435_761u64;
        let buf = sanity_buffer();
        assert_eq!(xxh64(&[], 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(&[], prime), 0xAC75_FDA2_929B_17EF);
        assert_eq!(xxh64(&buf[..1], 0), 0x4FCE_394C_C889_52D8);
        assert_eq!(xxh64(&buf[..1], prime), 0x7398_40CB_819F_A723);
        assert_eq!(xxh64(&buf[..14], 0), 0xCFFA_8DB8_81BC_3A3D);
        assert_eq!(xxh64(&buf[..14], prime), 0x5B96_1158_5EFC_C9CB);
        assert_eq!(xxh64(&buf, 0), 0x0EAB_5433_84F8_78AD);
        assert_eq!(xxh64(&buf, prime), 0xCAA6_5939_306F_1E21);
        assert_eq!(checksum(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(checksum(b"abc"), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            checksum(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }
}
