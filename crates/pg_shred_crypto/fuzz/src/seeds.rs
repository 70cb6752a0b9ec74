//! The seed corpora, `seeds/<target>/<name>`: made here from the genuine values, a handful per
//! target. tests/seeds.rs checks that seeds/ holds exactly these files (with
//! `PG_SHRED_FUZZ_WRITE_SEEDS=1` it writes them) and that each passes its target's check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pg_shred_crypto::envelope::{self, Opened};

use crate::{canary, genuine_envelopes, genuine_wrapped, selector};

/// The genuine envelopes (indexes in [`genuine_envelopes`]) the envelope targets start from:
/// every v1 one, and v2 bytea, integer and jsonb.
const ENVELOPES: [usize; 7] = [0, 1, 2, 3, 6, 7, 12];

/// Every seed: (target, file name, contents).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let genuine = genuine_envelopes();
    for i in ENVELOPES {
        let g = &genuine[i];
        let name = format!("golden-{i:02}");
        out.push(("envelope_text", name.clone(), envelope::to_text(&g.bytes).into_bytes()));
        out.push(("envelope_binary", name.clone(), g.bytes.clone()));
        out.push(("envelope_open", name, [&[selector(g.dek, g.context)], &g.bytes[..]].concat()));
    }
    let g = &genuine[1];
    out.push(("envelope_open", "golden-01-other-context".into(), [&[selector(g.dek, 0)], &g.bytes[..]].concat()));

    // One value of each type: the first genuine v2 one that is not empty.
    for g in genuine {
        let Opened::Typed(v) = &g.opened else { continue };
        let t = v.plain_type();
        let name = format!("{t:?}").to_lowercase();
        if !v.encode().is_empty() && !out.iter().any(|(target, n, _)| *target == "typed_value" && *n == name) {
            out.push(("typed_value", name, [&[t.as_u8()], &v.encode()[..]].concat()));
        }
    }

    let b64 = |byte: u8| STANDARD.encode([byte; 32]);
    out.push(("keyring", "single-base64".into(), format!("{}\n", b64(1)).into_bytes()));
    out.push(("keyring", "single-raw".into(), (1..=32).collect()));
    out.push(("keyring", "versioned".into(), format!("# pg_shred keyring\n1:{}\n2:{}\n", b64(1), b64(2)).into_bytes()));
    out.push(("keyring", "versioned-unsorted".into(), format!(" 3 : {}\n\n1:{}\r\n", b64(3), b64(1)).into_bytes()));

    let names = ["golden", "max-key-id", "reserved-subject", "utf8-subject"];
    for (i, (w, name)) in genuine_wrapped().iter().zip(names).enumerate() {
        out.push(("wrapped_dek", name.into(), [&[i as u8], &w.bytes[..]].concat()));
    }

    out.push(("canary", "fine".into(), b"pg_shred canary.".to_vec()));
    out.push(("canary", "crash".into(), canary::CRASH.to_vec()));
    out
}
