//! Erasure receipts and the residue check against a real server (started by `scripts/test`):
//! receipts verify online (`shred.verify_receipt`) and offline (`pg-shred-verify`, which needs
//! no database), fail after any change, survive root-key rotation and dump/restore; the residue
//! check sees the dead copies of an erased DEK until VACUUM and the root-key versions that
//! wrapped them; roles and errors.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;
use common::*;
use postgres::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The offline verifier, built once (in a target directory of its own, so that the nested
/// cargo never waits for the lock of the one running these tests).
fn verifier() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target")).join("pg-shred-verify");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "pg_shred_crypto", "--bin", "pg-shred-verify"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&root)
            .status()
            .expect("cargo build pg-shred-verify");
        assert!(status.success(), "building pg-shred-verify failed");
        target.join("debug").join("pg-shred-verify")
    })
}

/// Exit status of `pg-shred-verify --public-key <key> <file holding text>`.
fn verify_offline(key: &str, text: &str, name: &str) -> i32 {
    let path = dir().join(format!("{name}.receipt.json"));
    std::fs::write(&path, text).expect("write receipt");
    let out = Command::new(verifier()).args(["--public-key", key]).arg(&path).output().expect("run pg-shred-verify");
    out.status.code().expect("exit status")
}

fn receipt(c: &mut Client, subject: &str) -> String {
    c.query_one("SELECT shred.erasure_receipt($1)::text", &[&subject]).unwrap().get(0)
}

fn verify_online(c: &mut Client, text: &str) -> bool {
    c.query_one("SELECT shred.verify_receipt($1::text::jsonb)", &[&text]).unwrap().get(0)
}

fn public_key(c: &mut Client) -> String {
    c.query_one("SELECT shred.receipt_public_key()", &[]).unwrap().get(0)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("a receipt is JSON")
}

/// (key id, purpose, heap copies, versions of the copies, those in the keyring, final) rows of
/// shred.erasure_residue.
type Residue = Vec<(i64, Option<String>, i32, Vec<i32>, Vec<i32>, bool)>;

fn residue(c: &mut Client, subject: &str) -> Residue {
    c.query(
        "SELECT key_id, purpose, heap_copies, root_key_versions, versions_in_keyring, final_in_every_copy
           FROM shred.erasure_residue($1)",
        &[&subject],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect()
}

/// A receipt of a subject erased by purpose and whole: its content, the subject's salted
/// digest, the system identifier, the public key; valid online and offline.
#[test]
fn receipt_content_and_verification() {
    let mut c = fresh_db("rc_content");
    c.batch_execute("SELECT shred.define_purpose('analytics', 'Product analytics')").unwrap();
    let subject = "customer:ünï-42";
    c.query_one("SELECT shred.seal($1, 'x'::text)", &[&subject]).unwrap();
    c.query_one("SELECT shred.seal($1, 'y'::text, 'ctx', 'analytics')", &[&subject]).unwrap();
    let ids: Vec<i64> = c
        .query("SELECT key_id FROM shred.subject_key WHERE subject = $1 ORDER BY purpose_id DESC", &[&subject])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.query_one("SELECT shred.erase($1, 'analytics')", &[&subject]).unwrap();
    c.query_one("SELECT shred.erase($1)", &[&subject]).unwrap();
    let text = receipt(&mut c, subject);
    let r = json(&text);
    assert_eq!(r["format"], "pg_shred erasure receipt v1");
    assert_eq!(r["database"], "rc_content");
    let sysid: String = c.query_one("SELECT system_identifier::text FROM pg_control_system()", &[]).unwrap().get(0);
    assert_eq!(r["system_identifier"], sysid.as_str());
    let erasures = r["erasures"].as_array().unwrap();
    assert_eq!(erasures.len(), 2);
    assert_eq!(erasures[0]["key_id"], ids[0]);
    assert_eq!(erasures[0]["purpose"], "analytics");
    assert_eq!(erasures[1]["key_id"], ids[1]);
    assert_eq!(erasures[1]["purpose"], Value::Null);
    assert_eq!(r["erased_at"], erasures[1]["erased_at"]);
    assert!(r["erased_at"].as_str().unwrap().ends_with('Z'));
    // Erased under the current (only) root-key version: not final in every copy yet.
    assert_eq!(r["final_in_every_copy"], false);
    assert!(r["horizon"]["advice"].is_string());
    assert_eq!(r["residue"].as_array().unwrap().len(), 2);
    // The subject's holder checks the digest: SHA-256(salt || subject UTF-8).
    let salt = B64.decode(r["subject"]["salt"].as_str().unwrap()).unwrap();
    assert_eq!(salt.len(), 16);
    let digest = Sha256::new().chain_update(&salt).chain_update(subject.as_bytes()).finalize();
    assert_eq!(r["subject"]["digest"], B64.encode(digest).as_str());
    assert!(!text.contains(subject) && !text.contains("ünï") && !text.contains("customer:"), "the receipt holds the subject");
    // Each receipt has its own salt.
    let again = json(&receipt(&mut c, subject));
    assert_ne!(again["subject"]["salt"], r["subject"]["salt"]);

    let key = public_key(&mut c);
    assert_eq!(B64.decode(&key).unwrap().len(), 32);
    assert_eq!(r["public_key"], key.as_str());
    assert!(verify_online(&mut c, &text));
    assert_eq!(verify_offline(&key, &text, "rc_content"), 0);
    // Pretty-printed, members reordered by jsonb: the same canonical form.
    let pretty = serde_json::to_string_pretty(&r).unwrap();
    assert_eq!(verify_offline(&key, &pretty, "rc_content_pretty"), 0);
    // Another database's key does not verify it.
    let mut other = fresh_db("rc_content_other");
    let other_key = public_key(&mut other);
    assert_ne!(other_key, key);
    assert!(!verify_online(&mut other, &text));
    assert_eq!(verify_offline(&other_key, &text, "rc_content_other"), 1);
    // Usage errors: exit status 2.
    let out = Command::new(verifier()).arg("x.json").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Any changed byte of the receipt's JSON text (outside whitespace) fails online and offline.
#[test]
fn tampered_receipts_fail() {
    let mut c = fresh_db("rc_tamper");
    c.query_one("SELECT shred.seal('t:1', 'x'::text)", &[]).unwrap();
    c.query_one("SELECT shred.erase('t:1')", &[]).unwrap();
    let text = receipt(&mut c, "t:1");
    let key = public_key(&mut c);
    let bytes = text.as_bytes();
    let mut checked = 0;
    // Every byte that is not whitespace, changed online; a sample of them offline.
    for i in 0..bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            continue;
        }
        let mut t = bytes.to_vec();
        t[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
        let t = String::from_utf8(t).unwrap();
        let online: Result<bool, _> = c.query_one("SELECT shred.verify_receipt($1::text::jsonb)", &[&t]).map(|r| r.get(0));
        // Either no longer JSON (22P02) or not verified.
        assert!(!online.unwrap_or(false), "byte {i} changed still verifies online");
        if i % 37 == 0 {
            assert_eq!(verify_offline(&key, &t, "rc_tamper"), 1, "byte {i} changed still verifies offline");
        }
        checked += 1;
    }
    assert!(checked > 300);
    // A member added, removed or replaced.
    let mut r = json(&text);
    r["issued_at"] = Value::String("2000-01-01T00:00:00.000000Z".into());
    assert!(!verify_online(&mut c, &r.to_string()));
    let mut r = json(&text);
    r.as_object_mut().unwrap().insert("note".into(), Value::Bool(true));
    assert!(!verify_online(&mut c, &r.to_string()));
    let mut r = json(&text);
    r.as_object_mut().unwrap().remove("signature");
    assert!(!verify_online(&mut c, &r.to_string()));
    assert_eq!(verify_offline(&key, &r.to_string(), "rc_tamper_unsigned"), 1);
    assert_eq!(verify_offline(&key, "not json", "rc_tamper_garbage"), 1);
    assert!(verify_online(&mut c, &text));
}

/// No receipt without a committed erasure (42704, never the subject in the message); the residue
/// of a subject never erased is empty.
#[test]
fn no_receipt_without_a_committed_erasure() {
    let mut c = fresh_db("rc_errors");
    // The signing key is created on first use, which a read-only transaction cannot do.
    c.batch_execute("BEGIN READ ONLY").unwrap();
    assert_eq!(sqlstate(c.query_one("SELECT shred.receipt_public_key()", &[])), "25006");
    c.batch_execute("ROLLBACK").unwrap();
    let e = c.query_one("SELECT shred.erasure_receipt('never:seen')", &[]);
    let text = format!("{:?}", e.as_ref().err());
    assert!(!text.contains("never:seen"), "{text}");
    assert_eq!(sqlstate(e), "42704");
    c.query_one("SELECT shred.seal('live:1', 'x'::text)", &[]).unwrap();
    assert_eq!(sqlstate(c.query_one("SELECT shred.erasure_receipt('live:1')", &[])), "42704");
    assert!(residue(&mut c, "live:1").is_empty());
    // Not inside the erasing transaction: a rollback could still undo the erasure.
    c.batch_execute("BEGIN").unwrap();
    c.query_one("SELECT shred.erase('live:1')", &[]).unwrap();
    assert!(residue(&mut c, "live:1").is_empty());
    assert_eq!(sqlstate(c.query_one("SELECT shred.erasure_receipt('live:1')", &[])), "42704");
    c.batch_execute("ROLLBACK").unwrap();
    c.query_one("SELECT shred.erase('live:1')", &[]).unwrap();
    let text = receipt(&mut c, "live:1");
    assert!(verify_online(&mut c, &text));
    // NULL in, NULL out (strict); a reserved subject is refused.
    let null: Option<String> = c.query_one("SELECT shred.erasure_receipt(NULL)::text", &[]).unwrap().get(0);
    assert_eq!(null, None);
    assert_eq!(sqlstate(c.query_one("SELECT shred.erasure_receipt('pg_shred:receipt')", &[])), "22023");
    // A receipt that is not a receipt.
    assert!(!verify_online(&mut c, "{}"));
    assert!(!verify_online(&mut c, "[1]"));
    assert!(!verify_online(&mut c, "{\"signature\": \"AAAA\"}"));
}

/// The residue check sees the dead copy of an erased DEK's row until VACUUM removes it, and
/// the receipt states it at issue time.
#[test]
fn residue_until_vacuum() {
    let mut c = fresh_db("rc_residue");
    c.query_one("SELECT shred.seal('r:1', 'x'::text)", &[]).unwrap();
    let id: i64 = c.query_one("SELECT key_id FROM shred.subject_key WHERE subject = 'r:1'", &[]).unwrap().get(0);
    c.query_one("SELECT shred.erase('r:1')", &[]).unwrap();
    let before = residue(&mut c, "r:1");
    assert_eq!(before, vec![(id, None, 1, vec![1], vec![1], false)]);
    let r = json(&receipt(&mut c, "r:1"));
    assert_eq!(r["residue"][0]["heap_copies"], 1);
    assert_eq!(r["residue"][0]["versions_in_keyring"], serde_json::json!([1]));
    c.batch_execute("VACUUM shred.subject_key").unwrap();
    assert_eq!(residue(&mut c, "r:1"), vec![(id, None, 0, vec![], vec![], false)]);
    let r = json(&receipt(&mut c, "r:1"));
    assert_eq!(r["residue"][0]["heap_copies"], 0);
}

/// Receipts survive root-key rotation (same public key; the rewrap's dead copies under the old
/// version are seen by the residue check) and, once the old version is retired and out of the
/// keyring, the erasure is final in every copy.
#[test]
fn receipts_survive_rotation() {
    let (k1, k2) = (random_key(), random_key());
    let v1 = keyring_file("rc_rotate_v1", &[(1, &k1)]);
    let v12 = keyring_file("rc_rotate_v12", &[(1, &k1), (2, &k2)]);
    let v2 = keyring_file("rc_rotate_v2", &[(2, &k2)]);
    let mut c = fresh_db("rc_rotate");
    c.batch_execute(&format!("SET shred.root_key_file = '{v1}'")).unwrap();
    c.query_one("SELECT shred.seal('rot:1', 'x'::text)", &[]).unwrap();
    c.query_one("SELECT shred.seal('rot:2', 'x'::text)", &[]).unwrap();
    c.query_one("SELECT shred.erase('rot:1')", &[]).unwrap();
    let key = public_key(&mut c);
    let before = receipt(&mut c, "rot:1");
    assert_eq!(json(&before)["final_in_every_copy"], false);

    c.batch_execute(&format!("SET shred.root_key_file = '{v12}'; CALL shred.rotate_root_key()")).unwrap();
    assert_eq!(public_key(&mut c), key);
    assert!(verify_online(&mut c, &before));
    assert_eq!(verify_offline(&key, &before, "rc_rotate"), 0);
    // The live DEK of rot:2 was rewrapped: its old row is a dead copy under version 1. The
    // erased DEK of rot:1 keeps its one dead copy under version 1, still in the keyring.
    let rows = residue(&mut c, "rot:1");
    assert_eq!((rows[0].2, &rows[0].3, &rows[0].4), (1, &vec![1], &vec![1]));
    c.batch_execute("VACUUM shred.subject_key").unwrap();
    c.query_one("SELECT shred.retire_root_key(1)", &[]).unwrap();
    c.batch_execute(&format!("SET shred.root_key_file = '{v2}'")).unwrap();
    // Version 1 is retired and out of the keyring: rot:1's erasure, before version 2 was first
    // used, is final in every copy.
    let after = receipt(&mut c, "rot:1");
    let r = json(&after);
    assert_eq!(r["final_in_every_copy"], true, "{after}");
    assert_eq!(r["erasures"][0]["final_in_every_copy"], true);
    assert_eq!(r["horizon"]["oldest_live_root_key_version"], 2);
    assert_eq!(public_key(&mut c), key);
    assert!(verify_online(&mut c, &after));
    assert!(verify_online(&mut c, &before));
    assert_eq!(verify_offline(&key, &after, "rc_rotate_after"), 0);
}

/// Receipts survive pg_dump and pg_restore: the restored database verifies old receipts with the
/// same public key, and issues new ones for erasures recorded before the dump.
#[test]
fn receipts_survive_dump_and_restore() {
    let mut src = fresh_db("rc_dump_src");
    src.query_one("SELECT shred.seal('d:1', 'x'::text)", &[]).unwrap();
    src.query_one("SELECT shred.erase('d:1')", &[]).unwrap();
    let key = public_key(&mut src);
    let old = receipt(&mut src, "d:1");
    let path = dir().join("receipts.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-f", path.to_str().unwrap(), "rc_dump_src"]));
    drop(empty_db("rc_dump_dst"));
    run(pg_tool("pg_restore").args(["--exit-on-error", "-d", "rc_dump_dst", path.to_str().unwrap()]));
    let mut dst = connect("rc_dump_dst");
    assert_eq!(public_key(&mut dst), key);
    assert!(verify_online(&mut dst, &old));
    let new = receipt(&mut dst, "d:1");
    assert_eq!(json(&new)["erasures"], json(&old)["erasures"]);
    assert_eq!(json(&new)["database"], "rc_dump_dst");
    assert!(verify_online(&mut dst, &new));
    assert_eq!(verify_offline(&key, &new, "rc_dump"), 0);
}

/// Receipts and the residue for shred_eraser and shred_admin; the public key and verification
/// for every pg_shred role; nothing for PUBLIC; the internal helpers for nobody.
#[test]
fn roles() {
    let mut c = fresh_db("rc_roles");
    c.query_one("SELECT shred.seal('g:1', 'x'::text)", &[]).unwrap();
    c.query_one("SELECT shred.erase('g:1')", &[]).unwrap();
    let text = receipt(&mut c, "g:1");
    let names = ["rc_reader", "rc_writer", "rc_eraser", "rc_admin", "rc_nobody"];
    let grants = ["shred_reader", "shred_writer", "shred_eraser", "shred_admin", ""];
    for (name, grant) in names.iter().zip(grants) {
        role(&mut c, name, grant);
    }
    for (name, grant) in names.iter().zip(grants) {
        let mut u = connect_as("rc_roles", name);
        let may_issue = grant == "shred_eraser" || grant == "shred_admin";
        let issued = u.query_one("SELECT shred.erasure_receipt('g:1')", &[]);
        assert_eq!(issued.is_ok(), may_issue, "{name}: erasure_receipt");
        assert_eq!(u.query("SELECT * FROM shred.erasure_residue('g:1')", &[]).is_ok(), may_issue, "{name}: erasure_residue");
        let verified = u.query_one("SELECT shred.verify_receipt($1::text::jsonb)", &[&text]).map(|r| r.get::<_, bool>(0));
        assert_eq!(verified.ok(), if grant.is_empty() { None } else { Some(true) }, "{name}: verify_receipt");
        assert_eq!(u.query_one("SELECT shred.receipt_public_key()", &[]).is_ok(), !grant.is_empty(), "{name}: receipt_public_key");
        for internal in [
            "SELECT shred._sign_receipt('{}', 'g:1')",
            "SELECT shred._heap_copies(ARRAY[1::bigint])",
            "SELECT shred._erasure_committed(1)",
            "SELECT shred._utc(now())",
        ] {
            assert_eq!(sqlstate(u.query(internal, &[])), "42501", "{name}: {internal}");
        }
    }
    drop_roles(&mut c, &names);
}
