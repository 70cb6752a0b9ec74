-- pg_shred 0.2.0 -> 0.3.0, part 3 of 3: tables protected under 0.2.0 get the new view (values
-- opened bound to their row's subject), the INSERT-or-UPDATE trigger, an index on the subject
-- column, and row tokens instead of blind indexes in their searchable columns (recomputed from
-- the sealed values, as each table's owner). Then 0.2.0's helpers, which the old views used,
-- go. Nothing to do on a fresh install.
-- PostgreSQL lets an extension script replace only objects of the extension: each view is a
-- member of pg_shred just while it is replaced, so that pg_dump keeps dumping it.
DO $$
DECLARE
    t shred.protected_table;
BEGIN
    FOR t IN SELECT * FROM shred.protected_table p ORDER BY p.relation::pg_catalog.text LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION pg_shred ADD VIEW %s', shred._qualified(t.view));
        PERFORM shred._refresh_view(t.relation, shred._qualified(t.view));
        EXECUTE pg_catalog.format('ALTER EXTENSION pg_shred DROP VIEW %s', shred._qualified(t.view));
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_index i
                         JOIN pg_catalog.pg_attribute att ON att.attrelid OPERATOR(pg_catalog.=) t.relation
                              AND att.attname OPERATOR(pg_catalog.=) t.subject_column
                        WHERE i.indrelid OPERATOR(pg_catalog.=) t.relation
                          AND i.indkey[0] OPERATOR(pg_catalog.=) att.attnum AND i.indpred IS NULL) THEN
            PERFORM shred._as_table_owner(t.relation, pg_catalog.format('CREATE INDEX ON %s (%I)', shred._qualified(t.relation), t.subject_column));
        END IF;
        PERFORM shred._rebuild_row_tokens(t.relation);
    END LOOP;
END
$$;

DROP FUNCTION shred.row_context(pg_catalog.text, pg_catalog.text);
