-- pg_shred 0.5.0: PostgreSQL 16, 17 and 18 beside 15. Run by a fresh install after
-- key_store.sql, and as the update script from 0.4.0 (scripts/lib.sh installs it; see
-- sql/README.md). What the newer majors change under pg_shred's SQL is mended here.

-----------------------------------------------------------------------------------------------
-- PostgreSQL 18 records a column's NOT NULL as a constraint (pg_constraint.contype = 'n').
-- shred.protect refuses columns that an index or a constraint compares, since sealed values
-- cannot be compared; NOT NULL compares nothing and holds for sealed values as for plaintext,
-- so a NOT NULL column is protected on every major, as on 15: the body of 0.4.0 with that one
-- test changed.
-----------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION shred._protect(
    tbl pg_catalog.regclass,
    subject_column pg_catalog.name,
    columns pg_catalog.name[],
    searchable pg_catalog.name[],
    subject_prefix pg_catalog.text,
    view_name pg_catalog.name,
    normalization pg_catalog.text)
    RETURNS pg_catalog.regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name;
    rel name;
    subject_type regtype;
    subject_expr text;
    vname name;
    col name;
    a record;
    kind text;
    ctx text;
    bidx name;
    alters text[] := '{}';
BEGIN
    PERFORM shred._authorized(tbl);
    SELECT n.nspname, c.relname INTO nsp, rel
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: % is not a permanent table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    IF (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = tbl) THEN
        RAISE EXCEPTION 'pg_shred: table % has row-level security enabled', tbl
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Its policies are its owner''s code: pg_shred''s subject-rights functions would run them with other roles'' rights.',
                  HINT = 'Disable row-level security first (ALTER TABLE ... DISABLE ROW LEVEL SECURITY); grant access through views or privileges.';
    END IF;
    vname := coalesce(view_name, left(rel, 57) || '_plain');
    IF EXISTS (SELECT FROM shred.protected_table p WHERE p.relation = tbl) THEN
        RAISE EXCEPTION 'pg_shred: table % is protected already', tbl USING ERRCODE = 'duplicate_object';
    END IF;
    IF normalization IS NULL OR normalization NOT IN ('exact', 'email') THEN
        RAISE EXCEPTION 'pg_shred: normalization must be ''exact'' or ''email''' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject_prefix IS NULL OR starts_with(subject_prefix, 'pg_shred:') THEN
        RAISE EXCEPTION 'pg_shred: subject_prefix must not be NULL, and subjects starting with ''pg_shred:'' are reserved' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF columns IS NULL OR cardinality(columns) = 0 OR array_position(columns, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'pg_shred: name at least one column to protect' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT count(DISTINCT x) FROM unnest(columns) x) <> cardinality(columns) THEN
        RAISE EXCEPTION 'pg_shred: a column is named twice' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT att.atttypid INTO subject_type FROM pg_attribute att
     WHERE att.attrelid = tbl AND att.attname = subject_column AND att.attnum > 0 AND NOT att.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: column % of table % does not exist', quote_ident(subject_column), tbl
            USING ERRCODE = 'undefined_column';
    END IF;
    IF subject_type NOT IN ('text'::regtype, 'character varying'::regtype, 'smallint'::regtype, 'integer'::regtype,
                            'bigint'::regtype, 'numeric'::regtype, 'uuid'::regtype) THEN
        RAISE EXCEPTION 'pg_shred: the subject column % has type %, whose text form is not stable', quote_ident(subject_column), subject_type
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Use a text, varchar, integer, bigint, numeric or uuid column as the subject.';
    END IF;
    IF EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = tbl AND att.attname = subject_column AND att.attgenerated <> '') THEN
        RAISE EXCEPTION 'pg_shred: the subject column % is a generated column', quote_ident(subject_column)
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Values written through the view are sealed for the subject before the table computes the column.';
    END IF;
    IF subject_column = ANY (columns) THEN
        RAISE EXCEPTION 'pg_shred: the subject column cannot be protected itself' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(coalesce(searchable, '{}')) s WHERE s IS NULL OR s <> ALL (columns)) THEN
        RAISE EXCEPTION 'pg_shred: every searchable column must be one of the protected columns' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = tbl AND i.indisprimary) THEN
        RAISE EXCEPTION 'pg_shred: table % needs a primary key (the view updates rows by it)', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF to_regclass(format('%I.%I', nsp, vname)) IS NOT NULL THEN
        RAISE EXCEPTION 'pg_shred: relation %.% exists already; pass another view_name', quote_ident(nsp), quote_ident(vname)
            USING ERRCODE = 'duplicate_table';
    END IF;
    subject_expr := format('(%L || %I::pg_catalog.text)', subject_prefix, subject_column);
    -- Every subject's DEK first, set-based (one INSERT per 10,000 new subjects), instead of one
    -- statement per new subject during the rewrite below.
    PERFORM shred._as_table_owner(tbl, format('SELECT shred.create_keys(ARRAY(SELECT DISTINCT %s FROM %s WHERE %I IS NOT NULL))',
                                              subject_expr, tbl, subject_column));

    FOREACH col IN ARRAY columns LOOP
        SELECT att.attnum, att.atttypid::regtype AS typ, att.atttypmod AS typmod,
               format_type(att.atttypid, att.atttypmod) AS plain_type, att.atthasdef, att.attgenerated <> '' AS generated
          INTO a FROM pg_attribute att
         WHERE att.attrelid = tbl AND att.attname = col AND att.attnum > 0 AND NOT att.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pg_shred: column % of table % does not exist', quote_ident(col), tbl USING ERRCODE = 'undefined_column';
        END IF;
        kind := shred._sealing_kind(a.typ);
        IF kind IS NULL THEN
            RAISE EXCEPTION 'pg_shred: column % has type %, which shred.protect does not support', quote_ident(col), a.plain_type
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Supported: text, varchar, char, bytea, smallint, integer, bigint, numeric, date, timestamptz, jsonb.';
        END IF;
        IF a.atthasdef OR a.generated THEN
            RAISE EXCEPTION 'pg_shred: column % has a default or is generated; drop it first', quote_ident(col) USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF EXISTS (SELECT FROM pg_index i WHERE i.indrelid = tbl AND (a.attnum = ANY (i.indkey::int2[]) OR i.indexprs IS NOT NULL))
           OR EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = tbl AND k.contype <> 'n' AND a.attnum = ANY (k.conkey)) THEN
            RAISE EXCEPTION 'pg_shred: column % is used by an index or a constraint; drop it first', quote_ident(col)
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Sealed values cannot be compared: look values up through a blind index (searchable => ...).';
        END IF;
        ctx := rel || '.' || col;
        bidx := NULL;
        IF col = ANY (coalesce(searchable, '{}')) THEN
            bidx := left(col, 58) || '_bidx';
            IF EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = tbl AND att.attname = bidx AND NOT att.attisdropped) THEN
                RAISE EXCEPTION 'pg_shred: column % exists already', quote_ident(bidx) USING ERRCODE = 'duplicate_column';
            END IF;
            -- the context's key is created here, so that lookups never create keys
            PERFORM shred._ensure_blind_index_key(ctx);
            PERFORM shred._as_table_owner(tbl, format('ALTER TABLE %s ADD COLUMN %I pg_catalog.bytea', tbl, bidx));
            PERFORM shred._as_table_owner(tbl, format('UPDATE %s SET %I = shred.blind_token(%s, %I::pg_catalog.text, %L, %L) WHERE %I IS NOT NULL',
                                                      tbl, bidx, subject_expr, col, ctx, normalization, col));
            PERFORM shred._as_table_owner(tbl, format('CREATE INDEX ON %s (%I)', tbl, bidx));
        END IF;
        -- the AAD context binds the row's subject: length(subject):subject:context
        alters := alters || format('ALTER COLUMN %I TYPE shred.sealed USING CASE WHEN %I IS NULL THEN NULL ELSE shred.seal(%s, %I::%s, length(%s)::pg_catalog.text || '':'' || %s || '':'' || %L) END',
                                   col, col, subject_expr, col, shred._kind_type(kind), subject_expr, subject_expr, ctx);
        INSERT INTO shred.protected_column (relation, column_name, plain_type, plain_typmod, context, blind_index_column, normalization)
        VALUES (tbl, col, a.typ, a.typmod, ctx, bidx, CASE WHEN bidx IS NOT NULL THEN normalization END);
    END LOOP;
    -- One rewrite of the table for all columns: every existing value sealed, atomically.
    PERFORM shred._as_table_owner(tbl, format('ALTER TABLE %s %s', tbl, array_to_string(alters, ', ')));
    -- The subject-rights functions select a subject's rows by the subject column.
    IF NOT EXISTS (SELECT FROM pg_index i JOIN pg_attribute att ON att.attrelid = tbl AND att.attname = subject_column
                    WHERE i.indrelid = tbl AND i.indkey[0] = att.attnum AND i.indpred IS NULL) THEN
        PERFORM shred._as_table_owner(tbl, format('CREATE INDEX ON %s (%I)', tbl, subject_column));
    END IF;

    -- registered with the table as its own placeholder view until the view exists
    INSERT INTO shred.protected_table (relation, subject_column, subject_prefix, view)
    VALUES (tbl, subject_column, subject_prefix, tbl);
    UPDATE shred.protected_table p SET view = shred._refresh_view(tbl, format('%I.%I', nsp, vname))
     WHERE p.relation = tbl;
    RETURN (SELECT p.view FROM shred.protected_table p WHERE p.relation = tbl);
END
$$;
