//! The seed corpora and the genuine values, without AFL++ (`cargo test` in this package):
//! seeds/ holds exactly the files `seeds::seeds()` makes (`PG_SHRED_FUZZ_WRITE_SEEDS=1` writes
//! them first), each passes its target's check (the canary's `crash` panics), and the genuine
//! envelopes and the golden wrapped DEK are the core's known-answer vectors.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Once;

use pg_shred_crypto::envelope;
use pg_shred_crypto_fuzz::{canary, genuine_envelopes, genuine_wrapped, hex, seeds, TARGETS};

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds");

/// Every file under seeds/, as (target, name), once they are written when asked.
fn files() -> BTreeSet<(String, String)> {
    static WRITE: Once = Once::new();
    WRITE.call_once(|| {
        if std::env::var_os("PG_SHRED_FUZZ_WRITE_SEEDS").is_some() {
            let _ = std::fs::remove_dir_all(SEEDS);
            for (target, name, bytes) in seeds::seeds() {
                std::fs::create_dir_all(Path::new(SEEDS).join(target)).expect("mkdir");
                std::fs::write(Path::new(SEEDS).join(target).join(name), bytes).expect("write a seed");
            }
        }
    });
    let mut found = BTreeSet::new();
    for dir in std::fs::read_dir(SEEDS).expect("seeds/") {
        let dir = dir.expect("entry").path();
        let target = dir.file_name().expect("name").to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).expect("a target's seeds") {
            found.insert((target.clone(), file.expect("entry").file_name().to_string_lossy().into_owned()));
        }
    }
    found
}

#[test]
fn seeds_are_up_to_date() {
    let on_disk = files();
    let made = seeds::seeds();
    for (target, name, bytes) in &made {
        let on_disk = std::fs::read(Path::new(SEEDS).join(target).join(name)).unwrap_or_default();
        assert!(on_disk == *bytes, "seeds/{target}/{name} differs (PG_SHRED_FUZZ_WRITE_SEEDS=1 cargo test)");
    }
    let expected: BTreeSet<_> = made.into_iter().map(|(t, n, _)| (t.to_string(), n)).collect();
    assert_eq!(on_disk, expected, "seeds/ holds other files");
}

#[test]
fn seeds_pass_their_targets() {
    let mut seen = 0;
    for (target, check) in TARGETS {
        for (t, name) in files().into_iter().filter(|(t, _)| t == target) {
            check(&std::fs::read(Path::new(SEEDS).join(&t).join(&name)).expect("read"));
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} seeds");
    canary::check(b"pg_shred canary.");
    assert!(std::panic::catch_unwind(|| canary::check(canary::CRASH)).is_err(), "the canary does not panic");
}

#[test]
fn genuine_values_are_the_known_answer_vectors() {
    let kat = include_str!("../../src/tests/kat.rs");
    for g in genuine_envelopes() {
        let text = envelope::to_text(&g.bytes);
        assert!(kat.contains(&format!("\"{text}\"")), "{text} is not a golden envelope of src/tests/kat.rs");
    }
    let wrapped = hex(&genuine_wrapped()[0].bytes);
    assert!(kat.contains(&format!("\"{wrapped}\"")), "{wrapped} is not the golden wrapped DEK of src/tests/kat.rs");
}
