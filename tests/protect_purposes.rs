//! Protected tables whose columns are kept for a purpose, against a real server (started by
//! `scripts/test`): shred.protect(..., purposes) and shred.set_purpose seal a column under each
//! data subject's DEK of its purpose, writes through the view and shred.blind_token follow it
//! (consent included), erasing the purpose (or withdrawing the consent) erases that column
//! alone, in every session, and the footprint and export say which column is kept for which
//! purpose; set_purpose is the table owner's, and runs the owner's code as the owner.

mod common;

use common::*;

/// Purposes `billing` (id 1) and `marketing` (id 2, requires consent), and a table customer
/// (subject 'customer:<id>') with Ada (1), Bob (2) and Cy (3, no phone), not protected yet.
fn customers(c: &mut postgres::Client) {
    c.batch_execute(
        "SELECT shred.define_purpose('billing', 'Invoices and payment reminders');
         SELECT shred.define_purpose('marketing', 'Newsletters', requires_consent => true);
         CREATE TABLE customer (id int PRIMARY KEY, name text, email text, phone text, country text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', '+44 1111', 'UK'),
                                     (2, 'Bob', 'bob@example.org', '+33 2222', 'FR'),
                                     (3, 'Cy', 'cy@example.org', NULL, 'DE');",
    )
    .unwrap();
}

/// A confirmed consent of `subject` for marketing, with `form` as its evidence.
fn consent(c: &mut postgres::Client, subject: &str, form: &str) {
    let token: String = c
        .query_one("SELECT shred.request_consent($1, 'marketing', jsonb_build_object('form', $2::text))", &[&subject, &form])
        .unwrap()
        .get(0);
    assert_eq!(one(c, &format!("SELECT shred.confirm_consent('{token}')")), "t");
}

/// Per row of customer (by id): whether `column`'s value is sealed under the row subject's DEK
/// of `purpose` (`None`: its default DEK), "t" or "f"; a NULL value as ∅.
fn sealed_for(c: &mut postgres::Client, column: &str, purpose: Option<&str>) -> Vec<String> {
    let purpose_id = purpose.map_or("0".to_string(), |p| format!("(SELECT p.purpose_id FROM shred.purpose p WHERE p.name = '{p}')"));
    rows(
        c,
        &format!(
            "SELECT id, CASE WHEN {column} IS NOT NULL THEN coalesce(shred.key_id({column}) = (
                        SELECT k.key_id FROM shred.subject_key k WHERE k.subject = 'customer:' || c.id AND k.purpose_id = {purpose_id}), false) END
               FROM customer c ORDER BY id"
        ),
    )
}

/// The ids of the customers whose `column` (searchable) holds `value`, by blind index.
fn lookup(c: &mut postgres::Client, column: &str, value: &str) -> Vec<String> {
    rows(c, &format!("SELECT id FROM customer WHERE {column}_bidx IN (SELECT shred.blind_match('{value}', 'customer.{column}')) ORDER BY id"))
}

/// The key id of the DEK of `subject` for purpose id `purpose` (0: its default DEK).
fn key_of(c: &mut postgres::Client, subject: &str, purpose: i32) -> String {
    one(c, &format!("SELECT key_id FROM shred.subject_key WHERE subject = '{subject}' AND purpose_id = {purpose}"))
}

/// How many blind-index terms are recorded with key id `key_id`.
fn terms_of(c: &mut postgres::Client, key_id: &str) -> String {
    one(c, &format!("SELECT count(*) FROM shred.blind_term WHERE key_id = {key_id}"))
}

/// `erase` (a statement returning true) run by `c` in a transaction: `other`, whose cache holds
/// the DEK once it has read `read` (one value: `before`), reads `before` until the commit and
/// `after` (the tombstone) once it is committed.
fn erased_at_commit(c: &mut postgres::Client, other: &mut postgres::Client, erase: &str, read: &str, before: &str, after: &str) {
    assert_eq!(one(other, read), before);
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(one(c, erase), "t");
    assert_eq!(one(other, read), before);
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(one(other, read), after);
}

const VIEW: &str = "SELECT id, name, email, phone, country FROM customer_plain ORDER BY id";

/// protect() with purposes seals each named column under its purpose's DEKs (the others under
/// the default DEK), keys its row tokens and terms by them, and erasing the purpose erases
/// those columns alone. Bad purposes are refused with their SQLSTATE before anything changes.
#[test]
fn protect_with_purposes_seals_each_column_under_its_purpose_dek() {
    let mut c = fresh_db("pp_protect");
    customers(&mut c);
    let before = rows(&mut c, "SELECT id, name, email, phone, country FROM customer ORDER BY id");

    // Refused, and nothing stored: no catalog row, no DEK, the column still text.
    c.batch_execute(
        "CREATE TABLE lead (id int PRIMARY KEY, email text, note text);
         INSERT INTO lead VALUES (1, 'lead@example.org', 'called');",
    )
    .unwrap();
    for (purposes, state) in [
        (r#"{"nope": "billing"}"#, "42703"),
        (r#"{"note": "billing"}"#, "22023"),
        (r#"{"email": 7}"#, "22023"),
        (r#"{"email": null}"#, "22023"),
        (r#"["email"]"#, "22023"),
        (r#"{"email": "nope"}"#, "42704"),
        (r#"{"email": "marketing"}"#, "55000"),
    ] {
        let r = c.batch_execute(&format!(
            "SELECT shred.protect('lead', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'lead:', purposes => '{purposes}')"
        ));
        assert_eq!(sqlstate(r), state, "{purposes}");
    }
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.protected_column WHERE relation = 'lead'::regclass"), "0");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject LIKE 'lead:%'"), "0");
    assert_eq!(one(&mut c, "SELECT email || ' ' || pg_typeof(email) FROM lead"), "lead@example.org text");

    assert_eq!(
        one(
            &mut c,
            r#"SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'phone'], searchable => ARRAY['email'],
                                    subject_prefix => 'customer:', purposes => '{"email": "billing", "phone": "billing"}')"#
        ),
        "customer_plain"
    );
    assert_eq!(
        rows(&mut c, "SELECT pc.column_name, p.name FROM shred.protected_column pc LEFT JOIN shred.purpose p USING (purpose_id) ORDER BY 1"),
        vec!["email | billing", "name | ∅", "phone | billing"]
    );
    assert_eq!(sealed_for(&mut c, "email", Some("billing")), vec!["1 | t", "2 | t", "3 | t"]);
    assert_eq!(sealed_for(&mut c, "phone", Some("billing")), vec!["1 | t", "2 | t", "3 | ∅"]);
    assert_eq!(sealed_for(&mut c, "name", None), vec!["1 | t", "2 | t", "3 | t"]);
    assert_eq!(sealed_for(&mut c, "name", Some("billing")), vec!["1 | f", "2 | f", "3 | f"]);
    assert_eq!(rows(&mut c, VIEW), before);
    // row tokens and terms under the billing DEK
    assert_eq!(lookup(&mut c, "email", "bob@example.org"), vec!["2"]);
    let (bob_billing, bob_default) = (key_of(&mut c, "customer:2", 1), key_of(&mut c, "customer:2", 0));
    assert_eq!((terms_of(&mut c, &bob_billing), terms_of(&mut c, &bob_default)), ("1".into(), "0".into()));

    // Written through the view: the same DEKs.
    c.batch_execute("INSERT INTO customer_plain VALUES (4, 'Di', 'di@example.org', '+49 4444', 'IT')").unwrap();
    assert_eq!(sealed_for(&mut c, "phone", Some("billing"))[3], "4 | t");
    assert_eq!(sealed_for(&mut c, "email", Some("billing"))[3], "4 | t");
    assert_eq!(sealed_for(&mut c, "name", None)[3], "4 | t");
    assert_eq!(lookup(&mut c, "email", "di@example.org"), vec!["4"]);

    // Erasing billing for Bob erases his e-mail and phone; his name stays readable.
    c.batch_execute("SELECT shred.set_tombstone('customer', 'phone', '[erased]')").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.erase('customer:2', 'billing')"), "t");
    assert_eq!(
        rows(&mut c, VIEW),
        vec![
            "1 | Ada | ada@example.org | +44 1111 | UK",
            "2 | Bob | ∅ | [erased] | FR",
            "3 | Cy | cy@example.org | ∅ | DE",
            "4 | Di | di@example.org | +49 4444 | IT",
        ]
    );
    assert_eq!(lookup(&mut c, "email", "bob@example.org"), Vec::<String>::new());
    assert_eq!(terms_of(&mut c, &bob_billing), "0");
    assert_eq!(lookup(&mut c, "email", "ada@example.org"), vec!["1"]);
    assert_eq!(
        rows(&mut c, "SELECT * FROM shred.check()"),
        vec!["customer | email | erased | 1", "customer | phone | erased | 1"]
    );
}

/// set_purpose seals the column's existing values again under the purpose's DEKs (row tokens
/// and terms too): before, the default DEK; after, the purpose's; the values still open.
/// Erasing the purpose then shows the column's tombstone while the subject's other columns
/// open; a rolled-back erasure changes nothing; back to the default DEK keeps erased values
/// erased; unprotect opens values whatever DEK sealed them.
#[test]
fn set_purpose_seals_the_values_again_and_erasing_the_purpose_erases_the_column() {
    let mut c = fresh_db("pp_set_purpose");
    customers(&mut c);
    c.batch_execute(
        "SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'phone'], searchable => ARRAY['email'], subject_prefix => 'customer:');
         SELECT shred.set_tombstone('customer', 'email', '[withdrawn]');",
    )
    .unwrap();
    let before = rows(&mut c, VIEW);
    assert_eq!(sealed_for(&mut c, "email", None), vec!["1 | t", "2 | t", "3 | t"]);
    assert_eq!(sealed_for(&mut c, "email", Some("billing")), vec!["1 | f", "2 | f", "3 | f"]);
    let ada_default = key_of(&mut c, "customer:1", 0);
    assert_eq!(terms_of(&mut c, &ada_default), "1");

    assert_eq!(one(&mut c, "SELECT shred.set_purpose('customer', 'email', 'billing')"), "3");
    assert_eq!(sealed_for(&mut c, "email", Some("billing")), vec!["1 | t", "2 | t", "3 | t"]);
    assert_eq!(sealed_for(&mut c, "name", None), vec!["1 | t", "2 | t", "3 | t"]);
    assert_eq!(sealed_for(&mut c, "phone", None), vec!["1 | t", "2 | t", "3 | ∅"]);
    assert_eq!(rows(&mut c, VIEW), before);
    // the term moved from the default DEK to the billing DEK; lookups still find the row
    let ada_billing = key_of(&mut c, "customer:1", 1);
    assert_eq!((terms_of(&mut c, &ada_default), terms_of(&mut c, &ada_billing)), ("0".into(), "1".into()));
    assert_eq!(lookup(&mut c, "email", "ada@example.org"), vec!["1"]);
    // kept for billing already: nothing to do
    assert_eq!(one(&mut c, "SELECT shred.set_purpose('customer', 'email', 'billing')"), "0");
    // refusals
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.set_purpose('customer', 'country', 'billing')")), "42703");
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.set_purpose('customer', 'email', 'nope')")), "42704");
    assert_eq!(sqlstate(c.batch_execute("CREATE TABLE plain (id int PRIMARY KEY, v text); SELECT shred.set_purpose('plain', 'v', 'billing')")), "42704");

    // A second session, its cache warm, sees the erasure once it commits.
    let mut other = connect("pp_set_purpose");
    let read = "SELECT email FROM customer_plain WHERE id = 1";
    erased_at_commit(&mut c, &mut other, "SELECT shred.erase('customer:1', 'billing')", read, "ada@example.org", "[withdrawn]");
    assert_eq!(rows(&mut other, VIEW)[0], "1 | Ada | [withdrawn] | +44 1111 | UK");
    assert_eq!(lookup(&mut other, "email", "ada@example.org"), Vec::<String>::new());
    assert_eq!(terms_of(&mut other, &ada_billing), "0");

    // A rolled-back erasure of the purpose changes nothing.
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.erase('customer:2', 'billing')"), "t");
    assert_eq!(rows(&mut c, "SELECT email FROM customer_plain WHERE id = 2"), vec!["[withdrawn]"]);
    assert_eq!(lookup(&mut c, "email", "bob@example.org"), Vec::<String>::new());
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(rows(&mut c, "SELECT email FROM customer_plain WHERE id = 2"), vec!["bob@example.org"]);
    assert_eq!(lookup(&mut c, "email", "bob@example.org"), vec!["2"]);
    assert_eq!(rows(&mut other, "SELECT email FROM customer_plain WHERE id = 2"), vec!["bob@example.org"]);

    // Back to the default DEK: Bob's and Cy's values move, Ada's erased one stays erased.
    assert_eq!(one(&mut c, "SELECT shred.set_purpose('customer', 'email', NULL)"), "2");
    assert_eq!(sealed_for(&mut c, "email", None), vec!["1 | f", "2 | t", "3 | t"]);
    assert_eq!(rows(&mut c, VIEW)[0], "1 | Ada | [withdrawn] | +44 1111 | UK");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE subject = 'customer:1' AND purpose_id = 1"), "0");
    assert_eq!(lookup(&mut c, "email", "cy@example.org"), vec!["3"]);
    assert_eq!(rows(&mut c, "SELECT * FROM shred.check()"), vec!["customer | email | erased | 1"]);

    // unprotect opens the values whatever DEK sealed them (phone under billing now) and
    // forgets the purposes with the rest of the protection.
    assert_eq!(one(&mut c, "SELECT shred.set_purpose('customer', 'phone', 'billing')"), "2");
    c.batch_execute("SELECT shred.unprotect('customer')").unwrap();
    assert_eq!(
        rows(&mut c, "SELECT id, name, email, phone, country FROM customer ORDER BY id"),
        vec!["1 | Ada | [withdrawn] | +44 1111 | UK", "2 | Bob | bob@example.org | +33 2222 | FR", "3 | Cy | cy@example.org | ∅ | DE"]
    );
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.protected_column"), "0");
}

/// A column kept for a purpose that requires consent, written through the view: a value for a
/// subject without a confirmed consent is refused (55000) and nothing is written (NULL is
/// fine); after request and confirmation it is accepted. The withdrawal erases the column for
/// the subject: lookups find nothing, and a second session with a warm cache shows the
/// tombstone after the commit, while the subject's other columns open.
#[test]
fn writes_through_the_view_need_consent_and_a_withdrawal_erases_the_column() {
    let mut c = fresh_db("pp_consent_view");
    customers(&mut c);
    consent(&mut c, "customer:1", "signup-v1");
    consent(&mut c, "customer:2", "signup-v1");
    c.batch_execute(
        r#"SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'phone'], searchable => ARRAY['email', 'phone'],
                                subject_prefix => 'customer:', purposes => '{"phone": "marketing"}');
           SELECT shred.set_tombstone('customer', 'phone', '[no consent]');"#,
    )
    .unwrap();
    assert_eq!(sealed_for(&mut c, "phone", Some("marketing")), vec!["1 | t", "2 | t", "3 | ∅"]);
    let marketing_keys = "SELECT count(*) FROM shred.subject_key WHERE purpose_id = 2";
    assert_eq!(one(&mut c, marketing_keys), "2");

    // No consent: refused, nothing written, no DEK created.
    let r = c.batch_execute("INSERT INTO customer_plain VALUES (4, 'Di', 'di@example.org', '+49 4444', 'IT')");
    assert_eq!(sqlstate(r), "55000");
    assert_eq!(one(&mut c, "SELECT count(*) FROM customer WHERE id = 4"), "0");
    assert_eq!(one(&mut c, marketing_keys), "2");
    // NULL needs no consent
    c.batch_execute("INSERT INTO customer_plain VALUES (4, 'Di', 'di@example.org', NULL, 'IT')").unwrap();
    assert_eq!(sqlstate(c.batch_execute("UPDATE customer_plain SET phone = '+49 4444' WHERE id = 4")), "55000");
    assert_eq!(rows(&mut c, "SELECT phone FROM customer_plain WHERE id = 4"), vec!["∅"]);
    // A pending consent is not enough; a confirmed one is.
    let token: String = c.query_one("SELECT shred.request_consent('customer:4', 'marketing')", &[]).unwrap().get(0);
    assert_eq!(sqlstate(c.batch_execute("UPDATE customer_plain SET phone = '+49 4444' WHERE id = 4")), "55000");
    assert_eq!(one(&mut c, &format!("SELECT shred.confirm_consent('{token}')")), "t");
    c.batch_execute("UPDATE customer_plain SET phone = '+49 4444' WHERE id = 4").unwrap();
    assert_eq!(rows(&mut c, VIEW)[3], "4 | Di | di@example.org | +49 4444 | IT");
    assert_eq!(sealed_for(&mut c, "phone", Some("marketing"))[3], "4 | t");
    assert_eq!(sealed_for(&mut c, "email", None)[3], "4 | t");
    assert_eq!(lookup(&mut c, "phone", "+49 4444"), vec!["4"]);
    let di_marketing = key_of(&mut c, "customer:4", 2);
    assert_eq!(terms_of(&mut c, &di_marketing), "1");

    // The withdrawal, seen by a second session whose cache holds the DEK.
    let mut other = connect("pp_consent_view");
    assert_eq!(lookup(&mut other, "phone", "+49 4444"), vec!["4"]);
    let read = "SELECT phone FROM customer_plain WHERE id = 4";
    erased_at_commit(&mut c, &mut other, "SELECT shred.withdraw_consent('customer:4', 'marketing')", read, "+49 4444", "[no consent]");
    assert_eq!(rows(&mut other, VIEW)[3], "4 | Di | di@example.org | [no consent] | IT");
    assert_eq!(lookup(&mut other, "phone", "+49 4444"), Vec::<String>::new());
    assert_eq!(terms_of(&mut other, &di_marketing), "0");
    assert_eq!(lookup(&mut other, "email", "di@example.org"), vec!["4"]);
    assert_eq!(one(&mut other, "SELECT shred.has_consent('customer:4', 'marketing')"), "f");
    // the others keep theirs
    assert_eq!(lookup(&mut other, "phone", "+33 2222"), vec!["2"]);
    // A new value after the withdrawal is refused; other columns of the row can change, and
    // the erased value is kept (not sealed again).
    assert_eq!(sqlstate(other.batch_execute("UPDATE customer_plain SET phone = '+49 5555' WHERE id = 4")), "55000");
    other.batch_execute("UPDATE customer_plain SET country = 'AT' WHERE id = 4").unwrap();
    assert_eq!(rows(&mut other, VIEW)[3], "4 | Di | di@example.org | [no consent] | AT");
    assert_eq!(one(&mut other, "SELECT count(*) FROM shred.subject_key WHERE subject = 'customer:4' AND purpose_id = 2"), "0");
}

/// set_purpose for a purpose that requires consent fails cleanly (55000) when a subject with a
/// value has no confirmed consent: the catalog, the values and the consent records are as
/// before, no DEK of the purpose exists, and the view still works. With every consent, it
/// succeeds.
#[test]
fn set_purpose_without_every_consent_changes_nothing() {
    let mut c = fresh_db("pp_set_consent");
    customers(&mut c);
    c.batch_execute("SELECT shred.protect('customer', 'id', ARRAY['name', 'phone'], subject_prefix => 'customer:')").unwrap();
    consent(&mut c, "customer:1", "signup-v1");
    let stored = "SELECT id, phone::text FROM customer ORDER BY id";
    let envelopes = rows(&mut c, stored);
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.set_purpose('customer', 'phone', 'marketing')")), "55000");
    assert_eq!(rows(&mut c, stored), envelopes);
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.protected_column WHERE purpose_id IS NOT NULL"), "0");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.subject_key WHERE purpose_id = 2"), "0");
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.consent WHERE used_at IS NOT NULL"), "0");
    c.batch_execute("INSERT INTO customer_plain (id, name, phone, country) VALUES (4, 'Di', '+49 4444', 'IT')").unwrap();
    assert_eq!(sealed_for(&mut c, "phone", None), vec!["1 | t", "2 | t", "3 | ∅", "4 | t"]);

    consent(&mut c, "customer:2", "signup-v1");
    consent(&mut c, "customer:4", "signup-v1");
    assert_eq!(one(&mut c, "SELECT shred.set_purpose('customer', 'phone', 'marketing')"), "3");
    assert_eq!(sealed_for(&mut c, "phone", Some("marketing")), vec!["1 | t", "2 | t", "3 | ∅", "4 | t"]);
    assert_eq!(one(&mut c, "SELECT count(*) FROM shred.consent WHERE used_at IS NOT NULL"), "3");
    assert_eq!(rows(&mut c, "SELECT id, phone FROM customer_plain ORDER BY id"), vec!["1 | +44 1111", "2 | +33 2222", "3 | ∅", "4 | +49 4444"]);
}

/// Writes that bypass the view seal with shred.seal(..., purpose) and compute row tokens with
/// shred.blind_token(..., purpose): lookups find them until the purpose is erased. A token for
/// a purpose that requires consent needs it, as sealing does.
#[test]
fn direct_writers_use_blind_token_with_the_purpose() {
    let mut c = fresh_db("pp_direct");
    customers(&mut c);
    c.batch_execute(
        r#"SELECT shred.protect('customer', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'customer:',
                                purposes => '{"email": "billing"}');
           INSERT INTO customer (id, name, email, email_bidx)
           VALUES (5, 'Eve', shred.seal('customer:5', 'eve@example.org'::text, '10:customer:5:customer.email', 'billing'),
                   shred.blind_token('customer:5', 'eve@example.org', 'customer.email', 'exact', 'billing'));"#,
    )
    .unwrap();
    assert_eq!(rows(&mut c, "SELECT email FROM customer_plain WHERE id = 5"), vec!["eve@example.org"]);
    assert_eq!(sealed_for(&mut c, "email", Some("billing"))[3], "5 | t");
    assert_eq!(lookup(&mut c, "email", "eve@example.org"), vec!["5"]);
    // the token of the default DEK is another one
    assert_eq!(
        one(&mut c, "SELECT shred.blind_token('customer:5', 'eve@example.org', 'customer.email') = email_bidx FROM customer WHERE id = 5"),
        "f"
    );
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.blind_token('customer:6', 'x', 'customer.email', 'exact', 'marketing')")), "55000");
    assert_eq!(sqlstate(c.batch_execute("SELECT shred.blind_token('customer:6', 'x', 'customer.email', 'exact', 'nope')")), "42704");
    assert_eq!(one(&mut c, "SELECT shred.blind_token('customer:6', NULL, 'customer.email', 'exact', 'billing') IS NULL"), "t");
    c.batch_execute("SELECT shred.erase('customer:5', 'billing')").unwrap();
    assert_eq!(lookup(&mut c, "email", "eve@example.org"), Vec::<String>::new());
    assert_eq!(rows(&mut c, "SELECT name, email FROM customer_plain WHERE id = 5"), vec!["Eve | ∅"]);
}

/// The footprint says which purpose each column is kept for and whether it is erased; the
/// export says it per table, with the subject's consent history; a DPO with shred_reader
/// reads both. A subject with a consent and no row is exported; one with neither is not.
#[test]
fn footprint_and_export_show_purposes_and_consent() {
    let mut c = fresh_db("pp_rights");
    customers(&mut c);
    consent(&mut c, "customer:1", "signup-v2");
    c.batch_execute(
        r#"UPDATE customer SET phone = NULL WHERE id <> 1;
           SELECT shred.protect('customer', 'id', ARRAY['name', 'email', 'phone'], subject_prefix => 'customer:',
                                purposes => '{"email": "billing", "phone": "marketing"}');"#,
    )
    .unwrap();
    let footprint = "SELECT * FROM shred.subject_footprint('customer:1')";
    assert_eq!(
        rows(&mut c, footprint),
        vec!["customer | email | billing | 1 | 1 | f", "customer | name | ∅ | 1 | 1 | f", "customer | phone | marketing | 1 | 1 | f"]
    );
    let export = "SELECT e -> 'tables' -> 'public.customer' -> 0 ->> 'phone', e -> 'purposes',
                         jsonb_array_length(e -> 'consent'), e -> 'consent' -> 0 ->> 'purpose', e -> 'consent' -> 0 ->> 'status',
                         e -> 'consent' -> 0 -> 'evidence' ->> 'form'
                    FROM shred.export_subject('customer:1') e";
    assert_eq!(
        rows(&mut c, export),
        vec![r#"+44 1111 | {"public.customer": {"email": "billing", "phone": "marketing"}} | 1 | marketing | confirmed | signup-v2"#]
    );

    c.batch_execute("SELECT shred.withdraw_consent('customer:1', 'marketing')").unwrap();
    assert_eq!(rows(&mut c, footprint)[2], "customer | phone | marketing | 1 | 1 | t");
    assert_eq!(
        rows(&mut c, export),
        vec![r#"∅ | {"public.customer": {"email": "billing", "phone": "marketing"}} | 1 | marketing | withdrawn | signup-v2"#]
    );

    // A DPO: shred_reader, and SELECT on the table.
    let dpo_name = "pp_rights_dpo";
    role(&mut c, dpo_name, "shred_reader");
    c.batch_execute(&format!("GRANT SELECT ON customer TO {dpo_name}")).unwrap();
    let mut dpo = connect_as("pp_rights", dpo_name);
    assert_eq!(rows(&mut dpo, export), rows(&mut c, export));
    assert_eq!(rows(&mut dpo, footprint), rows(&mut c, footprint));
    // Consent without a row; nothing at all.
    c.batch_execute("SELECT shred.request_consent('customer:9', 'marketing')").unwrap();
    assert_eq!(
        rows(
            &mut dpo,
            "SELECT e -> 'tables', e -> 'purposes', e -> 'consent' -> 0 ->> 'status' FROM shred.export_subject('customer:9') e"
        ),
        vec!["{} | {} | pending"]
    );
    assert_eq!(rows(&mut dpo, "SELECT shred.export_subject('customer:404')"), vec!["∅"]);
    // Bob: his rows, the purposes of their columns, no consent
    assert_eq!(
        rows(&mut dpo, "SELECT e -> 'purposes' ? 'public.customer', e -> 'consent' FROM shred.export_subject('customer:2') e"),
        vec!["t | []"]
    );
    drop(dpo);
    drop_roles(&mut c, &[dpo_name]);
}

/// Hostile roles: set_purpose is refused (42501) to a role without the table owner's
/// privileges, whether it calls set_purpose, its implementation or the resealing function
/// (never granted); and a superuser's set_purpose on another role's table runs the owner's
/// code (its triggers fire as the values are sealed again) as the owner, never as the
/// superuser.
#[test]
fn set_purpose_is_the_owners_and_runs_the_owners_code_as_the_owner() {
    let (owner_name, att_name, plain_name) = ("pp_own_owner", "pp_own_att", "pp_own_plain");
    let db = "pp_owner";
    let mut admin = fresh_db(db);
    canary(&mut admin);
    role(&mut admin, owner_name, "shred_admin, shred_writer, shred_reader");
    role(&mut admin, att_name, "shred_admin, shred_writer, shred_reader");
    role(&mut admin, plain_name, "");
    admin
        .batch_execute(&format!(
            "SELECT shred.define_purpose('billing', 'Invoices');
             GRANT CREATE ON SCHEMA public TO {owner_name}, {att_name}"
        ))
        .unwrap();
    let mut owner = connect_as(db, owner_name);
    owner
        .batch_execute(&format!(
            "CREATE TABLE public.seen (who name, su bool, what text);
             GRANT INSERT ON public.seen TO PUBLIC;
             CREATE FUNCTION public.record_row() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN
               INSERT INTO public.seen VALUES (current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), TG_NAME);
               IF current_user <> '{owner_name}' THEN
                 BEGIN INSERT INTO public.canary VALUES ('as ' || current_user); EXCEPTION WHEN OTHERS THEN NULL; END;
                 BEGIN EXECUTE 'ALTER ROLE {owner_name} SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
               END IF;
               RETURN NEW;
             END $f$;
             CREATE TABLE public.customer (id int PRIMARY KEY, email text);
             INSERT INTO public.customer VALUES (1, 'ada@example.org'), (2, 'bob@example.org'), (3, NULL);
             SELECT shred.protect('public.customer', 'id', ARRAY['email'], searchable => ARRAY['email'], subject_prefix => 'customer:');
             CREATE TRIGGER before_row BEFORE UPDATE ON public.customer FOR EACH ROW EXECUTE FUNCTION public.record_row();
             CREATE TRIGGER after_stmt AFTER UPDATE ON public.customer FOR EACH STATEMENT EXECUTE FUNCTION public.record_row();
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.customer, public.customer_plain TO {att_name}, {plain_name};"
        ))
        .unwrap();
    let stored = "SELECT id, email::text, encode(email_bidx, 'hex') FROM public.customer ORDER BY id";
    let before = rows(&mut admin, stored);

    let mut att = connect_as(db, att_name);
    att.batch_execute("CREATE TABLE public.mine (id int PRIMARY KEY, v text); SELECT shred.protect('public.mine', 'id', ARRAY['v'])").unwrap();
    for sql in [
        "SELECT shred.set_purpose('public.customer', 'email', 'billing')",
        "SELECT shred._set_purpose('public.customer', 'email', 'billing')",
        "SELECT shred._reseal_column('public.customer', 'email')",
        // an authorisation for its own table does not reach another one
        "SELECT shred._set_purpose(shred._authorize('public.mine'), 'v', NULL), shred._set_purpose('public.customer', 'email', 'billing')",
    ] {
        assert_eq!(sqlstate(att.batch_execute(sql)), "42501", "{sql}");
    }
    // its own table: allowed
    assert_eq!(one(&mut att, "SELECT shred.set_purpose('public.mine', 'v', 'billing')"), "0");
    let mut plain = connect_as(db, plain_name);
    for sql in [
        "SELECT shred.set_purpose('public.customer', 'email', 'billing')",
        "SELECT shred._set_purpose('public.customer', 'email', 'billing')",
        "SELECT shred.blind_token('customer:1', 'x', 'customer.email', 'exact', 'billing')",
    ] {
        assert_eq!(sqlstate(plain.batch_execute(sql)), "42501", "{sql}");
    }
    drop((att, plain));
    assert_eq!(rows(&mut admin, stored), before);
    assert_eq!(one(&mut admin, "SELECT count(*) FROM shred.protected_column WHERE relation = 'public.customer'::regclass AND purpose_id IS NOT NULL"), "0");
    assert_eq!(rows(&mut admin, "SELECT who FROM public.seen"), Vec::<String>::new());

    // The superuser on the owner's table: the owner's triggers run, as the owner.
    assert_eq!(one(&mut admin, "SELECT shred.set_purpose('public.customer', 'email', 'billing')"), "2");
    assert_eq!(
        rows(&mut admin, "SELECT who, su, what, count(*) FROM public.seen GROUP BY 1, 2, 3 ORDER BY 3"),
        vec![format!("{owner_name} | f | after_stmt | 2"), format!("{owner_name} | f | before_row | 2")]
    );
    assert_eq!(
        rows(&mut admin, "SELECT c.relname, c.relowner::regrole::text FROM pg_class c WHERE c.oid IN ('public.customer'::regclass, 'public.customer_plain'::regclass) ORDER BY 1"),
        vec![format!("customer | {owner_name}"), format!("customer_plain | {owner_name}")]
    );
    assert_eq!(rows(&mut owner, "SELECT id, email FROM public.customer_plain ORDER BY id"), vec!["1 | ada@example.org", "2 | bob@example.org", "3 | ∅"]);
    assert_eq!(
        rows(&mut owner, "SELECT id FROM public.customer WHERE email_bidx IN (SELECT shred.blind_match('bob@example.org', 'customer.email'))"),
        vec!["2"]
    );
    // and the owner may change it back itself
    assert_eq!(one(&mut owner, "SELECT shred.set_purpose('public.customer', 'email', NULL)"), "2");
    drop(owner);
    assert_no_escalation(&mut admin, owner_name);
    drop_roles(&mut admin, &[owner_name, att_name, plain_name]);
}

/// A database at 0.5.0 with a protected table, updated: the catalogue of a fresh install, the
/// table keeps working through its view, and its columns can then be kept for a purpose.
#[test]
fn update_from_0_5_0_equals_fresh_install_and_keeps_protected_tables() {
    let mut c = empty_db("pp_from_050");
    c.batch_execute(
        "CREATE EXTENSION pg_shred VERSION '0.5.0';
         CREATE TABLE customer (id int PRIMARY KEY, name text, email text, phone text, country text);
         INSERT INTO customer VALUES (1, 'Ada', 'ada@example.org', '+44 1111', 'UK');
         SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'], subject_prefix => 'customer:');
         INSERT INTO customer_plain VALUES (2, 'Bob', 'bob@example.org', NULL, 'FR');",
    )
    .unwrap();
    let old = catalogue(&mut c);
    c.batch_execute("ALTER EXTENSION pg_shred UPDATE").unwrap();
    let new = catalogue(&mut fresh_db("pp_from_050_fresh"));
    assert_eq!(catalogue(&mut c), new);
    assert_ne!(old, new);
    assert!(new.iter().any(|l| l.starts_with("shred.set_purpose(regclass,name,text) ")), "{new:#?}");
    assert!(!old.iter().any(|l| l.starts_with("shred.set_purpose(")));
    c.batch_execute("INSERT INTO customer_plain VALUES (3, 'Cy', 'cy@example.org', NULL, 'DE')").unwrap();
    c.batch_execute("SELECT shred.define_purpose('billing', 'Invoices')").unwrap();
    assert_eq!(one(&mut c, "SELECT shred.set_purpose('customer', 'email', 'billing')"), "3");
    assert_eq!(sealed_for(&mut c, "email", Some("billing")), vec!["1 | t", "2 | t", "3 | t"]);
    c.batch_execute("SELECT shred.erase('customer:2', 'billing')").unwrap();
    assert_eq!(
        rows(&mut c, VIEW),
        vec!["1 | Ada | ada@example.org | +44 1111 | UK", "2 | Bob | ∅ | ∅ | FR", "3 | Cy | cy@example.org | ∅ | DE"]
    );
    assert_eq!(lookup(&mut c, "email", "bob@example.org"), Vec::<String>::new());
    assert_eq!(lookup(&mut c, "email", "cy@example.org"), vec!["3"]);
}

/// pg_dump and pg_restore keep the purposes of protected columns: the restored view opens, and
/// erasing a purpose there erases its columns.
#[test]
fn dump_and_restore_keep_the_purposes_of_columns() {
    let mut c = fresh_db("pp_dump");
    customers(&mut c);
    c.batch_execute(
        r#"SELECT shred.protect('customer', 'id', ARRAY['name', 'email'], searchable => ARRAY['email'], subject_prefix => 'customer:',
                                purposes => '{"email": "billing"}');"#,
    )
    .unwrap();
    let dump = dir().join("pp_dump.dump");
    let dump = dump.to_str().unwrap();
    run(pg_tool("pg_dump").args(["-Fc", "-f", dump, "pp_dump"]));
    let mut r = empty_db("pp_restored");
    run(pg_tool("pg_restore").args(["-d", "pp_restored", dump]));
    assert_eq!(rows(&mut r, VIEW), rows(&mut c, VIEW));
    assert_eq!(
        rows(&mut r, "SELECT pc.column_name, p.name FROM shred.protected_column pc LEFT JOIN shred.purpose p USING (purpose_id) ORDER BY 1"),
        vec!["email | billing", "name | ∅"]
    );
    r.batch_execute("SELECT shred.erase('customer:1', 'billing')").unwrap();
    assert_eq!(rows(&mut r, "SELECT name, email FROM customer_plain WHERE id = 1"), vec!["Ada | ∅"]);
    assert_eq!(lookup(&mut r, "email", "ada@example.org"), Vec::<String>::new());
    r.batch_execute("INSERT INTO customer_plain VALUES (4, 'Di', 'di@example.org', NULL, 'IT')").unwrap();
    assert_eq!(sealed_for(&mut r, "email", Some("billing"))[3], "4 | t");
    // the source is untouched
    assert_eq!(lookup(&mut c, "email", "ada@example.org"), vec!["1"]);
}
