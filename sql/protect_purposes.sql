-- pg_shred 0.6.0, third part: protected tables with purposes. Runs after consent.sql (see
-- sql/README.md). Rust side: src/protect/ (write.rs seals a purpose column under the row
-- subject's DEK of its purpose; reseal.rs seals a column's values again for another purpose).
--
-- A protected column may be kept for a purpose (shred.protect(..., purposes => '{"email":
-- "marketing"}'), or shred.set_purpose later): its values are sealed under each data subject's
-- DEK of that purpose, and its row tokens and blind-index terms keyed by that DEK, so that
-- shred.erase(subject, purpose) (or shred.withdraw_consent) leaves that column unreadable and
-- unsearchable for the subject while the subject's other columns still open. For a purpose
-- that requires consent, no value is sealed for a subject without a confirmed consent.
-- The rules of sql/protect.sql ("Whose rights") hold for every function here.

-----------------------------------------------------------------------------------------------
-- The catalog: which purpose a protected column is kept for (NULL: the subject's default DEK).
-- Purposes are never dropped, so the id stays valid.
-----------------------------------------------------------------------------------------------
ALTER TABLE shred.protected_column ADD COLUMN purpose_id pg_catalog.int4
    CONSTRAINT protected_column_purpose_id_check CHECK (purpose_id OPERATOR(pg_catalog.>) 0);
COMMENT ON COLUMN shred.protected_column.purpose_id IS
    'The purpose (shred.purpose.purpose_id) the column''s values are kept for: sealed under each data subject''s DEK of that purpose; NULL for the subject''s default DEK. Set by shred.protect(..., purposes) and shred.set_purpose.';
COMMENT ON TABLE shred.protected_column IS
    'Protected columns: the original type (which says how it is sealed: shred.sealing_kind), the AAD context, its blind-index column and normalisation, the value the view shows once its subject (or its purpose) is erased (NULL by default), and the purpose its values are kept for.';

-- Whoever may EXECUTE a function replaced below (with a new parameter, or a new result) may
-- EXECUTE its replacement; the grants are carried over in their order.
CREATE FUNCTION shred._carry_grants(old_fn pg_catalog.regprocedure, new_fn pg_catalog.regprocedure)
    RETURNS void
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT a.grantee, a.is_grantable
          FROM pg_proc p
         CROSS JOIN LATERAL aclexplode(p.proacl) WITH ORDINALITY a (grantor, grantee, privilege_type, is_grantable, n)
         WHERE p.oid = old_fn AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
         ORDER BY a.n
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s%s', new_fn,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$$;

-----------------------------------------------------------------------------------------------
-- C functions
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred.blind_token(subject pg_catalog.text, value pg_catalog.text, context pg_catalog.text,
                                  normalization pg_catalog.text DEFAULT 'exact', purpose pg_catalog.text DEFAULT NULL)
    RETURNS pg_catalog.bytea
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'blind_token_for_wrapper';
COMMENT ON FUNCTION shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'For writes that bypass a protected table''s view: the row token (32 bytes) to store in <column>_bidx with value, keyed by the subject''s DEK for purpose (NULL: its default DEK; pass the column''s purpose), recording the blind-index term so that shred.blind_match finds it until that DEK is erased. Creates the DEK on first use; for a purpose that requires consent, only under the subject''s confirmed consent (55000 otherwise). NULL value gives NULL; an undefined purpose is 42704.';
REVOKE ALL ON FUNCTION shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) FROM PUBLIC;
SELECT shred._carry_grants('shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text)',
                           'shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text)');
DROP FUNCTION shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text);

CREATE FUNCTION shred._reseal_column(tbl pg_catalog.regclass, column_name pg_catalog.text)
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_reseal_column_wrapper';
COMMENT ON FUNCTION shred._reseal_column(pg_catalog.regclass, pg_catalog.text) IS
    'Internal (set_purpose): seal every value of a protected column that opens, and is not sealed under it already, again under its data subject''s DEK of the column''s purpose (from the catalog), recompute its row token and move its blind-index term to that DEK; erased values stay as they are. Reads and writes the table as its owner (security-restricted, pinned search_path). Returns how many values were sealed again. Never granted.';
REVOKE ALL ON FUNCTION shred._reseal_column(pg_catalog.regclass, pg_catalog.text) FROM PUBLIC;

-----------------------------------------------------------------------------------------------
-- protect() with purposes: the body of 0.5.0 (sql/postgres_majors.sql) with `purposes` added,
-- checked before anything changes, each purpose column's values sealed (and row tokens keyed)
-- under its purpose's DEKs, and the default DEKs created set-based only when a column uses them.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred._protect(
    tbl pg_catalog.regclass,
    subject_column pg_catalog.name,
    columns pg_catalog.name[],
    searchable pg_catalog.name[],
    subject_prefix pg_catalog.text,
    view_name pg_catalog.name,
    normalization pg_catalog.text,
    purposes pg_catalog.jsonb DEFAULT NULL)
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
    entry record;
    purpose_name text;
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
    -- purposes: {"<protected column>": "<defined purpose>", ...}, all checked before any change
    IF purposes IS NOT NULL AND jsonb_typeof(purposes) <> 'object' THEN
        RAISE EXCEPTION 'pg_shred: purposes must be a JSON object of protected column names and purpose names, e.g. {"email": "marketing"}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR entry IN SELECT e.key, e.value FROM jsonb_each(coalesce(purposes, '{}')) e ORDER BY e.key LOOP
        IF NOT EXISTS (SELECT FROM pg_attribute att
                        WHERE att.attrelid = tbl AND att.attname::text = entry.key AND att.attnum > 0 AND NOT att.attisdropped) THEN
            RAISE EXCEPTION 'pg_shred: column % of table % does not exist', quote_ident(entry.key), tbl USING ERRCODE = 'undefined_column';
        END IF;
        IF entry.key <> ALL (columns::text[]) THEN
            RAISE EXCEPTION 'pg_shred: column % has a purpose but is not one of the protected columns', quote_ident(entry.key)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF jsonb_typeof(entry.value) <> 'string' THEN
            RAISE EXCEPTION 'pg_shred: the purpose of column % must be a purpose name (a JSON string)', quote_ident(entry.key)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT EXISTS (SELECT FROM shred.purpose x WHERE x.name = entry.value #>> '{}') THEN
            RAISE EXCEPTION 'pg_shred: purpose "%" is not defined (see shred.define_purpose)', entry.value #>> '{}'
                USING ERRCODE = 'undefined_object';
        END IF;
    END LOOP;
    IF NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = tbl AND i.indisprimary) THEN
        RAISE EXCEPTION 'pg_shred: table % needs a primary key (the view updates rows by it)', tbl
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF to_regclass(format('%I.%I', nsp, vname)) IS NOT NULL THEN
        RAISE EXCEPTION 'pg_shred: relation %.% exists already; pass another view_name', quote_ident(nsp), quote_ident(vname)
            USING ERRCODE = 'duplicate_table';
    END IF;
    subject_expr := format('(%L || %I::pg_catalog.text)', subject_prefix, subject_column);
    -- The default DEK of every subject first, set-based (one INSERT per 10,000 new subjects),
    -- instead of one statement per new subject during the rewrite below; when no column uses
    -- the default DEK, none is created (a purpose's DEKs are created as its values are sealed).
    IF EXISTS (SELECT FROM unnest(columns) x WHERE NOT coalesce(purposes ? x::text, false)) THEN
        PERFORM shred._as_table_owner(tbl, format('SELECT shred.create_keys(ARRAY(SELECT DISTINCT %s FROM %s WHERE %I IS NOT NULL))',
                                                  subject_expr, tbl, subject_column));
    END IF;

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
        purpose_name := purposes ->> col::text;
        bidx := NULL;
        IF col = ANY (coalesce(searchable, '{}')) THEN
            bidx := left(col, 58) || '_bidx';
            IF EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = tbl AND att.attname = bidx AND NOT att.attisdropped) THEN
                RAISE EXCEPTION 'pg_shred: column % exists already', quote_ident(bidx) USING ERRCODE = 'duplicate_column';
            END IF;
            -- the context's key is created here, so that lookups never create keys
            PERFORM shred._ensure_blind_index_key(ctx);
            PERFORM shred._as_table_owner(tbl, format('ALTER TABLE %s ADD COLUMN %I pg_catalog.bytea', tbl, bidx));
            PERFORM shred._as_table_owner(tbl, format('UPDATE %s SET %I = shred.blind_token(%s, %I::pg_catalog.text, %L, %L, %L::pg_catalog.text) WHERE %I IS NOT NULL',
                                                      tbl, bidx, subject_expr, col, ctx, normalization, purpose_name, col));
            PERFORM shred._as_table_owner(tbl, format('CREATE INDEX ON %s (%I)', tbl, bidx));
        END IF;
        -- the AAD context binds the row's subject: length(subject):subject:context
        alters := alters || format('ALTER COLUMN %I TYPE shred.sealed USING CASE WHEN %I IS NULL THEN NULL ELSE shred.seal(%s, %I::%s, length(%s)::pg_catalog.text || '':'' || %s || '':'' || %L, %L::pg_catalog.text) END',
                                   col, col, subject_expr, col, shred._kind_type(kind), subject_expr, subject_expr, ctx, purpose_name);
        INSERT INTO shred.protected_column (relation, column_name, plain_type, plain_typmod, context, blind_index_column, normalization, purpose_id)
        VALUES (tbl, col, a.typ, a.typmod, ctx, bidx, CASE WHEN bidx IS NOT NULL THEN normalization END,
                (SELECT x.purpose_id FROM shred.purpose x WHERE x.name = purpose_name));
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
COMMENT ON FUNCTION shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text, pg_catalog.jsonb) IS
    'Internal: the body of shred.protect (writes the catalog; every change to the table as its owner).';

CREATE FUNCTION shred.protect(
    tbl pg_catalog.regclass,
    subject_column pg_catalog.name,
    columns pg_catalog.name[],
    searchable pg_catalog.name[] DEFAULT '{}',
    subject_prefix pg_catalog.text DEFAULT '',
    view_name pg_catalog.name DEFAULT NULL,
    normalization pg_catalog.text DEFAULT 'exact',
    purposes pg_catalog.jsonb DEFAULT NULL)
    RETURNS pg_catalog.regclass
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._protect(shred._authorize(tbl), subject_column, columns, searchable, subject_prefix, view_name, normalization, purposes) $$;
COMMENT ON FUNCTION shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text, pg_catalog.jsonb) IS
    'Protect columns of a table whose owner''s privileges you have: seal every existing value in place (one rewrite; subject = subject_prefix || subject_column, AAD context = ''<table>.<column>'' bound to the row''s subject), keep a row-token column <column>_bidx with an index for each searchable column, index the subject column, and create the view <table>_plain (or view_name) that shows plaintext with the original types and accepts INSERT, UPDATE and DELETE. purposes (e.g. ''{"email": "marketing"}''): the purpose each named protected column is kept for, whose DEK seals its values (for a purpose that requires consent, every subject with a value needs a confirmed consent: 55000 otherwise); the others use the default DEK. Everything on the table runs as its owner (security-restricted), who needs shred_writer. Needs a primary key; refuses row-level security; protected columns must have no index, constraint or default. Returns the view.';

REVOKE ALL ON FUNCTION
    shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text, pg_catalog.jsonb),
    shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text, pg_catalog.jsonb)
FROM PUBLIC;
SELECT shred._carry_grants('shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text)',
                           'shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text, pg_catalog.jsonb)');
SELECT shred._carry_grants('shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text)',
                           'shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text, pg_catalog.jsonb)');
DROP FUNCTION shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
              shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text);

-----------------------------------------------------------------------------------------------
-- set_purpose: keep a protected column for another purpose (or for the default DEK), with its
-- existing values sealed again under the new DEKs in the same transaction: otherwise erasing
-- the purpose would leave them readable.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred._set_purpose(tbl pg_catalog.regclass, column_name pg_catalog.name, purpose pg_catalog.text)
    RETURNS pg_catalog.int8
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    c shred.protected_column;
    id int4;
BEGIN
    PERFORM shred._authorized(tbl);
    SELECT * INTO t FROM shred.protected_table p WHERE p.relation = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: table % is not protected', tbl USING ERRCODE = 'undefined_object';
    END IF;
    SELECT * INTO c FROM shred.protected_column pc WHERE pc.relation = tbl AND pc.column_name = _set_purpose.column_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: column % of table % is not protected', quote_ident(_set_purpose.column_name), tbl
            USING ERRCODE = 'undefined_column';
    END IF;
    IF _set_purpose.purpose IS NOT NULL THEN
        SELECT x.purpose_id INTO id FROM shred.purpose x WHERE x.name = _set_purpose.purpose;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'pg_shred: purpose "%" is not defined (see shred.define_purpose)', _set_purpose.purpose
                USING ERRCODE = 'undefined_object';
        END IF;
    END IF;
    IF c.purpose_id IS NOT DISTINCT FROM id THEN
        RETURN 0;
    END IF;
    UPDATE shred.protected_column pc SET purpose_id = id WHERE pc.relation = tbl AND pc.column_name = c.column_name;
    -- The view first: re-creating it locks it (ACCESS EXCLUSIVE) until the transaction ends,
    -- so no write through it starts meanwhile, and every backend's writer is built again from
    -- the new catalog; then the table, against writes that bypass the view.
    PERFORM shred._refresh_view(tbl, shred._qualified(t.view));
    PERFORM shred._as_table_owner(tbl, format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl));
    RETURN shred._reseal_column(tbl, c.column_name::pg_catalog.text);
END
$$;
COMMENT ON FUNCTION shred._set_purpose(pg_catalog.regclass, pg_catalog.name, pg_catalog.text) IS 'Internal: the body of shred.set_purpose.';

CREATE FUNCTION shred.set_purpose(tbl pg_catalog.regclass, column_name pg_catalog.name, purpose pg_catalog.text)
    RETURNS pg_catalog.int8
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._set_purpose(shred._authorize(tbl), column_name, purpose) $$;
COMMENT ON FUNCTION shred.set_purpose(pg_catalog.regclass, pg_catalog.name, pg_catalog.text) IS
    'Keep a protected column of a table whose owner''s privileges you have for a purpose (NULL: the data subjects'' default DEKs): every existing value that opens is sealed again under its subject''s DEK of that purpose (row token and blind-index term too), in the caller''s transaction, so that shred.erase(subject, purpose) then erases the column for the subject. For a purpose that requires consent, a value of a subject without a confirmed consent makes it fail (55000) and change nothing. Erased values stay erased. The table is locked against writes (its view against all use) until the transaction ends; it runs as the table''s owner (security-restricted). Returns how many values were sealed again (0 when the column is kept for that purpose already).';

REVOKE ALL ON FUNCTION
    shred._set_purpose(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred.set_purpose(pg_catalog.regclass, pg_catalog.name, pg_catalog.text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    shred._set_purpose(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred.set_purpose(pg_catalog.regclass, pg_catalog.name, pg_catalog.text)
TO shred_admin;

-----------------------------------------------------------------------------------------------
-- Subject rights: which purpose each column is kept for, in the footprint and the export, and
-- the consent history in the export.
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred._column_purposes(tbl pg_catalog.regclass)
    RETURNS pg_catalog.jsonb
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_object_agg(pc.column_name, x.name)
      FROM shred.protected_column pc JOIN shred.purpose x ON x.purpose_id = pc.purpose_id
     WHERE pc.relation = tbl
$$;
COMMENT ON FUNCTION shred._column_purposes(pg_catalog.regclass) IS
    'Internal (subject_footprint, export_subject): the protected columns of a table kept for a purpose, as jsonb {"<column>": "<purpose>"}; NULL when none is. Reads shred.purpose for roles that may not.';
REVOKE ALL ON FUNCTION shred._column_purposes(pg_catalog.regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shred._column_purposes(pg_catalog.regclass) TO shred_reader, shred_eraser, shred_admin;

-- The footprint gains a column: the old function is renamed, its grants carried over to the
-- new one, and dropped.
ALTER FUNCTION shred.subject_footprint(pg_catalog.text) RENAME TO _subject_footprint_0_5_0;
CREATE FUNCTION shred.subject_footprint(subject pg_catalog.text)
    RETURNS TABLE (relation pg_catalog.regclass, column_name pg_catalog.name, purpose pg_catalog.text,
                   row_count pg_catalog.int8, value_count pg_catalog.int8, erased pg_catalog.bool)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.relation, f.column_name::name, shred._column_purposes(p.relation) ->> f.column_name,
           f.row_count, f.value_count, f.erased
      FROM shred.protected_table p
     CROSS JOIN LATERAL shred._footprint_rows(p.relation, shred._subject_key(p, subject), subject) f
     WHERE shred._subject_key(p, subject) IS NOT NULL
     ORDER BY p.relation::text, f.column_name
$$;
COMMENT ON FUNCTION shred.subject_footprint(pg_catalog.text) IS
    'Every protected table and column holding values of a data subject: the purpose the column is kept for (NULL: the default DEK), rows of the subject, non-NULL values, and whether they are erased (the subject, or the column''s purpose for it). Each table is read as its owner (security-restricted; an index scan on the subject column) for a caller who may SELECT it; tables it may not read are skipped with a NOTICE.';
REVOKE ALL ON FUNCTION shred.subject_footprint(pg_catalog.text) FROM PUBLIC;
SELECT shred._carry_grants('shred._subject_footprint_0_5_0(pg_catalog.text)', 'shred.subject_footprint(pg_catalog.text)');
DROP FUNCTION shred._subject_footprint_0_5_0(pg_catalog.text);

-- Same signature and result: replaced in place, its grants stay.
CREATE OR REPLACE FUNCTION shred.export_subject(subject pg_catalog.text)
    RETURNS pg_catalog.jsonb
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH x AS (
        SELECT p.relation, shred._export_rows(p.relation, shred._subject_key(p, subject), subject) AS rows,
               shred._column_purposes(p.relation) AS purposes
          FROM shred.protected_table p
         WHERE shred._subject_key(p, subject) IS NOT NULL
    ), c AS (
        SELECT jsonb_agg(to_jsonb(h) ORDER BY h.requested_at, h.purpose) AS consent
          FROM shred.consent_history(subject) h
    )
    SELECT CASE WHEN count(x.rows) > 0 OR c.consent IS NOT NULL THEN
               jsonb_build_object('subject', subject, 'exported_at', now(),
                                  'tables', coalesce(jsonb_object_agg(x.relation::text, x.rows) FILTER (WHERE x.rows IS NOT NULL), '{}'),
                                  'purposes', coalesce(jsonb_object_agg(x.relation::text, x.purposes)
                                                           FILTER (WHERE x.rows IS NOT NULL AND x.purposes IS NOT NULL), '{}'),
                                  'consent', coalesce(c.consent, '[]'))
           END
      FROM c LEFT JOIN x ON true
     GROUP BY c.consent
$$;
COMMENT ON FUNCTION shred.export_subject(pg_catalog.text) IS
    'Everything pg_shred holds of a data subject: its rows in every protected table, decrypted as the plaintext views show them (erased values as their tombstone), the purpose each of their columns is kept for, and its consent history (shred.consent_history), as jsonb {"subject", "exported_at", "tables": {"<table>": [rows]}, "purposes": {"<table>": {"<column>": "<purpose>"}}, "consent": [...]}; NULL when there is neither a row nor a consent. Each table is read as its owner (security-restricted), so none of its owner''s code runs with the caller''s rights; values are opened with the caller''s (needs shred_reader); tables the caller may not SELECT are skipped with a NOTICE.';

-- The helper has done its work.
DROP FUNCTION shred._carry_grants(pg_catalog.regprocedure, pg_catalog.regprocedure);
