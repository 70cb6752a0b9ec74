//! Target `canary`: panics on the inputs that begin with `pg_shred canary!` (its seed `crash`)
//! and on no other; its seed `fine` (`pg_shred canary.`) is one byte away. `scripts/fuzz` runs it first and
//! requires AFL++ to report a crash, which proves that a panic in a target reaches AFL++ as a
//! crash and `fuzzer_stats` as a saved crash, before a "0 crashes" of the real targets is
//! trusted.

/// The input the canary panics on.
pub const CRASH: &[u8] = b"pg_shred canary!";

pub fn check(data: &[u8]) {
    if data.starts_with(CRASH) {
        panic!("the canary's input: the harness sees panics");
    }
}
