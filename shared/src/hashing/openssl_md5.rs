//! md5 by OpenSSL's libcrypto (through the `openssl-sys` crate's link to it), whose
//! assembly block function hashes faster on x86-64 than the md-5 crate's Rust: on this
//! project's 2-core AMD EPYC, 1 GiB in 256 KiB updates took 1.67 CPU-s against md-5
//! 0.11's 1.96 (md-5 0.10 with its `asm` feature: 2.10), and md5 is the costliest thing
//! an upload's byte goes through (perf: half of ferry-api's samples during an ingest).
//!
//! The `openssl` crate offers md5 only behind EVP, whose state cannot be read out; an
//! upload's running md5 must be (it is stored with each chunk and continued by whichever
//! API process takes the next one). So this calls the plain `MD5_Init`, `MD5_Update` and
//! `MD5_Final` of `<openssl/md5.h>` on an `MD5_CTX` declared here (a layout unchanged
//! since OpenSSL 0.9; deprecated in 3.0, present in every 3.x), and writes the state in
//! the md-5 crate's serialised form, which stored uploads already hold, so uploads in
//! progress carry on across the change.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_void};

// Links libcrypto (openssl-sys's build script finds it, via pkg-config on Debian).
use openssl_sys as _;

/// `MD5_CTX` of `<openssl/md5.h>`: the four chaining words A-D, the message length in
/// bits as its low and high 32-bit halves, the pending partial block (declared there as
/// 16 `MD5_LONG`s, used as bytes) and how many of its bytes are filled.
#[repr(C)]
#[derive(Clone, Copy)]
struct Md5Ctx {
    abcd: [u32; 4],
    nl: u32,
    nh: u32,
    data: [u8; 64],
    num: c_uint,
}

extern "C" {
    fn MD5_Init(c: *mut Md5Ctx) -> c_int;
    fn MD5_Update(c: *mut Md5Ctx, data: *const c_void, len: usize) -> c_int;
    fn MD5_Final(md: *mut u8, c: *mut Md5Ctx) -> c_int;
}

/// Length of the md-5 crate's (0.11) serialised state: A-D (little-endian), the count of
/// whole 64-byte blocks hashed (u64, little-endian), the partial block's length (one
/// byte), the partial block (at most 63 bytes) zero-padded to 63 bytes.
pub(super) const STATE_BYTES: usize = 16 + 8 + 64;

/// A running md5.
#[derive(Clone, Copy)]
pub(super) struct Md5(Md5Ctx);

impl Default for Md5 {
    fn default() -> Md5 {
        let mut ctx = Md5Ctx { abcd: [0; 4], nl: 0, nh: 0, data: [0; 64], num: 0 };
        // SAFETY: `ctx` is a valid, exclusively borrowed MD5_CTX; MD5_Init only writes it.
        unsafe { MD5_Init(&mut ctx) };
        Md5(ctx)
    }
}

impl Md5 {
    /// Hashes `bytes` on.
    pub(super) fn update(&mut self, bytes: &[u8]) {
        // SAFETY: the context is valid and exclusively borrowed; `bytes` is a live slice
        // of `bytes.len()` bytes that MD5_Update only reads.
        unsafe { MD5_Update(&mut self.0, bytes.as_ptr().cast(), bytes.len()) };
    }

    /// The digest of everything hashed.
    pub(super) fn finalize(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` has the 16 bytes MD5_Final writes; the context is our own copy.
        unsafe { MD5_Final(out.as_mut_ptr(), &mut self.0) };
        out
    }

    /// The state in the md-5 crate's serialised form ([`STATE_BYTES`]).
    pub(super) fn serialize(&self) -> Vec<u8> {
        let ctx = &self.0;
        let bits = (u64::from(ctx.nh) << 32) | u64::from(ctx.nl);
        let pending = ctx.num as usize;
        let mut out = Vec::with_capacity(STATE_BYTES);
        for word in ctx.abcd {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&(bits / 512).to_le_bytes());
        out.push(pending as u8);
        out.extend_from_slice(&ctx.data[..pending]);
        out.resize(STATE_BYTES, 0);
        out
    }

    /// Reads a state written by [`Md5::serialize`] or by the md-5 crate; None when it is
    /// not one (wrong length, a partial block longer than 63 bytes, non-zero padding, a
    /// length past 2^64 bits).
    pub(super) fn deserialize(state: &[u8]) -> Option<Md5> {
        if state.len() != STATE_BYTES {
            return None;
        }
        let mut abcd = [0u32; 4];
        for (word, bytes) in abcd.iter_mut().zip(state[..16].chunks_exact(4)) {
            *word = u32::from_le_bytes(bytes.try_into().ok()?);
        }
        let blocks = u64::from_le_bytes(state[16..24].try_into().ok()?);
        let pending = usize::from(state[24]);
        let (data, padding) = state[25..].split_at_checked(pending)?;
        if padding.iter().any(|&b| b != 0) {
            return None;
        }
        let bits = blocks.checked_mul(512)?.checked_add(pending as u64 * 8)?;
        let mut ctx = Md5Ctx { abcd, nl: bits as u32, nh: (bits >> 32) as u32, data: [0; 64], num: pending as c_uint };
        ctx.data[..pending].copy_from_slice(data);
        Some(Md5(ctx))
    }
}

#[cfg(test)]
mod tests {
    use md5::digest::common::hazmat::SerializableState;
    use md5::Digest;

    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 253) as u8).collect()
    }

    #[test]
    fn digests_match_the_md5_crate_at_every_length_around_a_block() {
        for len in (0..200).chain([4095, 4096, 100_000]) {
            let data = sample(len);
            let mut ours = Md5::default();
            ours.update(&data);
            assert_eq!(ours.finalize(), <[u8; 16]>::from(md5::Md5::digest(&data)), "length {len}");
        }
    }

    #[test]
    fn serialised_state_is_the_md5_crates_both_ways() {
        let data = sample(10_000);
        for cut in [0, 1, 63, 64, 65, 127, 128, 1000, 4159] {
            let mut ours = Md5::default();
            ours.update(&data[..cut]);
            let mut theirs = md5::Md5::new();
            theirs.update(&data[..cut]);
            assert_eq!(ours.serialize(), theirs.serialize().to_vec(), "cut {cut}");

            // Continue the md-5 crate's state here and ours there: the same digest.
            let mut resumed = Md5::deserialize(&theirs.serialize()).expect("md-5 state");
            resumed.update(&data[cut..]);
            let state = ours.serialize();
            let mut theirs_resumed = md5::Md5::deserialize(state.as_slice().try_into().expect("size")).expect("ours");
            theirs_resumed.update(&data[cut..]);
            assert_eq!(resumed.finalize(), <[u8; 16]>::from(theirs_resumed.finalize()), "cut {cut}");
        }
    }

    #[test]
    fn bad_states_are_refused() {
        let mut good = Md5::default();
        good.update(b"abc");
        let state = good.serialize();
        assert!(Md5::deserialize(&state).is_some());
        assert!(Md5::deserialize(&state[..STATE_BYTES - 1]).is_none());
        let mut long_pending = state.clone();
        long_pending[24] = 64;
        assert!(Md5::deserialize(&long_pending).is_none());
        let mut dirty_padding = state.clone();
        dirty_padding[STATE_BYTES - 1] = 1;
        assert!(Md5::deserialize(&dirty_padding).is_none());
        let mut too_long = state;
        too_long[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Md5::deserialize(&too_long).is_none());
    }
}
