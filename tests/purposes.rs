//! Purposes and consent against a real server (started by `scripts/test`): one DEK per data
//! subject and purpose, erasure of one purpose with the guarantees of a whole erasure (commit,
//! rollback, savepoints, other sessions' caches, erasure records), the consent ledger's double
//! opt-in and its tokens, consent enforced on every seal, the roles, dump and restore, and the
//! update from 0.5.0.

mod common;

use std::time::Instant;

use common::*;
use postgres::Client;

/// A database with the purposes `marketing` (requires consent) and `analytics` (does not).
fn purposes_db(name: &str) -> Client {
    let mut c = fresh_db(name);
    c.batch_execute(
        "SELECT shred.define_purpose('marketing', 'Marketing e-mail', requires_consent => true);
         SELECT shred.define_purpose('analytics', 'Product analytics');",
    )
    .unwrap();
    c
}

fn seal_for(c: &mut Client, subject: &str, plaintext: &str, purpose: Option<&str>) -> String {
    c.query_one("SELECT shred.seal($1, $2::text, 'p.ctx', $3)::text", &[&subject, &plaintext, &purpose]).unwrap().get(0)
}

fn open(c: &mut Client, value: &str) -> Option<String> {
    c.query_one("SELECT shred.open($1::text::shred.sealed, 'p.ctx')", &[&value]).unwrap().get(0)
}

fn key_id(c: &mut Client, value: &str) -> i64 {
    c.query_one("SELECT shred.key_id($1::text::shred.sealed)", &[&value]).unwrap().get(0)
}

/// The key id of `subject`'s DEK for `purpose` (NULL: its default DEK), if it exists.
fn dek_of(c: &mut Client, subject: &str, purpose: Option<&str>) -> Option<i64> {
    c.query_opt(
        "SELECT k.key_id FROM shred.subject_key k
          WHERE k.subject = $1
            AND k.purpose_id = coalesce((SELECT p.purpose_id FROM shred.purpose p WHERE p.name = $2), 0)",
        &[&subject, &purpose],
    )
    .unwrap()
    .map(|r| r.get(0))
}

fn request(c: &mut Client, subject: &str, purpose: &str) -> String {
    c.query_one("SELECT shred.request_consent($1, $2, '{\"form\": \"signup\"}')", &[&subject, &purpose]).unwrap().get(0)
}

fn confirm(c: &mut Client, token: &str) -> bool {
    c.query_one("SELECT shred.confirm_consent($1)", &[&token]).unwrap().get(0)
}

fn has_consent(c: &mut Client, subject: &str, purpose: &str) -> bool {
    c.query_one("SELECT shred.has_consent($1, $2)", &[&subject, &purpose]).unwrap().get(0)
}

/// (purpose, status) of every consent record of `subject`, in order.
fn history(c: &mut Client, subject: &str) -> Vec<(String, String, Option<String>)> {
    c.query("SELECT purpose, status, evidence::text FROM shred.consent_history($1)", &[&subject])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Every plaintext type seals for a purpose, with positional and named arguments; calls without
/// a purpose keep sealing under the default DEK; each purpose has its own DEK, and the key id in
/// the envelope names it.
#[test]
fn each_purpose_has_its_own_dek_for_every_type() {
    let mut c = purposes_db("pu_types");
    let default = seal_for(&mut c, "c:1", "name", None);
    let two_args: String = c.query_one("SELECT shred.seal('c:1', 'x')::text", &[]).unwrap().get(0);
    let three_args: String = c.query_one("SELECT shred.seal('c:1', 'x', 'ctx')::text", &[]).unwrap().get(0);
    let named: String = c
        .query_one("SELECT shred.seal(subject => 'c:1', plaintext => 'x'::text, context => 'ctx')::text", &[])
        .unwrap()
        .get(0);
    let d = dek_of(&mut c, "c:1", None).unwrap();
    for v in [&default, &two_args, &three_args, &named] {
        assert_eq!(key_id(&mut c, v), d);
    }
    let analytics = seal_for(&mut c, "c:1", "clicks", Some("analytics"));
    let a = dek_of(&mut c, "c:1", Some("analytics")).unwrap();
    assert_ne!(a, d);
    assert_eq!(key_id(&mut c, &analytics), a);
    assert_eq!(open(&mut c, &analytics).as_deref(), Some("clicks"));
    // every type, positional and named, opens as its type under the purpose DEK
    let row = c
        .query_one(
            "SELECT shred.key_id(shred.seal('c:1', 'b'::bytea, 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', 7::int4, 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', 7::int8, 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', 7.5::numeric, 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', date '2020-01-02', 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', timestamptz '2020-01-02 03:04:05+00', 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', '{\"a\": 1}'::jsonb, 'c', 'analytics')),
                    shred.key_id(shred.seal('c:1', 'x'::text, purpose => 'analytics')),
                    shred.key_id(shred.seal('c:1', 7::int4, purpose => 'analytics')),
                    shred.key_id(shred.seal('c:1', 7.5::numeric, purpose => 'analytics')),
                    shred.key_id(shred.seal('c:1', '{}'::jsonb, purpose => 'analytics')),
                    shred.key_id(shred.seal('c:1', 7.5::numeric)),
                    shred.key_id(shred.seal('c:1', '{}'::jsonb, 'c'))",
            &[],
        )
        .unwrap();
    for i in 0..11 {
        assert_eq!(row.get::<_, i64>(i), a, "column {i}");
    }
    assert_eq!(row.get::<_, i64>(11), d);
    assert_eq!(row.get::<_, i64>(12), d);
    let typed = c
        .query_one(
            "SELECT shred.open_integer(shred.seal('c:1', 41::int4, 't', 'analytics'), 't'),
                    shred.open_numeric(shred.seal('c:1', 1.50::numeric, 't', 'analytics'), 't')::text,
                    shred.open_jsonb(shred.seal('c:1', '{\"k\": [1]}'::jsonb, 't', 'analytics'), 't')::text,
                    shred.open_date(shred.seal('c:1', date '2020-01-02', 't', 'analytics'), 't')::text",
            &[],
        )
        .unwrap();
    assert_eq!(typed.get::<_, i32>(0), 41);
    assert_eq!(typed.get::<_, String>(1), "1.50");
    assert_eq!(typed.get::<_, String>(2), "{\"k\": [1]}");
    assert_eq!(typed.get::<_, String>(3), "2020-01-02");
    // an unknown purpose is 42704 even for a NULL plaintext; a NULL purpose is the default DEK
    assert_eq!(sqlstate(c.query_one("SELECT shred.seal('c:1', 'x'::text, '', 'nosuch')", &[])), "42704");
    assert_eq!(sqlstate(c.query_one("SELECT shred.seal('c:1', NULL::text, '', 'nosuch')", &[])), "42704");
    assert_eq!(
        message(c.query_one("SELECT shred.seal('c:1', 'x'::text, '', 'nosuch')", &[])),
        "pg_shred: purpose \"nosuch\" is not defined (see shred.define_purpose)"
    );
    let null_purpose = seal_for(&mut c, "c:1", "n", None);
    assert_eq!(key_id(&mut c, &null_purpose), d);
    // pseudonyms per purpose: distinct, stable, NULL where the DEK does not exist
    let p = c
        .query_one(
            "SELECT shred.pseudonym('c:1', 'dom'), shred.pseudonym('c:1', 'dom', 'analytics'),
                    shred.pseudonym('c:1', 'dom', 'analytics'), shred.pseudonym('c:1', 'dom', 'marketing'),
                    shred.pseudonym(NULL, 'dom', 'analytics'), shred.pseudonym('c:1', NULL)",
            &[],
        )
        .unwrap();
    let (p0, p1, p2): (String, String, String) = (p.get(0), p.get(1), p.get(2));
    assert_ne!(p0, p1);
    assert_eq!(p1, p2);
    assert_eq!(p.get::<_, Option<String>>(3), None);
    assert_eq!(p.get::<_, Option<String>>(4), None);
    assert_eq!(p.get::<_, Option<String>>(5), None);
    // create_keys makes default DEKs only, also for a subject that has purpose DEKs
    let made: i64 = c.query_one("SELECT shred.create_keys(ARRAY['c:1', 'c:2'])", &[]).unwrap().get(0);
    assert_eq!(made, 1);
    // a purpose DEK comes with the subject's default DEK (an erasure of the whole subject
    // serializes with the purpose DEK's creation on it)
    c.query_one("SELECT shred.seal('c:3', 'x', '', 'analytics')", &[]).unwrap();
    assert!(dek_of(&mut c, "c:3", None).is_some());
    let made: i64 = c.query_one("SELECT shred.create_keys(ARRAY['c:3'])", &[]).unwrap().get(0);
    assert_eq!(made, 0);
}

/// `shred.erase(subject, purpose)` destroys that purpose's DEK only, in the caller's
/// transaction: ROLLBACK and ROLLBACK TO SAVEPOINT keep it; COMMIT makes it final, records it
/// with its purpose, and another session with the DEK cached opens NULL at its next statement.
/// `shred.erase(subject)` destroys every DEK of the subject.
#[test]
fn erasing_one_purpose_keeps_the_rest() {
    let mut c = purposes_db("pu_erase");
    let mut other = connect("pu_erase");
    let name = seal_for(&mut c, "c:1", "Ada", None);
    let clicks = seal_for(&mut c, "c:1", "clicks", Some("analytics"));
    let bob = seal_for(&mut c, "c:2", "bob clicks", Some("analytics"));
    // warm the other session's cache
    assert_eq!(open(&mut other, &clicks).as_deref(), Some("clicks"));

    c.batch_execute("BEGIN").unwrap();
    let erased: bool = c.query_one("SELECT shred.erase('c:1', 'analytics')", &[]).unwrap().get(0);
    assert!(erased);
    assert_eq!(open(&mut c, &clicks), None);
    assert_eq!(open(&mut c, &name).as_deref(), Some("Ada"));
    assert_eq!(open(&mut other, &clicks).as_deref(), Some("clicks"), "not committed yet");
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(open(&mut c, &clicks).as_deref(), Some("clicks"));

    c.batch_execute("BEGIN; SAVEPOINT s; SELECT shred.erase('c:1', 'analytics'); ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_eq!(open(&mut c, &clicks).as_deref(), Some("clicks"));
    let logged: i64 = c.query_one("SELECT count(*) FROM shred.erasure_log", &[]).unwrap().get(0);
    assert_eq!(logged, 0);

    let id = key_id(&mut c, &clicks);
    let erased: bool = c.query_one("SELECT shred.erase('c:1', 'analytics')", &[]).unwrap().get(0);
    assert!(erased);
    assert_eq!(open(&mut other, &clicks), None, "the other session's cached DEK is gone after COMMIT");
    assert_eq!(open(&mut other, &name).as_deref(), Some("Ada"));
    assert_eq!(open(&mut other, &bob).as_deref(), Some("bob clicks"));
    let again: bool = c.query_one("SELECT shred.erase('c:1', 'analytics')", &[]).unwrap().get(0);
    assert!(!again);
    let rec = c
        .query_one(
            "SELECT l.key_id, p.name, l.subject_digest IS NOT NULL FROM shred.erasure_log l JOIN shred.purpose p USING (purpose_id)",
            &[],
        )
        .unwrap();
    assert_eq!(rec.get::<_, i64>(0), id);
    assert_eq!(rec.get::<_, String>(1), "analytics");
    assert!(rec.get::<_, bool>(2));
    let is_erased: bool = c.query_one("SELECT shred.is_erased($1::text::shred.sealed)", &[&clicks]).unwrap().get(0);
    assert!(is_erased);
    // the subject itself is not erased: erased_at counts whole erasures only
    let at: Option<std::time::SystemTime> = c.query_one("SELECT shred.erased_at('c:1')", &[]).unwrap().get(0);
    assert_eq!(at, None);
    // a new seal for the purpose makes a new DEK, never the erased key id again
    let fresh = seal_for(&mut c, "c:1", "new clicks", Some("analytics"));
    assert_ne!(key_id(&mut c, &fresh), id);

    // the whole subject: every DEK, recorded without a purpose
    let erased: bool = c.query_one("SELECT shred.erase('c:1')", &[]).unwrap().get(0);
    assert!(erased);
    assert_eq!(open(&mut other, &name), None);
    assert_eq!(open(&mut other, &fresh), None);
    assert_eq!(open(&mut other, &bob).as_deref(), Some("bob clicks"));
    let left: i64 = c.query_one("SELECT count(*) FROM shred.subject_key WHERE subject = 'c:1'", &[]).unwrap().get(0);
    assert_eq!(left, 0);
    let whole: i64 = c.query_one("SELECT count(*) FROM shred.erasure_log WHERE purpose_id IS NULL", &[]).unwrap().get(0);
    assert_eq!(whole, 2, "the default and the analytics DEK");
    let at: Option<std::time::SystemTime> = c.query_one("SELECT shred.erased_at('c:1')", &[]).unwrap().get(0);
    assert!(at.is_some());
    // arrays erase every DEK of each subject and count DEKs
    seal_for(&mut c, "c:4", "x", None);
    seal_for(&mut c, "c:4", "y", Some("analytics"));
    let n: i64 = c.query_one("SELECT shred.erase(ARRAY['c:2', 'c:4', 'c:4', 'c:none'])", &[]).unwrap().get(0);
    assert_eq!(n, 4, "c:2's and c:4's default and analytics DEKs");
    assert_eq!(open(&mut other, &bob), None);
    // errors: NULL purpose, unknown purpose
    assert_eq!(sqlstate(c.query_one("SELECT shred.erase('c:1', NULL)", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.erase('c:1', 'nosuch')", &[])), "42704");
    assert_eq!(sqlstate(c.query_one("SELECT shred.erase(NULL, 'analytics')", &[])), "22004");
}

/// A purpose that requires consent: nothing is sealed for it, with any type or argument form,
/// until the data subject confirmed; the double opt-in and the token's rules; withdrawal erases
/// the purpose's DEK in the caller's transaction and is recorded; the history outlives the
/// subject's erasure with times and statuses only.
#[test]
fn double_opt_in_gates_sealing_and_withdrawal_erases() {
    let mut c = purposes_db("pu_consent");
    for sql in [
        "SELECT shred.seal('c:1', 'a@example.org'::text, '', 'marketing')",
        "SELECT shred.seal('c:1', 'a'::bytea, '', 'marketing')",
        "SELECT shred.seal('c:1', 1::int4, '', 'marketing')",
        "SELECT shred.seal('c:1', 1::int8, '', 'marketing')",
        "SELECT shred.seal('c:1', 1::numeric, '', 'marketing')",
        "SELECT shred.seal('c:1', current_date, '', 'marketing')",
        "SELECT shred.seal('c:1', now(), '', 'marketing')",
        "SELECT shred.seal('c:1', '{}'::jsonb, '', 'marketing')",
        "SELECT shred.seal('c:1', 'x'::text, purpose => 'marketing')",
    ] {
        let r = c.query_one(sql, &[]);
        let e = r.err().unwrap_or_else(|| panic!("{sql} sealed without consent"));
        assert_eq!(code_of(&e), "55000", "{sql}");
        assert_eq!(
            e.as_db_error().unwrap().message(),
            "pg_shred: purpose \"marketing\" requires the data subject's confirmed consent, which it does not have"
        );
    }
    assert_eq!(dek_of(&mut c, "c:1", Some("marketing")), None, "nothing was created");
    // NULL plaintexts seal nothing, so need nothing
    let none: Option<String> = c.query_one("SELECT shred.seal('c:1', NULL::text, '', 'marketing')::text", &[]).unwrap().get(0);
    assert_eq!(none, None);

    // first opt-in: a token; still no consent
    let token = request(&mut c, "c:1", "marketing");
    assert_eq!(token.len(), 43);
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(!has_consent(&mut c, "c:1", "marketing"));
    assert_eq!(sqlstate(c.query_one("SELECT shred.seal('c:1', 'x'::text, '', 'marketing')", &[])), "55000");
    assert_eq!(history(&mut c, "c:1"), [("marketing".into(), "pending".into(), Some("{\"form\": \"signup\"}".into()))]);
    // only the token's digest is stored
    let stored: i64 = c
        .query_one("SELECT count(*) FROM shred.consent WHERE token_digest = sha256(decode(translate($1, '-_', '+/') || '=', 'base64'))", &[&token])
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let anywhere: i64 = c
        .query_one("SELECT count(*) FROM shred.consent c WHERE c::text LIKE '%' || $1 || '%'", &[&token])
        .unwrap()
        .get(0);
    assert_eq!(anywhere, 0);

    // second opt-in; a second click answers true again; other tokens false
    assert!(confirm(&mut c, &token));
    assert!(confirm(&mut c, &token));
    assert!(has_consent(&mut c, "c:1", "marketing"));
    assert!(!has_consent(&mut c, "c:2", "marketing"));
    assert!(!has_consent(&mut c, "c:1", "analytics"));
    let mail = seal_for(&mut c, "c:1", "a@example.org", Some("marketing"));
    let name = seal_for(&mut c, "c:1", "Ada", None);
    let m = dek_of(&mut c, "c:1", Some("marketing")).unwrap();
    assert_eq!(key_id(&mut c, &mail), m);
    let used: bool = c.query_one("SELECT used_at IS NOT NULL FROM shred.consent", &[]).unwrap().get(0);
    assert!(used, "the first DEK under the consent is recorded");

    // withdrawal rolled back (also to a savepoint): nothing changes
    c.batch_execute("BEGIN; SELECT shred.withdraw_consent('c:1', 'marketing')").unwrap();
    assert_eq!(open(&mut c, &mail), None);
    assert!(!has_consent(&mut c, "c:1", "marketing"));
    c.batch_execute("ROLLBACK").unwrap();
    c.batch_execute("BEGIN; SAVEPOINT s; SELECT shred.withdraw_consent('c:1', 'marketing'); ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_eq!(open(&mut c, &mail).as_deref(), Some("a@example.org"));
    assert!(has_consent(&mut c, "c:1", "marketing"));
    assert!(confirm(&mut c, &token));

    // withdrawal committed: the purpose DEK is erased and recorded, the rest stays
    let withdrawn: bool = c.query_one("SELECT shred.withdraw_consent('c:1', 'marketing')", &[]).unwrap().get(0);
    assert!(withdrawn);
    assert_eq!(open(&mut c, &mail), None);
    assert_eq!(open(&mut c, &name).as_deref(), Some("Ada"));
    assert!(!has_consent(&mut c, "c:1", "marketing"));
    assert!(!confirm(&mut c, &token), "a withdrawn consent's token confirms nothing");
    assert_eq!(sqlstate(c.query_one("SELECT shred.seal('c:1', 'x'::text, '', 'marketing')", &[])), "55000");
    let rec: i64 = c
        .query_one("SELECT count(*) FROM shred.erasure_log WHERE key_id = $1 AND purpose_id IS NOT NULL", &[&m])
        .unwrap()
        .get(0);
    assert_eq!(rec, 1);
    let again: bool = c.query_one("SELECT shred.withdraw_consent('c:1', 'marketing')", &[]).unwrap().get(0);
    assert!(!again, "nothing left to withdraw");

    // a new consent: the old token stays dead, the new one is single-purpose
    let token2 = request(&mut c, "c:1", "marketing");
    assert_ne!(token2, token);
    assert!(!confirm(&mut c, &token));
    assert!(confirm(&mut c, &token2));
    let mail2 = seal_for(&mut c, "c:1", "new@example.org", Some("marketing"));
    assert_ne!(key_id(&mut c, &mail2), m);
    let statuses: Vec<String> = history(&mut c, "c:1").into_iter().map(|h| h.1).collect();
    assert_eq!(statuses, ["withdrawn", "confirmed"]);

    // erasing an unrelated purpose keeps the consent; erasing the marketing DEK without a
    // withdrawal keeps the consent too (a new DEK is made under it)
    c.query_one("SELECT shred.erase('c:1', 'marketing')", &[]).unwrap();
    assert!(has_consent(&mut c, "c:1", "marketing"));
    seal_for(&mut c, "c:1", "again@example.org", Some("marketing"));

    // the subject erased: the history keeps purposes, statuses and times, never the evidence
    c.query_one("SELECT shred.erase('c:1')", &[]).unwrap();
    let h = history(&mut c, "c:1");
    assert_eq!(h.len(), 2);
    assert!(h.iter().all(|(p, _, e)| p == "marketing" && e.is_none()), "{h:?}");
    let statuses: Vec<&str> = h.iter().map(|x| x.1.as_str()).collect();
    assert_eq!(statuses, ["withdrawn", "erased"]);
    // an erased subject's consent ends with it: coming back, it opts in again
    assert!(!has_consent(&mut c, "c:1", "marketing"));
    assert_eq!(sqlstate(c.query_one("SELECT shred.seal('c:1', 'x'::text, '', 'marketing')", &[])), "55000");
    let back = request(&mut c, "c:1", "marketing");
    assert!(confirm(&mut c, &back));
    assert!(has_consent(&mut c, "c:1", "marketing"));
    seal_for(&mut c, "c:1", "back@example.org", Some("marketing"));
    // in one transaction: erased, then asked
    c.batch_execute("BEGIN; SELECT shred.erase('c:1')").unwrap();
    assert!(!has_consent(&mut c, "c:1", "marketing"));
    assert_eq!(history(&mut c, "c:1")[2].1, "erased");
    c.batch_execute("ROLLBACK").unwrap();
    assert!(has_consent(&mut c, "c:1", "marketing"));
    c.query_one("SELECT shred.erase('c:1')", &[]).unwrap();
    let times: i64 = c
        .query_one("SELECT count(*) FROM shred.consent_history('c:1') WHERE requested_at IS NOT NULL AND confirmed_at IS NOT NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(times, 3);
    let plain: i64 = c
        .query_one("SELECT count(*) FROM shred.consent c WHERE c::text LIKE '%c:1%' OR c::text LIKE '%signup%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(plain, 0, "no subject or evidence in clear in the ledger");
    assert!(history(&mut c, "c:unknown").is_empty());
    // errors
    assert_eq!(sqlstate(c.query_one("SELECT shred.request_consent('c:1', 'nosuch')", &[])), "42704");
    assert_eq!(sqlstate(c.query_one("SELECT shred.request_consent(NULL, 'marketing')", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.request_consent('c:1', NULL)", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.has_consent('c:1', 'nosuch')", &[])), "42704");
    assert_eq!(sqlstate(c.query_one("SELECT shred.withdraw_consent('c:1', NULL)", &[])), "22004");
    assert_eq!(sqlstate(c.query_one("SELECT shred.request_consent('pg_shred:audit', 'marketing')", &[])), "22023");
}

/// Tokens: an unknown, malformed, expired or withdrawn token is answered `false` without an
/// error, as fast as any other (no timing difference an attacker could use to tell a used token
/// from an unknown one); expiry follows `shred.consent_token_lifetime`.
#[test]
fn tokens_expire_and_tell_nothing() {
    let mut c = purposes_db("pu_tokens");
    let expired = request(&mut c, "c:1", "marketing");
    c.execute("UPDATE shred.consent SET token_expires_at = now() - interval '1 second'", &[]).unwrap();
    assert!(!confirm(&mut c, &expired));
    assert!(!has_consent(&mut c, "c:1", "marketing"));
    assert_eq!(history(&mut c, "c:1")[0].1, "expired");
    let withdrawn = request(&mut c, "c:2", "marketing");
    assert!(confirm(&mut c, &withdrawn));
    c.query_one("SELECT shred.withdraw_consent('c:2', 'marketing')", &[]).unwrap();
    // the lifetime setting: superuser-only, in seconds, applied at request time
    c.batch_execute("SET shred.consent_token_lifetime = '1h'").unwrap();
    request(&mut c, "c:3", "marketing");
    let secs: f64 = c
        .query_one("SELECT extract(epoch FROM token_expires_at - requested_at)::float8 FROM shred.consent ORDER BY requested_at DESC, token_expires_at LIMIT 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(secs, 3600.0);
    assert_eq!(sqlstate(c.batch_execute("SET shred.consent_token_lifetime = '10s'")), "22023");
    c.batch_execute("RESET shred.consent_token_lifetime").unwrap();

    let unknown = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    for t in [unknown, "", "x", "not a token at all, and longer than forty-three characters", &expired[..42], "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+"] {
        assert!(!confirm(&mut c, t), "{t:?}");
    }
    let null: bool = c.query_one("SELECT shred.confirm_consent(NULL)", &[]).unwrap().get(0);
    assert!(!null);
    // 2,000 random tokens: none confirms anything
    let hits: i64 = c
        .query_one(
            "SELECT count(*) FILTER (WHERE shred.confirm_consent(rtrim(translate(encode(sha256(random()::text::bytea), 'base64'), '+/', '-_'), '=')))
               FROM generate_series(1, 2000)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(hits, 0);

    // the same statement answers every dead token: median times within a factor of 1.5
    let stmt = c.prepare("SELECT shred.confirm_consent($1)").unwrap();
    let kinds = [unknown.to_string(), expired.clone(), withdrawn.clone()];
    let mut times: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..600 {
        for k in 0..3 {
            let k = (k + round) % 3;
            let t0 = Instant::now();
            let ok: bool = c.query_one(&stmt, &[&kinds[k]]).unwrap().get(0);
            times[k].push(t0.elapsed().as_secs_f64());
            assert!(!ok);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            t[t.len() / 2]
        })
        .collect();
    let (lo, hi) = (medians.iter().cloned().fold(f64::MAX, f64::min), medians.iter().cloned().fold(0.0, f64::max));
    assert!(hi / lo < 1.5, "median confirm times differ: unknown {:?}, expired {:?}, withdrawn {:?}", medians[0], medians[1], medians[2]);
}

/// Roles: the application (shred_writer, shred_reader) requests, confirms, withdraws and checks
/// consent; purposes are defined by shred_admin; erasure by purpose is shred_eraser's; PUBLIC
/// gets nothing; no role reads the ledger but the eraser and the admin.
#[test]
fn roles_of_purposes_and_consent() {
    let mut admin = purposes_db("pu_roles");
    role(&mut admin, "pu_app", "shred_reader, shred_writer");
    role(&mut admin, "pu_nobody", "");
    role(&mut admin, "pu_dpo", "shred_eraser");
    role(&mut admin, "pu_ops", "shred_admin");
    let mut nobody = connect_as("pu_roles", "pu_nobody");
    for sql in [
        "SELECT shred.request_consent('c:1', 'marketing')",
        "SELECT shred.confirm_consent('x')",
        "SELECT shred.withdraw_consent('c:1', 'marketing')",
        "SELECT shred.has_consent('c:1', 'marketing')",
        "SELECT * FROM shred.consent_history('c:1')",
        "SELECT shred.define_purpose('p', 'd')",
        "SELECT shred.erase('c:1', 'analytics')",
        "SELECT shred.seal('c:1', 'x'::text, '', 'analytics')",
        "SELECT shred.pseudonym('c:1', 'd', 'analytics')",
        "SELECT * FROM shred.purposes",
        "SELECT * FROM shred.consent",
        "SELECT * FROM shred.purpose",
        "SELECT shred._subject_digest('c:1')",
    ] {
        assert_eq!(sqlstate(nobody.batch_execute(sql)), "42501", "PUBLIC: {sql}");
    }
    let mut app = connect_as("pu_roles", "pu_app");
    let token = request(&mut app, "c:1", "marketing");
    assert!(confirm(&mut app, &token));
    assert!(has_consent(&mut app, "c:1", "marketing"));
    let mail = seal_for(&mut app, "c:1", "a@example.org", Some("marketing"));
    assert_eq!(open(&mut app, &mail).as_deref(), Some("a@example.org"));
    let n: i64 = app.query_one("SELECT count(*) FROM shred.purposes", &[]).unwrap().get(0);
    assert_eq!(n, 2);
    assert_eq!(history(&mut app, "c:1").len(), 1);
    for sql in [
        "SELECT shred.define_purpose('p', 'd')",
        "SELECT shred.erase('c:1', 'marketing')",
        "SELECT * FROM shred.consent",
        "SELECT * FROM shred.purpose",
        "UPDATE shred.consent SET withdrawn_at = NULL",
        "SELECT shred._subject_digest('c:1')",
    ] {
        assert_eq!(sqlstate(app.batch_execute(sql)), "42501", "application: {sql}");
    }
    let withdrawn: bool = app.query_one("SELECT shred.withdraw_consent('c:1', 'marketing')", &[]).unwrap().get(0);
    assert!(withdrawn, "the application honours a withdrawal itself");
    assert_eq!(open(&mut app, &mail), None);
    let user: String = app.query_one("SELECT current_user::text", &[]).unwrap().get(0);
    assert_eq!(user, "pu_app");

    let mut dpo = connect_as("pu_roles", "pu_dpo");
    seal_for(&mut admin, "c:2", "x", Some("analytics"));
    let erased: bool = dpo.query_one("SELECT shred.erase('c:2', 'analytics')", &[]).unwrap().get(0);
    assert!(erased);
    let rows: i64 = dpo.query_one("SELECT count(*) FROM shred.consent", &[]).unwrap().get(0);
    assert_eq!(rows, 1);
    assert_eq!(history(&mut dpo, "c:1")[0].1, "withdrawn");
    assert_eq!(sqlstate(dpo.batch_execute("SELECT shred.request_consent('c:1', 'marketing')")), "42501");

    let mut ops = connect_as("pu_roles", "pu_ops");
    let created: bool = ops.query_one("SELECT shred.define_purpose('billing', 'Invoices', retention => interval '10 years')", &[]).unwrap().get(0);
    assert!(created);
    let updated: bool = ops.query_one("SELECT shred.define_purpose('billing', 'Invoices and dunning', false, interval '11 years')", &[]).unwrap().get(0);
    assert!(!updated);
    let row = ops.query_one("SELECT description, retention::text FROM shred.purposes WHERE name = 'billing'", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "Invoices and dunning");
    assert_eq!(row.get::<_, String>(1), "11 years");
    assert_eq!(sqlstate(ops.batch_execute("SELECT shred.define_purpose('billing', 'x', true)")), "55000");
    for (sql, state) in [
        ("SELECT shred.define_purpose('Bad Name', 'x')", "22023"),
        ("SELECT shred.define_purpose('', 'x')", "22023"),
        ("SELECT shred.define_purpose('p', NULL)", "22004"),
        ("SELECT shred.define_purpose(NULL, 'x')", "22004"),
        ("SELECT shred.define_purpose('p', 'x', NULL)", "22004"),
        ("SELECT shred.define_purpose('p', 'x', false, interval '-1 day')", "22023"),
        ("SELECT shred.define_purpose('p', 'x', false, interval '0')", "22023"),
    ] {
        assert_eq!(sqlstate(ops.batch_execute(sql)), state, "{sql}");
    }
    let ids: Vec<i32> = admin.query("SELECT purpose_id FROM shred.purpose ORDER BY 1", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2, 3], "failed definitions take no id");
    drop((app, dpo, ops, nobody));
    admin.batch_execute("DROP OWNED BY pu_app, pu_nobody, pu_dpo, pu_ops").unwrap();
}

/// Two sessions: A seals and opens for a purpose (its DEK cached), B withdraws the consent and
/// commits; A's next statements open NULL and cannot seal for the purpose. A first seal racing a
/// withdrawal never leaves a purpose DEK behind a committed withdrawal.
#[test]
fn withdrawal_in_another_session() {
    let mut a = purposes_db("pu_sessions");
    let mut b = connect("pu_sessions");
    let token = request(&mut a, "c:1", "marketing");
    assert!(confirm(&mut a, &token));
    let mail = seal_for(&mut a, "c:1", "a@example.org", Some("marketing"));
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(open(&mut a, &mail).as_deref(), Some("a@example.org"));
    b.query_one("SELECT shred.withdraw_consent('c:1', 'marketing')", &[]).unwrap();
    assert_eq!(open(&mut a, &mail), None, "an old snapshot does not resurrect the withdrawn purpose");
    // the consent this snapshot still sees was withdrawn since: no new DEK under it
    assert_eq!(sqlstate(a.query_one("SELECT shred.seal('c:1', 'x'::text, '', 'marketing')", &[])), "40001");
    a.batch_execute("ROLLBACK").unwrap();

    // A's first seal under a new consent is in flight when B withdraws: B waits for A, then
    // erases the DEK A created.
    let token = request(&mut a, "c:2", "marketing");
    assert!(confirm(&mut a, &token));
    a.batch_execute("BEGIN").unwrap();
    let v = seal_for(&mut a, "c:2", "b@example.org", Some("marketing"));
    let pid: i32 = a.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let waiter = std::thread::spawn(move || {
        let withdrawn: bool = b.query_one("SELECT shred.withdraw_consent('c:2', 'marketing')", &[]).unwrap().get(0);
        (b, withdrawn)
    });
    let mut watch = connect("pu_sessions");
    wait_until("the withdrawal waits for the first seal", 30, || {
        let blocked: i64 = watch
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", &[&pid])
            .unwrap()
            .get(0);
        blocked > 0
    });
    a.batch_execute("COMMIT").unwrap();
    let (mut b, withdrawn) = waiter.join().unwrap();
    assert!(withdrawn);
    assert_eq!(open(&mut a, &v), None);
    assert_eq!(dek_of(&mut a, "c:2", Some("marketing")), None);

    // B's withdrawal is in flight when A seals for the first time: A waits, then is refused.
    let token = request(&mut a, "c:3", "marketing");
    assert!(confirm(&mut a, &token));
    b.batch_execute("BEGIN").unwrap();
    b.query_one("SELECT shred.withdraw_consent('c:3', 'marketing')", &[]).unwrap();
    let bpid: i32 = b.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let sealer = std::thread::spawn(move || {
        let r = a.query_one("SELECT shred.seal('c:3', 'c@example.org'::text, '', 'marketing')", &[]).map(|_| ());
        (a, r)
    });
    wait_until("the first seal waits for the withdrawal", 30, || {
        let blocked: i64 = watch
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", &[&bpid])
            .unwrap()
            .get(0);
        blocked > 0
    });
    b.batch_execute("COMMIT").unwrap();
    let (mut a, r) = sealer.join().unwrap();
    assert_eq!(sqlstate(r), "55000");
    assert_eq!(dek_of(&mut a, "c:3", Some("marketing")), None);
}

/// pg_dump and restore keep purposes, consent records and purpose DEKs: values open, consent
/// and histories answer as before, and a withdrawal after the restore erases the purpose.
#[test]
fn dump_and_restore_keep_purposes_and_consent() {
    let mut src = purposes_db("pu_dump_src");
    let token = request(&mut src, "c:1", "marketing");
    assert!(confirm(&mut src, &token));
    let mail = seal_for(&mut src, "c:1", "a@example.org", Some("marketing"));
    let clicks = seal_for(&mut src, "c:1", "clicks", Some("analytics"));
    let name = seal_for(&mut src, "c:1", "Ada", None);
    request(&mut src, "c:2", "marketing");
    src.query_one("SELECT shred.erase('c:1', 'analytics')", &[]).unwrap();
    let before = history(&mut src, "c:1");
    let path = dir().join("purposes.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-f", path.to_str().unwrap(), "pu_dump_src"]));
    drop(empty_db("pu_dump_dst"));
    run(pg_tool("pg_restore").args(["--exit-on-error", "-d", "pu_dump_dst", path.to_str().unwrap()]));
    let mut dst = connect("pu_dump_dst");
    assert_eq!(history(&mut dst, "c:1"), before);
    assert_eq!(history(&mut dst, "c:2")[0].1, "pending");
    assert!(has_consent(&mut dst, "c:1", "marketing"));
    assert_eq!(open(&mut dst, &mail).as_deref(), Some("a@example.org"));
    assert_eq!(open(&mut dst, &name).as_deref(), Some("Ada"));
    assert_eq!(open(&mut dst, &clicks), None);
    let purposes: Vec<(String, bool)> = dst
        .query("SELECT name, requires_consent FROM shred.purposes ORDER BY name", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(purposes, [("analytics".into(), false), ("marketing".into(), true)]);
    assert!(confirm(&mut dst, &token), "the token still confirms within its lifetime");
    dst.query_one("SELECT shred.withdraw_consent('c:1', 'marketing')", &[]).unwrap();
    assert_eq!(open(&mut dst, &mail), None);
    assert_eq!(open(&mut dst, &name).as_deref(), Some("Ada"));
    let defined: bool = dst.query_one("SELECT shred.define_purpose('billing', 'Invoices')", &[]).unwrap().get(0);
    assert!(defined);
    let id: i32 = dst.query_one("SELECT purpose_id FROM shred.purpose WHERE name = 'billing'", &[]).unwrap().get(0);
    assert_eq!(id, 3, "ids go on after the restored ones");
}

/// The update from 0.5.0 keeps every value and every DEK as the default DEK of its subject,
/// carries EXECUTE granted on the replaced functions over to their successors, and counts
/// erasures made before it as whole erasures.
#[test]
fn update_from_0_5_0_keeps_every_value_on_its_default_dek() {
    let mut c = empty_db("pu_update");
    c.batch_execute("CREATE EXTENSION pg_shred VERSION '0.5.0'").unwrap();
    role(&mut c, "pu_direct", "");
    c.batch_execute(
        "GRANT EXECUTE ON FUNCTION shred.seal(text, text, text), shred.seal(text, int4, text), shred.pseudonym(text, text) TO pu_direct;
         CREATE TABLE v (id int PRIMARY KEY, t shred.sealed, i shred.sealed, j shred.sealed);
         INSERT INTO v SELECT g, shred.seal('s:' || g, 'text ' || g, 'c'), shred.seal('s:' || g, g, 'c'),
                               shred.seal('s:' || g, jsonb_build_object('g', g), 'c')
           FROM generate_series(1, 50) g;
         SELECT shred.create_keys(ARRAY['s:100', 's:101']);
         SELECT shred.erase('s:50');",
    )
    .unwrap();
    let pseudonym_before: String = c.query_one("SELECT shred.pseudonym('s:1', 'dom')", &[]).unwrap().get(0);
    let keys_before: Vec<(i64, String)> = c
        .query("SELECT key_id, subject FROM shred.subject_key ORDER BY key_id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    // Updated to the newest version (0.6.0 and every one after it).
    let newest: bool = c.query_one("SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'pg_shred' AND name = extname", &[]).unwrap().get(0);
    assert!(newest);
    let keys_after: Vec<(i64, String)> = c
        .query("SELECT key_id, subject FROM shred.subject_key WHERE purpose_id = 0 ORDER BY key_id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(keys_after, keys_before, "every DEK is its subject's default DEK");
    let opened: i64 = c
        .query_one(
            "SELECT count(*) FROM v WHERE shred.open(t, 'c') = 'text ' || id AND shred.open_integer(i, 'c') = id
                                      AND shred.open_jsonb(j, 'c') = jsonb_build_object('g', id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(opened, 49);
    let erased: i64 = c.query_one("SELECT count(*) FROM v WHERE shred.open(t, 'c') IS NULL", &[]).unwrap().get(0);
    assert_eq!(erased, 1);
    let at: Option<std::time::SystemTime> = c.query_one("SELECT shred.erased_at('s:50')", &[]).unwrap().get(0);
    assert!(at.is_some(), "an erasure before the update is a whole erasure");
    let same: bool = c
        .query_one("SELECT shred.key_id(shred.seal('s:1', 'again')) = (SELECT shred.key_id(t) FROM v WHERE id = 1)", &[])
        .unwrap()
        .get(0);
    assert!(same, "a subject keeps sealing under its DEK");
    let pseudonym_after: String = c.query_one("SELECT shred.pseudonym('s:1', 'dom')", &[]).unwrap().get(0);
    assert_eq!(pseudonym_after, pseudonym_before);
    // a direct grant on a replaced function carries over to its successor
    let mut direct = connect_as("pu_update", "pu_direct");
    direct.query_one("SELECT shred.seal('s:1', 'x')", &[]).unwrap();
    direct.query_one("SELECT shred.seal('s:1', 5)", &[]).unwrap();
    direct.query_one("SELECT shred.pseudonym('s:1', 'dom')", &[]).unwrap();
    assert_eq!(sqlstate(direct.query_one("SELECT shred.seal('s:1', 5::int8)", &[])), "42501");
    let old: i64 = c
        .query_one("SELECT count(*) FROM pg_proc WHERE proname = 'seal' AND pronamespace = 'shred'::regnamespace AND pronargs = 3", &[])
        .unwrap()
        .get(0);
    assert_eq!(old, 0);
    // purposes work in the updated database
    c.batch_execute("SELECT shred.define_purpose('analytics', 'Analytics')").unwrap();
    let p = seal_for(&mut c, "s:1", "clicks", Some("analytics"));
    assert_eq!(open(&mut c, &p).as_deref(), Some("clicks"));
    c.query_one("SELECT shred.erase('s:1', 'analytics')", &[]).unwrap();
    assert_eq!(open(&mut c, &p), None);
    let t1: Option<String> = c.query_one("SELECT shred.open(t, 'c') FROM v WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(t1.as_deref(), Some("text 1"));
    drop(direct);
    c.batch_execute("DROP OWNED BY pu_direct").unwrap();
}

/// After restoring a backup taken before an erasure of one purpose, `shred.replay_erasures`
/// with the live erasure log's key ids erases that purpose's DEK again and records it as an
/// erasure of that purpose: the subject's other values still open and `shred.erased_at` stays
/// NULL; a replayed whole erasure is recorded as one.
#[test]
fn replayed_purpose_erasures_stay_purpose_erasures() {
    let mut live = purposes_db("pu_replay_live");
    let clicks = seal_for(&mut live, "c:1", "clicks", Some("analytics"));
    let name = seal_for(&mut live, "c:1", "Ada", None);
    let bob = seal_for(&mut live, "c:2", "Bob", None);
    // c:3: a consent and a purpose DEK, then erased as a whole
    let t = request(&mut live, "c:3", "marketing");
    assert!(confirm(&mut live, &t));
    let carol = seal_for(&mut live, "c:3", "carol@example.org", Some("marketing"));
    let path = dir().join("purposes_replay.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-f", path.to_str().unwrap(), "pu_replay_live"]));
    live.query_one("SELECT shred.erase('c:1', 'analytics')", &[]).unwrap();
    live.query_one("SELECT shred.erase('c:2')", &[]).unwrap();
    live.query_one("SELECT shred.erase('c:3')", &[]).unwrap();
    let ids: Vec<i64> = live.query("SELECT key_id FROM shred.erasure_log ORDER BY key_id DESC", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids.len(), 4);

    drop(empty_db("pu_replay_old"));
    run(pg_tool("pg_restore").args(["--exit-on-error", "-d", "pu_replay_old", path.to_str().unwrap()]));
    let mut old = connect("pu_replay_old");
    assert_eq!(open(&mut old, &clicks).as_deref(), Some("clicks"));
    assert!(has_consent(&mut old, "c:3", "marketing"));
    let n: i64 = old.query_one("SELECT shred.replay_erasures($1)", &[&ids]).unwrap().get(0);
    assert_eq!(n, 4);
    assert_eq!(open(&mut old, &carol), None);
    assert!(!has_consent(&mut old, "c:3", "marketing"));
    assert_eq!(history(&mut old, "c:3")[0].1, "erased", "a whole erasure replayed, not a withdrawal");
    assert_eq!(open(&mut old, &clicks), None);
    assert_eq!(open(&mut old, &name).as_deref(), Some("Ada"));
    assert_eq!(open(&mut old, &bob), None);
    let at: Option<std::time::SystemTime> = old.query_one("SELECT shred.erased_at('c:1')", &[]).unwrap().get(0);
    assert_eq!(at, None, "c:1 was not erased as a whole");
    let at: Option<std::time::SystemTime> = old.query_one("SELECT shred.erased_at('c:2')", &[]).unwrap().get(0);
    assert!(at.is_some());
    let purposes: Vec<Option<String>> = old
        .query("SELECT p.name FROM shred.erasure_log l LEFT JOIN shred.purpose p USING (purpose_id) ORDER BY l.key_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let live_purposes: Vec<Option<String>> = live
        .query("SELECT p.name FROM shred.erasure_log l LEFT JOIN shred.purpose p USING (purpose_id) ORDER BY l.key_id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(purposes, live_purposes);
    assert!(purposes.contains(&Some("analytics".to_string())) && purposes.contains(&None));
}

/// An erasure of the whole subject and a first seal for a purpose, in either order, in two
/// sessions: the purpose DEK never survives the erasure (the erasure waits for the seal and then
/// deletes its DEK too, or the seal waits for the erasure and then starts the subject anew), and
/// a consent never survives it: a seal under it after the erasure is refused (55000; 40001
/// from an older REPEATABLE READ snapshot), also when the erasing transaction began before the
/// consent was requested.
#[test]
fn whole_erasure_and_first_purpose_seals_serialize() {
    let mut a = purposes_db("pu_erase_race");
    let mut b = connect("pu_erase_race");
    let mut watch = connect("pu_erase_race");
    let pid = |c: &mut Client| -> i32 { c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0) };
    let blocked_by = |w: &mut Client, p: i32| -> bool {
        w.query_one("SELECT count(*) > 0 FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", &[&p]).unwrap().get(0)
    };
    for purpose in ["analytics", "marketing"] {
        let subject = format!("race:{purpose}:1");
        seal_for(&mut a, &subject, "name", None);
        let t = request(&mut a, &subject, "marketing");
        assert!(confirm(&mut a, &t));
        // the seal first (uncommitted), then the erasure: it waits, then deletes the new DEK
        a.batch_execute("BEGIN").unwrap();
        let v = seal_for(&mut a, &subject, "mail", Some(purpose));
        let apid = pid(&mut a);
        let s = subject.clone();
        let eraser = std::thread::spawn(move || {
            let erased: bool = b.query_one("SELECT shred.erase($1)", &[&s]).unwrap().get(0);
            (b, erased)
        });
        wait_until("the erasure waits for the first purpose seal", 30, || blocked_by(&mut watch, apid));
        a.batch_execute("COMMIT").unwrap();
        let (b2, erased) = eraser.join().unwrap();
        b = b2;
        assert!(erased);
        assert_eq!(open(&mut a, &v), None, "{purpose}: the purpose value is erased");
        assert_eq!(dek_of(&mut a, &subject, Some(purpose)), None, "{purpose}");
        assert!(!has_consent(&mut a, &subject, "marketing"));

        // the erasure first (uncommitted), then the seal: it waits, then starts anew
        let subject = format!("race:{purpose}:2");
        seal_for(&mut a, &subject, "name", None);
        let t = request(&mut a, &subject, "marketing");
        assert!(confirm(&mut a, &t));
        b.batch_execute("BEGIN").unwrap();
        b.query_one("SELECT shred.erase($1)", &[&subject]).unwrap();
        let bpid = pid(&mut b);
        let s = subject.clone();
        let p = purpose.to_string();
        let sealer = std::thread::spawn(move || {
            let r = a.query_one("SELECT shred.seal($1, 'mail'::text, 'p.ctx', $2)::text", &[&s, &p]).map(|r| r.get::<_, String>(0));
            (a, r)
        });
        wait_until("the first purpose seal waits for the erasure", 30, || blocked_by(&mut watch, bpid));
        b.batch_execute("COMMIT").unwrap();
        let (a2, r) = sealer.join().unwrap();
        a = a2;
        if purpose == "marketing" {
            assert_eq!(sqlstate(r), "55000", "the erasure ended the consent");
            assert_eq!(dek_of(&mut a, &subject, Some(purpose)), None);
        } else {
            // sealed after the erasure: the subject exists anew, with only this value
            let v = r.unwrap();
            assert_eq!(open(&mut a, &v).as_deref(), Some("mail"));
            let at: Option<std::time::SystemTime> = a.query_one("SELECT shred.erased_at($1)", &[&subject]).unwrap().get(0);
            assert!(at.is_some());
        }
    }

    // REPEATABLE READ: a snapshot from before a committed erasure cannot seal under the
    // consent the erasure ended
    let subject = "race:rr";
    seal_for(&mut a, subject, "name", None);
    let t = request(&mut a, subject, "marketing");
    assert!(confirm(&mut a, &t));
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").unwrap();
    b.query_one("SELECT shred.erase($1)", &[&subject]).unwrap();
    assert_eq!(sqlstate(a.query_one("SELECT shred.seal($1, 'x'::text, '', 'marketing')", &[&subject])), "40001");
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(dek_of(&mut a, subject, Some("marketing")), None);

    // the erasing transaction began before the consent was requested and confirmed
    let subject = "race:early";
    b.batch_execute("BEGIN; SELECT 1").unwrap();
    let t = request(&mut a, subject, "marketing");
    assert!(confirm(&mut a, &t));
    seal_for(&mut a, subject, "mail", Some("marketing"));
    b.query_one("SELECT shred.erase($1)", &[&subject]).unwrap();
    b.batch_execute("COMMIT").unwrap();
    assert!(!has_consent(&mut a, subject, "marketing"));
    assert_eq!(history(&mut a, subject)[0].1, "erased");
    assert_eq!(sqlstate(a.query_one("SELECT shred.seal($1, 'x'::text, '', 'marketing')", &[&subject])), "55000");
}

/// Nothing pg_shred runs as the key store's owner resolves an operator or function through the
/// caller's search_path: a role with shred_writer that puts its own schema, with its own `=`
/// operators on the key store's column types, before pg_catalog, never has them run (as the
/// owner, or at all), through any path that writes the key store or the consent ledger.
#[test]
fn callers_search_path_never_reaches_key_store_statements() {
    let mut admin = purposes_db("pu_search_path");
    role(&mut admin, "pu_shadow", "shred_reader, shred_writer, shred_eraser");
    admin
        .batch_execute(
            "CREATE SCHEMA shadow AUTHORIZATION pu_shadow;
             CREATE TABLE public.shadow_calls (who text, what text);
             GRANT INSERT ON public.shadow_calls TO PUBLIC;",
        )
        .unwrap();
    let mut c = connect_as("pu_search_path", "pu_shadow");
    c.batch_execute(
        "CREATE FUNCTION shadow.eq4(int4, int4) RETURNS bool LANGUAGE plpgsql AS $f$
           BEGIN INSERT INTO public.shadow_calls VALUES (current_user, 'int4'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
         CREATE FUNCTION shadow.eq8(int8, int8) RETURNS bool LANGUAGE plpgsql AS $f$
           BEGIN INSERT INTO public.shadow_calls VALUES (current_user, 'int8'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
         CREATE FUNCTION shadow.eqb(bytea, bytea) RETURNS bool LANGUAGE plpgsql AS $f$
           BEGIN INSERT INTO public.shadow_calls VALUES (current_user, 'bytea'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
         CREATE FUNCTION shadow.eqt(text, text) RETURNS bool LANGUAGE plpgsql AS $f$
           BEGIN INSERT INTO public.shadow_calls VALUES (current_user, 'text'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
         CREATE OPERATOR shadow.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = shadow.eq4);
         CREATE OPERATOR shadow.= (LEFTARG = int8, RIGHTARG = int8, FUNCTION = shadow.eq8);
         CREATE OPERATOR shadow.= (LEFTARG = bytea, RIGHTARG = bytea, FUNCTION = shadow.eqb);
         CREATE OPERATOR shadow.= (LEFTARG = text, RIGHTARG = text, FUNCTION = shadow.eqt);
         -- the operators work where the role's own SQL uses them
         SET search_path = shadow, pg_catalog;
         SELECT 1 = 1;",
    )
    .unwrap();
    let own: i64 = admin.query_one("SELECT count(*) FROM shadow_calls", &[]).unwrap().get(0);
    assert_eq!(own, 1, "the shadowing operator is in force for the role's own statements");
    admin.batch_execute("TRUNCATE shadow_calls").unwrap();
    c.batch_execute(
        "SELECT shred.seal('sp:1', 'x');
         SELECT shred.seal('sp:1', 'x', '', 'analytics');
         SELECT shred.create_keys(ARRAY['sp:2', 'sp:3']);
         SELECT shred.blind_token('sp:1', 'v', 'sp.ctx');
         SELECT shred.confirm_consent(shred.request_consent('sp:1', 'marketing', '{}'));
         SELECT shred.has_consent('sp:1', 'marketing');
         SELECT shred.seal('sp:1', 'x', '', 'marketing');
         SELECT shred.withdraw_consent('sp:1', 'marketing');
         SELECT shred.erase('sp:1', 'analytics');
         SELECT shred.erase('sp:2');
         SELECT shred.erase(ARRAY['sp:3']);
         SELECT shred.pseudonym('sp:1', 'd');
         SELECT count(*) FROM shred.consent_history('sp:1');",
    )
    .unwrap();
    let calls: Vec<(String, String)> = admin
        .query("SELECT who, what FROM shadow_calls", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(calls.is_empty(), "pg_shred ran a caller's operator: {calls:?}");
    let superuser: bool = admin.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'pu_shadow'", &[]).unwrap().get(0);
    assert!(!superuser);
    drop(c);
    admin.batch_execute("DROP SCHEMA shadow CASCADE; DROP OWNED BY pu_shadow").unwrap();
}

/// Withdrawing consent for a purpose that does not require it records the withdrawal and keeps
/// the data (kept on another ground: only an eraser erases it). A restored older backup gets a
/// withdrawal back with `shred.replay_erasures`: the replayed purpose erasure withdraws the
/// consent the backup still holds, so the unsubscribe does not come undone. An undefined
/// purpose is echoed only when it is a purpose name.
#[test]
fn withdrawals_keep_other_grounds_and_survive_a_restore() {
    let mut c = purposes_db("pu_withdraw_rules");
    let t = request(&mut c, "w:1", "analytics");
    assert!(confirm(&mut c, &t));
    let clicks = seal_for(&mut c, "w:1", "clicks", Some("analytics"));
    let withdrawn: bool = c.query_one("SELECT shred.withdraw_consent('w:1', 'analytics')", &[]).unwrap().get(0);
    assert!(withdrawn);
    assert_eq!(open(&mut c, &clicks).as_deref(), Some("clicks"));
    assert!(!has_consent(&mut c, "w:1", "analytics"));

    let t = request(&mut c, "w:2", "marketing");
    assert!(confirm(&mut c, &t));
    let mail = seal_for(&mut c, "w:2", "mail", Some("marketing"));
    let path = dir().join("purposes_withdraw.dump");
    run(pg_tool("pg_dump").args(["-Fc", "-f", path.to_str().unwrap(), "pu_withdraw_rules"]));
    c.query_one("SELECT shred.withdraw_consent('w:2', 'marketing')", &[]).unwrap();
    let ids: Vec<i64> = c.query("SELECT key_id FROM shred.erasure_log", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    drop(empty_db("pu_withdraw_old"));
    run(pg_tool("pg_restore").args(["--exit-on-error", "-d", "pu_withdraw_old", path.to_str().unwrap()]));
    let mut old = connect("pu_withdraw_old");
    assert!(has_consent(&mut old, "w:2", "marketing"), "the backup predates the withdrawal");
    let n: i64 = old.query_one("SELECT shred.replay_erasures($1)", &[&ids]).unwrap().get(0);
    assert_eq!(n, 1);
    assert_eq!(open(&mut old, &mail), None);
    assert!(!has_consent(&mut old, "w:2", "marketing"));
    assert_eq!(history(&mut old, "w:2")[0].1, "withdrawn");
    assert_eq!(sqlstate(old.query_one("SELECT shred.seal('w:2', 'x'::text, '', 'marketing')", &[])), "55000");

    let m = message(c.query_one("SELECT shred.seal('w:1', 'x'::text, '', $1)", &[&"ada@example.org"]));
    assert!(!m.contains("ada"), "{m}");
    assert_eq!(m, "pg_shred: the purpose given is not a purpose name (1 to 63 lower-case letters, digits and underscores, starting with a letter)");
    let long = "a".repeat(64);
    let m = message(c.query_one("SELECT shred.has_consent('w:1', $1)", &[&long]));
    assert!(!m.contains(&long), "{m}");
}

/// Two transactions defining the same new purpose, the second under REPEATABLE READ from
/// before the first committed: 40001 (retry), not a unique violation; ids are never reused.
#[test]
fn concurrent_definitions_serialize() {
    let mut a = purposes_db("pu_define_race");
    let mut b = connect("pu_define_race");
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").unwrap();
    a.query_one("SELECT shred.define_purpose('billing', 'Invoices')", &[]).unwrap();
    assert_eq!(sqlstate(b.query_one("SELECT shred.define_purpose('billing', 'Invoices')", &[])), "40001");
    b.batch_execute("ROLLBACK").unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").unwrap();
    a.query_one("SELECT shred.define_purpose('support', 'Support tickets')", &[]).unwrap();
    let created: bool = b.query_one("SELECT shred.define_purpose('newsletter', 'News')", &[]).unwrap().get(0);
    assert!(created, "another name defines fine");
    b.batch_execute("COMMIT").unwrap();
    let ids: Vec<i32> = a.query("SELECT purpose_id FROM shred.purpose ORDER BY name", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let distinct: std::collections::HashSet<i32> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 5, "{ids:?}");
}

/// In a read-only transaction (and so on a hot standby), what would create a DEK or write the
/// consent ledger fails with 25006 and leaves nothing behind: a first seal for a purpose (also
/// for a subject without a default DEK), a consent request or confirmation; sealing under an
/// existing purpose DEK, opening, pseudonyms and `has_consent` work.
#[test]
fn read_only_transactions_and_purposes() {
    let mut c = purposes_db("pu_read_only");
    let t = request(&mut c, "ro:1", "marketing");
    assert!(confirm(&mut c, &t));
    let mail = seal_for(&mut c, "ro:1", "a@example.org", Some("marketing"));
    let t2 = request(&mut c, "ro:2", "marketing");
    let keys = |c: &mut Client| -> i64 { c.query_one("SELECT count(*) FROM shred.subject_key", &[]).unwrap().get(0) };
    let rows = |c: &mut Client| -> i64 { c.query_one("SELECT count(*) FROM shred.consent", &[]).unwrap().get(0) };
    let (k0, r0) = (keys(&mut c), rows(&mut c));
    for sql in [
        "SELECT shred.seal('ro:new', 'x'::text, '', 'analytics')",
        "SELECT shred.seal('ro:1', 'x'::text, '', 'analytics')",
        "SELECT shred.request_consent('ro:3', 'marketing')",
    ] {
        c.batch_execute("BEGIN READ ONLY").unwrap();
        assert_eq!(sqlstate(c.query_one(sql, &[])), "25006", "{sql}");
        c.batch_execute("ROLLBACK").unwrap();
    }
    c.batch_execute("BEGIN READ ONLY").unwrap();
    assert_eq!(sqlstate(c.query_one("SELECT shred.confirm_consent($1)", &[&t2])), "25006");
    c.batch_execute("ROLLBACK; BEGIN READ ONLY").unwrap();
    let again = seal_for(&mut c, "ro:1", "b@example.org", Some("marketing"));
    assert_eq!(key_id(&mut c, &again), key_id(&mut c, &mail));
    assert_eq!(open(&mut c, &mail).as_deref(), Some("a@example.org"));
    assert!(has_consent(&mut c, "ro:1", "marketing"));
    assert!(!has_consent(&mut c, "ro:2", "marketing"));
    let p: Option<String> = c.query_one("SELECT shred.pseudonym('ro:1', 'd', 'marketing')", &[]).unwrap().get(0);
    assert!(p.is_some());
    c.batch_execute("COMMIT").unwrap();
    assert_eq!((keys(&mut c), rows(&mut c)), (k0, r0), "nothing written");
    assert!(!has_consent(&mut c, "ro:2", "marketing"), "the read-only confirmation confirmed nothing");
}
