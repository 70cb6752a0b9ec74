-- Protected tables: shred.protect() seals chosen columns of an existing table in place for the
-- data subject named by one of its columns, and creates a view <table>_plain that shows and
-- accepts plaintext. Lookups by value go through row tokens and the key store's blind-index
-- terms; erasure touches pg_shred's own tables only. Rust side: src/protect/, src/sql/protect.rs.
--
-- Whose rights:
-- - The catalog is written only by the functions below (SECURITY DEFINER, owned by the
--   extension's owner), each for a table whose owner's privileges the caller has (checked by
--   shred._authorize as the caller, consumed by shred._authorized inside).
-- - DDL and data changes on a protected table run as its owner, security-restricted, with
--   search_path = pg_catalog, pg_temp (shred._as_table_owner), whoever called.
-- - export_subject, subject_footprint and check read each table as its owner (security-restricted,
--   pinned search_path), for a caller who may SELECT it (others are skipped with a NOTICE), and
--   open values with the caller's rights in statements that read no table; tables with
--   row-level security are refused by protect() and skipped.
-- - erase touches pg_shred's own tables only.
-- Every name is schema-qualified or resolved under a pinned search_path.

-----------------------------------------------------------------------------------------------
-- Blind-index terms: which data subjects (key ids) hold a value of a blind index. Deleted with
-- the DEK by every erasure; no role has privileges on it.
-----------------------------------------------------------------------------------------------
CREATE TABLE shred.blind_term (
    blind_index  pg_catalog.bytea NOT NULL,
    key_id       pg_catalog.int8 NOT NULL,
    CONSTRAINT blind_term_pkey PRIMARY KEY (blind_index, key_id)
);
CREATE INDEX blind_term_key_id ON shred.blind_term (key_id);
-- Dead tuples (terms of erased subjects) are vacuumed promptly, as the key table's are.
ALTER TABLE shred.blind_term SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);
COMMENT ON TABLE shred.blind_term IS
    'Blind-index terms: (HMAC-SHA256 of a normalised value under its context''s key, key id of a data subject holding it). Written by writes through protected views and shred.blind_token; deleted with the DEK by every erasure. Kept by pg_dump.';
SELECT pg_catalog.pg_extension_config_dump('shred.blind_term', '');
REVOKE ALL ON shred.blind_term FROM PUBLIC;

-----------------------------------------------------------------------------------------------
-- C functions
-----------------------------------------------------------------------------------------------
CREATE FUNCTION shred._open_row(value shred.sealed, subject pg_catalog.text, context pg_catalog.text, "as" anyelement)
    RETURNS anyelement
    LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_open_row_wrapper';
COMMENT ON FUNCTION shred._open_row(shred.sealed, pg_catalog.text, pg_catalog.text, anyelement) IS
    'Internal (plaintext views, export): open a protected column''s value in a row of subject, as the type of "as"; NULL once the subject is erased. The AAD binds the subject and context, and the DEK must be the subject''s own: anything else fails like a tampered value (22000). STABLE, so that PostgreSQL flattens the views and pushes conditions into them (WHERE id = 1 reads one row, not the table); an erasure committed while a statement runs still takes effect at once (keys are read under the latest snapshot).';

CREATE FUNCTION shred.blind_match(value pg_catalog.text, context pg_catalog.text, normalization pg_catalog.text DEFAULT 'exact')
    RETURNS SETOF pg_catalog.bytea
    LANGUAGE c STABLE STRICT PARALLEL UNSAFE ROWS 1 AS 'MODULE_PATHNAME', 'blind_match_wrapper';
COMMENT ON FUNCTION shred.blind_match(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'The row tokens that rows holding value in the searchable column of context (''<table>.<column>'') store: one per data subject holding it, none once it is erased. Look rows up with WHERE <column>_bidx IN (SELECT shred.blind_match(value, context, normalization)): an index scan, and a plan that prepared statements keep (nothing is computed while planning). Never creates a key: a context without one is an error (42704).';

CREATE FUNCTION shred.blind_token(subject pg_catalog.text, value pg_catalog.text, context pg_catalog.text, normalization pg_catalog.text DEFAULT 'exact')
    RETURNS pg_catalog.bytea
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'blind_token_wrapper';
COMMENT ON FUNCTION shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'For writes that bypass a protected table''s view: the row token (32 bytes, keyed by the subject''s DEK) to store in <column>_bidx with value, recording the blind-index term so that shred.blind_match finds it. NULL value gives NULL.';

CREATE FUNCTION shred._ensure_blind_index_key(context pg_catalog.text)
    RETURNS void
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_ensure_blind_index_key_wrapper';
COMMENT ON FUNCTION shred._ensure_blind_index_key(pg_catalog.text) IS
    'Internal (protect): create the key of a blind-index context, so that lookups never create keys.';

CREATE FUNCTION shred._authorize(tbl pg_catalog.regclass)
    RETURNS pg_catalog.regclass
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_authorize_wrapper';
COMMENT ON FUNCTION shred._authorize(pg_catalog.regclass) IS
    'Internal: refuse (42501) unless the calling role has the privileges of the table''s owner; otherwise authorise one change of its protection.';

CREATE FUNCTION shred._authorized(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_authorized_wrapper';
COMMENT ON FUNCTION shred._authorized(pg_catalog.regclass) IS
    'Internal: consume the authorisation of shred._authorize for this table, or refuse (42501).';

CREATE FUNCTION shred._as_table_owner(tbl pg_catalog.regclass, statement pg_catalog.text)
    RETURNS void
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_as_table_owner_wrapper';
COMMENT ON FUNCTION shred._as_table_owner(pg_catalog.regclass, pg_catalog.text) IS
    'Internal: run one statement as the table''s owner in a security-restricted operation with search_path = pg_catalog, pg_temp. Never granted.';

CREATE FUNCTION shred._rebuild_row_tokens(tbl pg_catalog.regclass)
    RETURNS pg_catalog.int8
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_rebuild_row_tokens_wrapper';
COMMENT ON FUNCTION shred._rebuild_row_tokens(pg_catalog.regclass) IS
    'Internal (upgrade from 0.2.0): recompute the row tokens of a protected table''s searchable columns from its sealed values, as the table''s owner. Never granted.';

CREATE OR REPLACE FUNCTION shred.protected_view_write()
    RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'protected_view_write_wrapper';
COMMENT ON FUNCTION shred.protected_view_write() IS
    'INSTEAD OF INSERT OR UPDATE trigger of the views made by shred.protect: seals protected columns, writes row tokens and blind-index terms, and writes the table with the writing role''s rights (saved plans per view and backend). DELETE through the view is PostgreSQL''s own and opens nothing.';

-- A lookup never creates a key (protect() creates the context's key), so it is STABLE and can
-- be an index condition.
ALTER FUNCTION shred.blind_index(pg_catalog.text, pg_catalog.text, pg_catalog.text) STABLE;
COMMENT ON FUNCTION shred.blind_index(pg_catalog.text, pg_catalog.text, pg_catalog.text) IS
    'Blind index of a value (HMAC-SHA256, 32 bytes, of the normalised value under the context''s key). Never creates a key (42704 for a context without one). Protected tables store row tokens instead (see shred.blind_match), which die with the data subject.';

-----------------------------------------------------------------------------------------------
-- SQL text of a protected table (internal; built once per protect/refresh, or per call of the
-- subject-rights functions, never per row).
-----------------------------------------------------------------------------------------------
-- A relation's name, schema-qualified and quoted, whatever the search_path.
CREATE FUNCTION shred._qualified(rel pg_catalog.regclass)
    RETURNS pg_catalog.text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel
$$;
COMMENT ON FUNCTION shred._qualified(pg_catalog.regclass) IS 'Internal: the schema-qualified, quoted name of a relation.';

-- The OID of the type a sealing kind is opened as (text, bytea, int4, int8, numeric, date,
-- timestamptz, jsonb).
CREATE FUNCTION shred._kind_oid(typ pg_catalog.regtype)
    RETURNS pg_catalog.oid
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._kind_type(shred._sealing_kind(typ))::regtype::oid $$;
COMMENT ON FUNCTION shred._kind_oid(pg_catalog.regtype) IS 'Internal: the type a protected column of this type is sealed and opened as.';

-- The data subject of row alias `rel`: subject_prefix || subject_column::text.
CREATE FUNCTION shred._subject_sql(t shred.protected_table, rel pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('(%L OPERATOR(pg_catalog.||) %s%I::pg_catalog.text)', t.subject_prefix,
                  CASE WHEN rel IS NULL THEN '' ELSE quote_ident(rel) || '.' END, t.subject_column)
$$;
COMMENT ON FUNCTION shred._subject_sql(shred.protected_table, pg_catalog.text) IS
    'Internal: SQL expression of the data subject of a row (alias rel, or unqualified for NULL) of a protected table.';

-- A protected column's value (SQL expression value_sql, of type shred.sealed) in a row of the
-- subject subject_sql, opened into the column's original type (its tombstone, or NULL, once
-- the subject is erased).
CREATE FUNCTION shred._open_sql(c shred.protected_column, value_sql pg_catalog.text, subject_sql pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(CASE WHEN c.tombstone IS NULL THEN '%1$s::%3$s'
                       ELSE 'COALESCE(%1$s, CASE WHEN %2$s IS NULL THEN NULL ELSE %4$L::%5$s END)::%3$s' END,
                  format('shred._open_row(%s, %s, %L, NULL::%s)', value_sql, subject_sql, c.context,
                         shred._kind_type(shred._sealing_kind(c.plain_type))),
                  value_sql, format_type(c.plain_type, c.plain_typmod), c.tombstone,
                  shred._kind_type(shred._sealing_kind(c.plain_type)))
$$;
COMMENT ON FUNCTION shred._open_sql(shred.protected_column, pg_catalog.text, pg_catalog.text) IS
    'Internal: SQL expression opening a protected column''s value of a row into its original type (or its tombstone once the subject is erased).';

-- The SELECT (alias b) behind the plaintext view: the table's columns in order, blind-index
-- columns left out, protected ones opened.
CREATE FUNCTION shred._select_plain(tbl pg_catalog.regclass)
    RETURNS pg_catalog.text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT %s FROM %s b',
                  string_agg(CASE WHEN pc.relation IS NULL THEN format('b.%I', att.attname)
                                  ELSE shred._open_sql(pc, format('b.%I', att.attname), shred._subject_sql(t, 'b'))
                                       || format(' AS %I', att.attname) END,
                             ', ' ORDER BY att.attnum),
                  tbl)
      FROM shred.protected_table t
      JOIN pg_attribute att ON att.attrelid = t.relation AND att.attnum > 0 AND NOT att.attisdropped
      LEFT JOIN shred.protected_column pc ON pc.relation = t.relation AND pc.column_name = att.attname
     WHERE t.relation = tbl
       AND att.attname NOT IN (SELECT c.blind_index_column FROM shred.protected_column c
                                WHERE c.relation = tbl AND c.blind_index_column IS NOT NULL)
$$;
COMMENT ON FUNCTION shred._select_plain(pg_catalog.regclass) IS
    'Internal: the SELECT (alias b) that shows a protected table in plaintext: the body of its view.';

-- The value of the subject column (as text) of the rows of `subject` in table t, or NULL when
-- no row of t can belong to it (other prefix, or no text form of the column's type). Lets the
-- subject-rights functions filter by the subject column, which an index serves.
CREATE FUNCTION shred._subject_key(t shred.protected_table, subject pg_catalog.text)
    RETURNS pg_catalog.text
    LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rest text;
    typ regtype;
BEGIN
    IF NOT starts_with(subject, t.subject_prefix) THEN
        RETURN NULL;
    END IF;
    rest := substr(subject, length(t.subject_prefix) + 1);
    SELECT att.atttypid INTO typ FROM pg_attribute att
     WHERE att.attrelid = t.relation AND att.attname = t.subject_column AND NOT att.attisdropped;
    RETURN CASE
        WHEN typ IN ('text'::regtype, 'character varying'::regtype) THEN rest
        WHEN typ = 'smallint'::regtype AND rest ~ '^-?[0-9]{1,5}$' AND rest::numeric BETWEEN -32768 AND 32767 THEN rest
        WHEN typ = 'integer'::regtype AND rest ~ '^-?[0-9]{1,10}$' AND rest::numeric BETWEEN -2147483648 AND 2147483647 THEN rest
        WHEN typ = 'bigint'::regtype AND rest ~ '^-?[0-9]{1,19}$' AND rest::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN rest
        WHEN typ = 'numeric'::regtype AND rest ~ '^(NaN|-?Infinity|-?[0-9]+(\.[0-9]+)?)$' THEN rest
        WHEN typ = 'uuid'::regtype AND rest ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN rest
    END;
END
$$;
COMMENT ON FUNCTION shred._subject_key(shred.protected_table, pg_catalog.text) IS
    'Internal: the subject column''s text value of the rows of a data subject in a protected table, NULL when none can belong to it.';

-----------------------------------------------------------------------------------------------
-- The view, and protect / unprotect / set_tombstone / refresh_view
-----------------------------------------------------------------------------------------------
-- (Re)create the plaintext view of a protected table from the catalog, as the table's owner:
-- CREATE OR REPLACE (grants stay), the table's column defaults and identity sequences copied
-- to it, and pg_shred's INSTEAD OF INSERT OR UPDATE trigger. Callers hold the authorisation.
CREATE FUNCTION shred._refresh_view(tbl pg_catalog.regclass, target pg_catalog.text)
    RETURNS pg_catalog.regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    v regclass;
BEGIN
    -- security_invoker: readers need their own privileges on the table
    PERFORM shred._as_table_owner(tbl, format('CREATE OR REPLACE VIEW %s WITH (security_invoker = true) AS %s',
                                              target, shred._select_plain(tbl)));
    v := target::regclass;
    FOR a IN
        SELECT att.attname, pg_get_expr(d.adbin, d.adrelid) AS def
          FROM pg_attribute att JOIN pg_attrdef d ON d.adrelid = att.attrelid AND d.adnum = att.attnum
         WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped AND att.attgenerated = ''
           AND NOT EXISTS (SELECT FROM shred.protected_column pc WHERE pc.relation = tbl AND pc.column_name = att.attname)
    LOOP
        PERFORM shred._as_table_owner(tbl, format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s', v, a.attname, a.def));
    END LOOP;
    -- identity columns: the view draws the value, so the trigger knows it (e.g. the subject)
    FOR a IN
        SELECT att.attname, pg_get_serial_sequence(tbl::text, att.attname) AS seq
          FROM pg_attribute att
         WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped AND att.attidentity <> ''
    LOOP
        PERFORM shred._as_table_owner(tbl, format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT pg_catalog.nextval(%L::pg_catalog.regclass)', v, a.attname, a.seq));
    END LOOP;
    -- INSERT and UPDATE only: DELETE is PostgreSQL's own (the view is automatically updatable)
    IF EXISTS (SELECT FROM pg_trigger tg WHERE tg.tgrelid = v AND tg.tgname = 'shred_write') THEN
        PERFORM shred._as_table_owner(tbl, format('DROP TRIGGER shred_write ON %s', v));
    END IF;
    PERFORM shred._as_table_owner(tbl, format('CREATE TRIGGER shred_write INSTEAD OF INSERT OR UPDATE ON %s
                                               FOR EACH ROW EXECUTE FUNCTION shred.protected_view_write()', v));
    PERFORM shred._as_table_owner(tbl, format('COMMENT ON VIEW %s IS %L', v,
        'Plaintext view of protected table ' || shred._qualified(tbl) || ' (pg_shred).'
        || coalesce(' Equality on a protected column decrypts every row; look rows up by value with: '
                    || (SELECT string_agg(format('WHERE (%1$s) IN (SELECT %1$s FROM %2$s WHERE %3$I IN (SELECT shred.blind_match($1, %4$L, %5$L)))',
                                                 pk.cols, shred._qualified(tbl), pc.blind_index_column, pc.context, pc.normalization),
                                          '; or ' ORDER BY pc.column_name)
                          FROM shred.protected_column pc,
                               (SELECT string_agg(quote_ident(pa.attname), ', ' ORDER BY pk_col.ord) AS cols
                                  FROM pg_index ix, unnest(ix.indkey::int2[]) WITH ORDINALITY pk_col(attnum, ord), pg_attribute pa
                                 WHERE ix.indrelid = tbl AND ix.indisprimary AND pa.attrelid = tbl AND pa.attnum = pk_col.attnum) pk
                         WHERE pc.relation = tbl AND pc.blind_index_column IS NOT NULL) || '.', '')));
    RETURN v;
END
$$;
COMMENT ON FUNCTION shred._refresh_view(pg_catalog.regclass, pg_catalog.text) IS
    'Internal: (re)create the plaintext view of a protected table and its trigger, as the table''s owner.';

-- Refuse what a protected table must not have: row-level security (its policies would run as
-- the owner's code in every role's reads), and changed types of its subject, protected or
-- blind-index columns.
CREATE FUNCTION shred._validate(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    bad text;
BEGIN
    SELECT * INTO t FROM shred.protected_table p WHERE p.relation = tbl;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF (SELECT c.relrowsecurity FROM pg_class c WHERE c.oid = tbl) THEN
        RAISE EXCEPTION 'pg_shred: protected table % cannot have row-level security', tbl
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Its policies are its owner''s code: pg_shred''s subject-rights functions would run them with other roles'' rights.',
                  HINT = 'Grant access through views or privileges instead.';
    END IF;
    SELECT format('the subject column %I has type %s', t.subject_column, format_type(att.atttypid, NULL)) INTO bad
      FROM pg_attribute att
     WHERE att.attrelid = tbl AND att.attname = t.subject_column AND NOT att.attisdropped
       AND att.atttypid NOT IN ('text'::regtype, 'character varying'::regtype, 'smallint'::regtype, 'integer'::regtype,
                                'bigint'::regtype, 'numeric'::regtype, 'uuid'::regtype);
    IF bad IS NULL THEN
        SELECT format('column %I has type %s, not shred.sealed', pc.column_name, format_type(att.atttypid, NULL)) INTO bad
          FROM shred.protected_column pc
          JOIN pg_attribute att ON att.attrelid = tbl AND att.attname = pc.column_name AND NOT att.attisdropped
         WHERE pc.relation = tbl AND att.atttypid <> 'shred.sealed'::regtype
         LIMIT 1;
    END IF;
    IF bad IS NULL THEN
        SELECT format('blind-index column %I has type %s, not bytea', pc.blind_index_column, format_type(att.atttypid, NULL)) INTO bad
          FROM shred.protected_column pc
          JOIN pg_attribute att ON att.attrelid = tbl AND att.attname = pc.blind_index_column AND NOT att.attisdropped
         WHERE pc.relation = tbl AND att.atttypid <> 'bytea'::regtype
         LIMIT 1;
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'pg_shred: in protected table %, %', tbl, bad
            USING ERRCODE = 'feature_not_supported', HINT = 'Call shred.unprotect() first.';
    END IF;
END
$$;
COMMENT ON FUNCTION shred._validate(pg_catalog.regclass) IS
    'Internal: refuse row-level security and changed column types on a protected table.';

CREATE FUNCTION shred._protect(
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
           OR EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = tbl AND a.attnum = ANY (k.conkey)) THEN
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
COMMENT ON FUNCTION shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text) IS
    'Internal: the body of shred.protect (writes the catalog; every change to the table as its owner).';

CREATE FUNCTION shred.protect(
    tbl pg_catalog.regclass,
    subject_column pg_catalog.name,
    columns pg_catalog.name[],
    searchable pg_catalog.name[] DEFAULT '{}',
    subject_prefix pg_catalog.text DEFAULT '',
    view_name pg_catalog.name DEFAULT NULL,
    normalization pg_catalog.text DEFAULT 'exact')
    RETURNS pg_catalog.regclass
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._protect(shred._authorize(tbl), subject_column, columns, searchable, subject_prefix, view_name, normalization) $$;
COMMENT ON FUNCTION shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text) IS
    'Protect columns of a table whose owner''s privileges you have: seal every existing value in place (one rewrite; subject = subject_prefix || subject_column, AAD context = ''<table>.<column>'' bound to the row''s subject), keep a row-token column <column>_bidx with an index for each searchable column, index the subject column, and create the view <table>_plain (or view_name) that shows plaintext with the original types and accepts INSERT, UPDATE and DELETE. Everything on the table runs as its owner (security-restricted), who needs shred_writer. Needs a primary key; refuses row-level security; protected columns must have no index, constraint or default. Returns the view.';

CREATE FUNCTION shred._unprotect(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    c shred.protected_column;
    alters text[] := '{}';
BEGIN
    PERFORM shred._authorized(tbl);
    SELECT * INTO t FROM shred.protected_table p WHERE p.relation = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: table % is not protected', tbl USING ERRCODE = 'undefined_object';
    END IF;
    FOR c IN SELECT * FROM shred.protected_column pc WHERE pc.relation = tbl LOOP
        alters := alters || format('ALTER COLUMN %I TYPE %s USING %s', c.column_name,
                                   format_type(c.plain_type, c.plain_typmod),
                                   shred._open_sql(c, format('%I', c.column_name), shred._subject_sql(t, NULL)));
        IF c.blind_index_column IS NOT NULL THEN
            alters := alters || format('DROP COLUMN %I', c.blind_index_column);
        END IF;
    END LOOP;
    -- forgotten first, so that dropping the view is not refused
    DELETE FROM shred.protected_column pc WHERE pc.relation = tbl;
    DELETE FROM shred.protected_table p WHERE p.relation = tbl;
    PERFORM shred._as_table_owner(tbl, format('DROP VIEW %s', t.view));
    PERFORM shred._as_table_owner(tbl, format('ALTER TABLE %s %s', tbl, array_to_string(alters, ', ')));
END
$$;
COMMENT ON FUNCTION shred._unprotect(pg_catalog.regclass) IS 'Internal: the body of shred.unprotect.';

CREATE FUNCTION shred.unprotect(tbl pg_catalog.regclass)
    RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._unprotect(shred._authorize(tbl)) $$;
COMMENT ON FUNCTION shred.unprotect(pg_catalog.regclass) IS
    'Undo shred.protect: drop the view and the row-token columns, and open every protected value back into its original type (its tombstone, or NULL, where the data subject was erased). Runs as the table''s owner, who needs shred_reader.';

CREATE FUNCTION shred._set_tombstone(tbl pg_catalog.regclass, column_name pg_catalog.name, tombstone pg_catalog.text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM shred._authorized(tbl);
    UPDATE shred.protected_column pc SET tombstone = _set_tombstone.tombstone
     WHERE pc.relation = tbl AND pc.column_name = _set_tombstone.column_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_shred: column % of table % is not protected', quote_ident(column_name), tbl
            USING ERRCODE = 'undefined_column';
    END IF;
    PERFORM shred._refresh_view(tbl, (SELECT shred._qualified(p.view) FROM shred.protected_table p WHERE p.relation = tbl));
END
$$;
COMMENT ON FUNCTION shred._set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text) IS 'Internal: the body of shred.set_tombstone.';

CREATE FUNCTION shred.set_tombstone(tbl pg_catalog.regclass, column_name pg_catalog.name, tombstone pg_catalog.text)
    RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._set_tombstone(shred._authorize(tbl), column_name, tombstone) $$;
COMMENT ON FUNCTION shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text) IS
    'Set what the plaintext view shows in a protected column once its data subject is erased: NULL (the default) or a constant such as ''[erased]'' (cast to the column''s type).';

CREATE FUNCTION shred._refresh_view_authorized(tbl pg_catalog.regclass)
    RETURNS pg_catalog.regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM shred._authorized(tbl);
    IF NOT EXISTS (SELECT FROM shred.protected_table p WHERE p.relation = tbl) THEN
        RAISE EXCEPTION 'pg_shred: table % is not protected', tbl USING ERRCODE = 'undefined_object';
    END IF;
    RETURN shred._refresh_view(tbl, (SELECT shred._qualified(p.view) FROM shred.protected_table p WHERE p.relation = tbl));
END
$$;
COMMENT ON FUNCTION shred._refresh_view_authorized(pg_catalog.regclass) IS 'Internal: the body of shred.refresh_view.';

CREATE FUNCTION shred.refresh_view(tbl pg_catalog.regclass)
    RETURNS pg_catalog.regclass
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT shred._refresh_view_authorized(shred._authorize(tbl)) $$;
COMMENT ON FUNCTION shred.refresh_view(pg_catalog.regclass) IS
    'Re-create the plaintext view of a protected table from the catalog (CREATE OR REPLACE: grants stay), e.g. to show a column added to the table since.';

-----------------------------------------------------------------------------------------------
-- Subject rights: footprint, export, check
-----------------------------------------------------------------------------------------------
-- Per table, in C (src/protect/rights.rs): read the table as its owner, security-restricted;
-- open as the caller. A table the caller cannot SELECT is skipped with a NOTICE.
CREATE FUNCTION shred._export_rows(tbl pg_catalog.regclass, subject_key pg_catalog.text, subject pg_catalog.text)
    RETURNS pg_catalog.jsonb
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_export_rows_wrapper';
COMMENT ON FUNCTION shred._export_rows(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) IS
    'Internal (export_subject): the rows of a data subject in one protected table as its view shows them, as a jsonb array; NULL when none or skipped.';
CREATE FUNCTION shred._footprint_rows(tbl pg_catalog.regclass, subject_key pg_catalog.text, subject pg_catalog.text)
    RETURNS TABLE (column_name pg_catalog.text, row_count pg_catalog.int8, value_count pg_catalog.int8, erased pg_catalog.bool)
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_footprint_rows_wrapper';
COMMENT ON FUNCTION shred._footprint_rows(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) IS
    'Internal (subject_footprint): per protected column of one table, the rows and values of a data subject and whether they are erased.';
CREATE FUNCTION shred._check_rows(tbl pg_catalog.regclass)
    RETURNS TABLE (column_name pg_catalog.text, problem pg_catalog.text, value_count pg_catalog.int8)
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', '_check_rows_wrapper';
COMMENT ON FUNCTION shred._check_rows(pg_catalog.regclass) IS
    'Internal (check): per protected column of one table, values that do not open, whose DEK is missing without an erasure record, and that are erased.';

CREATE FUNCTION shred.subject_footprint(subject pg_catalog.text)
    RETURNS TABLE (relation pg_catalog.regclass, column_name pg_catalog.name, row_count pg_catalog.int8, value_count pg_catalog.int8, erased pg_catalog.bool)
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.relation, f.column_name::name, f.row_count, f.value_count, f.erased
      FROM shred.protected_table p
     CROSS JOIN LATERAL shred._footprint_rows(p.relation, shred._subject_key(p, subject), subject) f
     WHERE shred._subject_key(p, subject) IS NOT NULL
     ORDER BY p.relation::text, f.column_name
$$;
COMMENT ON FUNCTION shred.subject_footprint(pg_catalog.text) IS
    'Every protected table and column holding values of a data subject: rows of the subject, non-NULL values, and whether they are erased. Each table is read as its owner (security-restricted; an index scan on the subject column) for a caller who may SELECT it; tables it may not read are skipped with a NOTICE.';

CREATE FUNCTION shred.export_subject(subject pg_catalog.text)
    RETURNS pg_catalog.jsonb
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN count(x.rows) > 0 THEN
               jsonb_build_object('subject', subject, 'exported_at', now(),
                                  'tables', jsonb_object_agg(x.relation::text, x.rows) FILTER (WHERE x.rows IS NOT NULL))
           END
      FROM (SELECT p.relation, shred._export_rows(p.relation, shred._subject_key(p, subject), subject) AS rows
              FROM shred.protected_table p
             WHERE shred._subject_key(p, subject) IS NOT NULL) x
$$;
COMMENT ON FUNCTION shred.export_subject(pg_catalog.text) IS
    'All rows of a data subject in every protected table, decrypted as the plaintext views show them (erased values as their tombstone), as jsonb {"subject", "exported_at", "tables": {"<table>": [rows]}}; NULL when there is none. Each table is read as its owner (security-restricted), so none of its owner''s code runs with the caller''s rights; values are opened with the caller''s (needs shred_reader); tables the caller may not SELECT are skipped with a NOTICE.';

CREATE FUNCTION shred.check()
    RETURNS TABLE (relation pg_catalog.regclass, column_name pg_catalog.name, problem pg_catalog.text, value_count pg_catalog.int8)
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.relation, c.column_name::name, c.problem, c.value_count
      FROM shred.protected_table p
     CROSS JOIN LATERAL shred._check_rows(p.relation) c
     ORDER BY p.relation::text, c.column_name,
              array_position(ARRAY['does not open', 'DEK missing (not erased)', 'erased'], c.problem)
$$;
COMMENT ON FUNCTION shred.check() IS
    'Scan every protected column: values that do not open (altered or misplaced envelope, a value sealed under another subject''s DEK, wrong root key), values whose DEK is missing without an erasure record, and values whose data subject was erased, with counts. Each table is read as its owner (security-restricted) for a caller who may SELECT it; needs shred_admin.';

-----------------------------------------------------------------------------------------------
-- Event triggers: follow renames and drops, refuse what a protected table must not become
-----------------------------------------------------------------------------------------------
-- After ALTER TABLE on a protected table: follow a column rename in the catalog and the view,
-- then refuse row-level security and changed column types (the ALTER is rolled back).
CREATE FUNCTION shred._follow_alter()
    RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cmd record;
    t shred.protected_table;
    new_name name;
    old_name name;
BEGIN
    FOR cmd IN SELECT DISTINCT d.objid, d.objsubid, d.object_type FROM pg_event_trigger_ddl_commands() d
                WHERE d.command_tag = 'ALTER TABLE' AND d.object_type IN ('table', 'table column') LOOP
        SELECT * INTO t FROM shred.protected_table p WHERE p.relation = cmd.objid;
        CONTINUE WHEN NOT FOUND;
        IF cmd.object_type = 'table column' THEN
            SELECT att.attname INTO new_name FROM pg_attribute att WHERE att.attrelid = cmd.objid AND att.attnum = cmd.objsubid;
            IF new_name IS NOT NULL THEN
                -- the catalog entry whose name no longer exists is the renamed column
                UPDATE shred.protected_table p SET subject_column = new_name
                 WHERE p.relation = t.relation
                   AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = p.relation AND att.attname = p.subject_column AND NOT att.attisdropped);
                UPDATE shred.protected_column pc SET column_name = new_name
                 WHERE pc.relation = t.relation
                   AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = pc.relation AND att.attname = pc.column_name AND NOT att.attisdropped);
                UPDATE shred.protected_column pc SET blind_index_column = new_name
                 WHERE pc.relation = t.relation AND pc.blind_index_column IS NOT NULL
                   AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = pc.relation AND att.attname = pc.blind_index_column AND NOT att.attisdropped);
                -- the view column that no longer matches a column of the table takes the new name
                old_name := NULL;
                SELECT va.attname INTO old_name FROM pg_attribute va
                 WHERE va.attrelid = t.view AND va.attnum > 0
                   AND NOT EXISTS (SELECT FROM pg_attribute ba WHERE ba.attrelid = t.relation AND ba.attname = va.attname AND NOT ba.attisdropped);
                IF old_name IS NOT NULL THEN
                    PERFORM shred._as_table_owner(t.relation, format('ALTER VIEW %s RENAME COLUMN %I TO %I', t.view, old_name, new_name));
                END IF;
            END IF;
        END IF;
        PERFORM shred._validate(t.relation);
    END LOOP;
END
$$;
COMMENT ON FUNCTION shred._follow_alter() IS
    'Event trigger: after ALTER TABLE on a protected table, follows column renames in the catalog and the view, and refuses row-level security and changed types of its subject, protected or row-token columns.';
CREATE EVENT TRIGGER pg_shred_follow_alter ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION shred._follow_alter();

-- DROP TABLE of a protected table forgets its protection; dropping only its plaintext view, or
-- one of its subject, protected or row-token columns, is refused.
CREATE FUNCTION shred._follow_drops()
    RETURNS event_trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t shred.protected_table;
    dropped oid[];
BEGIN
    SELECT array_agg(d.objid) INTO dropped FROM pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0;
    FOR t IN SELECT p.* FROM shred.protected_table p
              WHERE p.relation IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() d WHERE d.classid = 'pg_class'::regclass)
                 OR p.view = ANY (dropped) LOOP
        IF t.relation = ANY (dropped) THEN
            DELETE FROM shred.protected_column pc WHERE pc.relation = t.relation;
            DELETE FROM shred.protected_table p WHERE p.relation = t.relation;
        ELSIF t.view = ANY (dropped) THEN
            RAISE EXCEPTION 'pg_shred: this would drop the plaintext view of protected table %', t.relation
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Call shred.unprotect() to turn the table back into plain columns, or drop the table.';
        ELSIF EXISTS (SELECT FROM (SELECT t.subject_column AS n
                                   UNION ALL SELECT pc.column_name FROM shred.protected_column pc WHERE pc.relation = t.relation
                                   UNION ALL SELECT pc.blind_index_column FROM shred.protected_column pc WHERE pc.relation = t.relation) c
                       WHERE c.n IS NOT NULL
                         AND NOT EXISTS (SELECT FROM pg_attribute att WHERE att.attrelid = t.relation AND att.attname = c.n AND NOT att.attisdropped)) THEN
            RAISE EXCEPTION 'pg_shred: this would drop a protected, subject or row-token column of table %', t.relation
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Call shred.unprotect() first.';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION shred._follow_drops() IS
    'Event trigger: DROP TABLE of a protected table removes its catalog rows; dropping only its plaintext view, or a protected, subject or row-token column, is refused.';
CREATE EVENT TRIGGER pg_shred_follow_drops ON sql_drop
    EXECUTE FUNCTION shred._follow_drops();

-----------------------------------------------------------------------------------------------
-- Privileges of the protected-table layer (the roles are created by the 0.2.0 script)
-----------------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION
    shred._open_row(shred.sealed, pg_catalog.text, pg_catalog.text, anyelement),
    shred.blind_match(pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text),
    shred._ensure_blind_index_key(pg_catalog.text),
    shred._authorize(pg_catalog.regclass),
    shred._authorized(pg_catalog.regclass),
    shred._as_table_owner(pg_catalog.regclass, pg_catalog.text),
    shred._rebuild_row_tokens(pg_catalog.regclass),
    shred._kind_oid(pg_catalog.regtype),
    shred._qualified(pg_catalog.regclass),
    shred._subject_sql(shred.protected_table, pg_catalog.text),
    shred._open_sql(shred.protected_column, pg_catalog.text, pg_catalog.text),
    shred._select_plain(pg_catalog.regclass),
    shred._subject_key(shred.protected_table, pg_catalog.text),
    shred._export_rows(pg_catalog.regclass, pg_catalog.text, pg_catalog.text),
    shred._footprint_rows(pg_catalog.regclass, pg_catalog.text, pg_catalog.text),
    shred._check_rows(pg_catalog.regclass),
    shred._refresh_view(pg_catalog.regclass, pg_catalog.text),
    shred._validate(pg_catalog.regclass),
    shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
    shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
    shred._unprotect(pg_catalog.regclass),
    shred.unprotect(pg_catalog.regclass),
    shred._set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred._refresh_view_authorized(pg_catalog.regclass),
    shred.refresh_view(pg_catalog.regclass),
    shred.subject_footprint(pg_catalog.text),
    shred.export_subject(pg_catalog.text),
    shred.check(),
    shred._follow_alter(),
    shred._follow_drops()
FROM PUBLIC;
-- The views' trigger: refuses any call outside a trigger, seals only for roles that may seal
-- (EXECUTE on shred.seal), and writes with the writer's rights. Owners need it to create the
-- trigger.
GRANT EXECUTE ON FUNCTION shred.protected_view_write() TO PUBLIC;
-- Readers of the views open values; lookups compute row tokens.
GRANT EXECUTE ON FUNCTION shred._open_row(shred.sealed, pg_catalog.text, pg_catalog.text, anyelement) TO shred_reader;
-- Lookups are for readers only: a writer could otherwise compare shred.blind_token(subject, v)
-- with shred.blind_match(v) and learn which subject holds v.
GRANT EXECUTE ON FUNCTION shred.blind_match(pg_catalog.text, pg_catalog.text, pg_catalog.text) TO shred_reader;
GRANT EXECUTE ON FUNCTION shred.blind_token(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.text) TO shred_writer;
-- Who changes protection (the implementations check ownership and validate everything).
GRANT EXECUTE ON FUNCTION
    shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
    shred._protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text),
    shred.unprotect(pg_catalog.regclass),
    shred._unprotect(pg_catalog.regclass),
    shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred._set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text),
    shred.refresh_view(pg_catalog.regclass),
    shred._refresh_view_authorized(pg_catalog.regclass),
    shred._authorize(pg_catalog.regclass)
TO shred_admin;
-- Subject rights (they read the tables with the caller's rights).
GRANT EXECUTE ON FUNCTION
    shred.subject_footprint(pg_catalog.text),
    shred._footprint_rows(pg_catalog.regclass, pg_catalog.text, pg_catalog.text),
    shred._subject_key(shred.protected_table, pg_catalog.text)
TO shred_reader, shred_eraser, shred_admin;
GRANT EXECUTE ON FUNCTION shred.export_subject(pg_catalog.text), shred._export_rows(pg_catalog.regclass, pg_catalog.text, pg_catalog.text) TO shred_reader;
GRANT EXECUTE ON FUNCTION shred.check(), shred._check_rows(pg_catalog.regclass) TO shred_admin;
