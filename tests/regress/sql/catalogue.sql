-- Pins down pg_shred's catalogue, and that an upgrade reaches exactly the same one as a fresh
-- install: the listing of a fresh install of 0.7.0 (every function with its labels, arguments
-- and defaults, and its body's md5 or its C symbol; the type; tables with their columns,
-- options, indexes and constraints; the sequence; the views' columns and their definitions' md5
-- (qualifiers left out);
-- triggers; event triggers; privileges apart from the owner's; comments (md5); configuration
-- tables; and whether each is a member of the extension), then, for each released version
-- (0.1.0, 0.2.0, 0.3.0, 0.4.0, 0.5.0, 0.6.0), the rows by which the catalogue after CREATE EXTENSION
-- pg_shred VERSION '<it>' and ALTER EXTENSION pg_shred UPDATE differs from the fresh one:
-- none. Runs in a database of its own (pg_shred_regress_catalogue), dropped at the end.
SELECT current_database() AS launch_db \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS pg_shred_regress_catalogue WITH (FORCE);
CREATE DATABASE pg_shred_regress_catalogue;
\c pg_shred_regress_catalogue
SET client_min_messages = warning;
CREATE SCHEMA regress;

-- A grantee's name: PUBLIC for grantee 0, '*' appended when it may grant the privilege on.
CREATE FUNCTION regress.grantee(oid, boolean) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN $1 = 0 THEN 'PUBLIC' ELSE $1::regrole::text END || CASE WHEN $2 THEN '*' ELSE '' END;
-- The privileges an ACL grants to roles other than the owner, e.g. 'PUBLIC: USAGE; shred_admin: SELECT'.
CREATE FUNCTION regress.privileges(acl aclitem[], owner oid) RETURNS text
    LANGUAGE sql STABLE
    RETURN (SELECT coalesce(string_agg(g, '; ' ORDER BY g COLLATE "C"), 'none')
              FROM (SELECT regress.grantee(a.grantee, a.is_grantable) || ': '
                           || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type COLLATE "C") AS g
                      FROM aclexplode(acl) a
                     WHERE a.grantee <> owner
                     GROUP BY a.grantee, a.is_grantable) x);

-- Everything of pg_shred in this database: the objects of schema shred and the extension's
-- members, one row each (object, definition), and the comments on them.
CREATE FUNCTION regress.catalogue(OUT object text, OUT definition text) RETURNS SETOF record
    LANGUAGE sql STABLE AS $$
WITH shred AS (
    SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'shred'
), ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extrelocatable, e.extnamespace, e.extconfig, e.extcondition
      FROM pg_extension e WHERE e.extname = 'pg_shred'
), member AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), rel AS (
    SELECT c.*, c.oid::regclass::text AS name,
           EXISTS (SELECT FROM member m WHERE m.classid = 'pg_class'::regclass AND m.objid = c.oid) AS is_member
      FROM pg_class c WHERE c.relnamespace = (SELECT shred.oid FROM shred)
)
SELECT 'extension ' || extname,
       format('version %s, schema %s, relocatable %s', extversion, extnamespace::regnamespace, extrelocatable)
  FROM ext
UNION ALL
SELECT 'configuration table ' || cfg::regclass::text, format('condition %L', coalesce(cond, ''))
  FROM ext, unnest(ext.extconfig, ext.extcondition) AS x(cfg, cond)
UNION ALL
SELECT 'schema ' || n.nspname,
       concat_ws(', ', CASE WHEN EXISTS (SELECT FROM member m WHERE m.classid = 'pg_namespace'::regclass AND m.objid = n.oid)
                            THEN 'member' ELSE 'NOT A MEMBER' END,
                 'privileges ' || regress.privileges(coalesce(n.nspacl, acldefault('n', n.nspowner)), n.nspowner))
  FROM pg_namespace n WHERE n.nspname = 'shred'
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate ' ELSE 'function ' END || p.oid::regprocedure::text,
       concat_ws(', ',
                 CASE WHEN EXISTS (SELECT FROM member m WHERE m.classid = 'pg_proc'::regclass AND m.objid = p.oid)
                      THEN 'member' ELSE 'NOT A MEMBER' END,
                 'arguments (' || pg_get_function_arguments(p.oid) || ')',
                 'returns ' || coalesce(pg_get_function_result(p.oid), 'nothing'),
                 'language ' || l.lanname,
                 CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
                 CASE WHEN p.proisstrict THEN 'strict' END,
                 'parallel ' || CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END,
                 CASE WHEN p.prosecdef THEN 'security definer' END,
                 CASE WHEN p.proleakproof THEN 'leakproof' END,
                 'cost ' || p.procost,
                 CASE WHEN p.proretset THEN 'rows ' || p.prorows END,
                 'settings ' || array_to_string(p.proconfig, '; '),
                 CASE WHEN l.lanname = 'c' THEN format('symbol %s in %s', p.prosrc, p.probin)
                      ELSE 'body md5 ' || md5(p.prosrc) END,
                 'privileges ' || regress.privileges(coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner))
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = (SELECT shred.oid FROM shred)
    OR p.oid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_proc'::regclass)
UNION ALL
-- Types of their own (not the row and array types that come with tables, views and types).
SELECT 'type ' || t.oid::regtype::text,
       concat_ws(', ',
                 CASE WHEN EXISTS (SELECT FROM member m WHERE m.classid = 'pg_type'::regclass AND m.objid = t.oid)
                      THEN 'member' ELSE 'NOT A MEMBER' END,
                 'kind ' || t.typtype::text, 'length ' || t.typlen, 'alignment ' || t.typalign::text, 'storage ' || t.typstorage::text,
                 'input ' || t.typinput::regproc::text, 'output ' || t.typoutput::regproc::text,
                 'receive ' || t.typreceive::regproc::text, 'send ' || t.typsend::regproc::text,
                 'privileges ' || regress.privileges(coalesce(t.typacl, acldefault('T', t.typowner)), t.typowner))
  FROM pg_type t
 WHERE t.typnamespace = (SELECT shred.oid FROM shred) AND t.typrelid = 0
   AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
UNION ALL
SELECT CASE r.relkind WHEN 'r' THEN 'table ' WHEN 'v' THEN 'view ' WHEN 'S' THEN 'sequence ' WHEN 'i' THEN 'index '
                      ELSE 'relation of kind ' || r.relkind::text || ' ' END || r.name,
       concat_ws(', ',
                 CASE WHEN r.relkind = 'i' THEN pg_get_indexdef(r.oid)
                      WHEN r.is_member THEN 'member' ELSE 'NOT A MEMBER' END,
                 CASE WHEN r.relkind NOT IN ('i', 'S') THEN
                      'columns (' || (SELECT string_agg(concat_ws(' ', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
                                                                 CASE WHEN a.attcollation <> ty.typcollation THEN 'collate ' || a.attcollation::regcollation::text END,
                                                                 CASE WHEN a.attnotnull THEN 'not null' END,
                                                                 CASE WHEN a.attidentity <> '' THEN 'identity ' || a.attidentity::text END,
                                                                 CASE WHEN a.attgenerated <> '' THEN 'generated ' || a.attgenerated::text END,
                                                                 'default ' || pg_get_expr(ad.adbin, ad.adrelid)), ', ' ORDER BY a.attnum)
                                        FROM pg_attribute a
                                        JOIN pg_type ty ON ty.oid = a.atttypid
                                        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                       WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped) || ')' END,
                 CASE WHEN r.relpersistence <> 'p' THEN 'persistence ' || r.relpersistence::text END,
                 'options ' || array_to_string(r.reloptions, ', '),
                 CASE WHEN r.relrowsecurity THEN 'row-level security' END,
                 CASE WHEN r.relforcerowsecurity THEN 'forced row-level security' END,
                 -- the definition without qualifiers of column and relation names: PostgreSQL 16 on
                 -- leaves out the relation of a column where the view reads one relation
                 CASE WHEN r.relkind = 'v' THEN 'definition md5 '
                      || md5(regexp_replace(pg_get_viewdef(r.oid), '\m[a-z_][a-z0-9_]*\.', '', 'g')) END,
                 CASE WHEN r.relkind = 'S' THEN
                      (SELECT format('%s from %s by %s in [%s, %s], cache %s%s', format_type(s.seqtypid, NULL), s.seqstart,
                                     s.seqincrement, s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ', cycles' END)
                         FROM pg_sequence s WHERE s.seqrelid = r.oid) END,
                 CASE WHEN r.relkind <> 'i' THEN
                      'privileges ' || regress.privileges(coalesce(r.relacl, acldefault(CASE r.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", r.relowner)), r.relowner) END,
                 (SELECT 'column privileges ' || string_agg(quote_ident(a.attname) || ' ' || regress.privileges(a.attacl, r.relowner), '; ' ORDER BY a.attnum)
                    FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND a.attacl IS NOT NULL))
  FROM rel r
UNION ALL
-- Constraints (not PostgreSQL 18's NOT NULL constraints: the columns say not null).
SELECT 'constraint ' || k.conname || ' on ' || k.conrelid::regclass::text, pg_get_constraintdef(k.oid)
  FROM pg_constraint k
 WHERE k.connamespace = (SELECT shred.oid FROM shred) AND k.contype <> 'n'
UNION ALL
SELECT 'trigger ' || tg.tgname || ' on ' || tg.tgrelid::regclass::text,
       pg_get_triggerdef(tg.oid) || ', enabled ' || tg.tgenabled::text
  FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
 WHERE c.relnamespace = (SELECT shred.oid FROM shred) AND NOT tg.tgisinternal
UNION ALL
SELECT 'event trigger ' || e.evtname,
       concat_ws(', ',
                 CASE WHEN EXISTS (SELECT FROM member m WHERE m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid)
                      THEN 'member' ELSE 'NOT A MEMBER' END,
                 'on ' || e.evtevent, 'executes ' || e.evtfoid::regprocedure::text, 'enabled ' || e.evtenabled::text,
                 'tags ' || array_to_string(e.evttags, ', '))
  FROM pg_event_trigger e
 WHERE e.evtfoid IN (SELECT p.oid FROM pg_proc p WHERE p.pronamespace = (SELECT shred.oid FROM shred))
    OR e.oid IN (SELECT m.objid FROM member m WHERE m.classid = 'pg_event_trigger'::regclass)
UNION ALL
SELECT 'policy ' || pol.polname || ' on ' || pol.polrelid::regclass::text,
       concat_ws(', ', 'command ' || pol.polcmd::text, CASE WHEN NOT pol.polpermissive THEN 'restrictive' END,
                 'roles ' || array_to_string(ARRAY(SELECT regress.grantee(r, false) FROM unnest(pol.polroles) r ORDER BY 1), ', '),
                 'using ' || pg_get_expr(pol.polqual, pol.polrelid), 'check ' || pg_get_expr(pol.polwithcheck, pol.polrelid))
  FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
 WHERE c.relnamespace = (SELECT shred.oid FROM shred)
UNION ALL
SELECT 'comment on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), 'md5 ' || md5(d.description)
  FROM pg_description d
 WHERE (d.classoid = 'pg_namespace'::regclass AND d.objoid = (SELECT shred.oid FROM shred))
    OR (d.classoid = 'pg_proc'::regclass AND d.objoid IN (SELECT p.oid FROM pg_proc p WHERE p.pronamespace = (SELECT shred.oid FROM shred)))
    OR (d.classoid = 'pg_type'::regclass AND d.objoid IN (SELECT t.oid FROM pg_type t WHERE t.typnamespace = (SELECT shred.oid FROM shred)))
    OR (d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT r.oid FROM rel r))
    OR (d.classoid = 'pg_constraint'::regclass AND d.objoid IN (SELECT k.oid FROM pg_constraint k WHERE k.connamespace = (SELECT shred.oid FROM shred)))
    OR (d.classoid = 'pg_event_trigger'::regclass)
    OR (d.classoid = 'pg_extension'::regclass AND d.objoid IN (SELECT ext.oid FROM ext))
$$;

-- A fresh install.
CREATE EXTENSION pg_shred;
SELECT * FROM regress.catalogue() ORDER BY object COLLATE "C";
CREATE TABLE regress.fresh AS SELECT * FROM regress.catalogue();

-- An install of each released version, updated: the rows only one of the catalogues has.
CREATE FUNCTION regress.upgrade_differences(from_version text, OUT side text, OUT object text, OUT definition text)
    RETURNS SETOF record
    LANGUAGE plpgsql AS $$
BEGIN
    DROP EXTENSION pg_shred;
    EXECUTE format('CREATE EXTENSION pg_shred VERSION %L', from_version);
    ALTER EXTENSION pg_shred UPDATE;
    RETURN QUERY
        SELECT 'upgraded', * FROM (SELECT * FROM regress.catalogue() EXCEPT ALL SELECT * FROM regress.fresh) u
        UNION ALL
        SELECT 'fresh', * FROM (SELECT * FROM regress.fresh EXCEPT ALL SELECT * FROM regress.catalogue()) f;
END
$$;
SELECT v AS from_version, d.*
  FROM unnest(ARRAY['0.1.0', '0.2.0', '0.3.0', '0.4.0', '0.5.0', '0.6.0']) WITH ORDINALITY AS x(v, n), regress.upgrade_differences(v) d
 ORDER BY x.n, d.object COLLATE "C", d.side;

\c :launch_db
DROP DATABASE pg_shred_regress_catalogue WITH (FORCE);
