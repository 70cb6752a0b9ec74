-- Pins down the labels and privileges of pg_shred's SQL surface, in a fresh install (0.7.0):
-- - every function and procedure of the extension (its members in pg_depend): signature,
--   result, language, volatility, strictness, parallel label, SECURITY DEFINER, settings (the
--   pinned search_path), and the roles other than its owner that may EXECUTE it (PUBLIC,
--   shred_reader, shred_writer, shred_eraser, shred_admin; '*' marks WITH GRANT OPTION);
-- - the privileges on the extension's schema, type, tables, views and sequences (and their
--   columns), again apart from the owner's, which depend on who ran CREATE EXTENSION; no other
--   kind of object is a member;
-- - the attributes of the roles the extension creates, and that they are members of nothing.
-- Runs in a database of its own (pg_shred_regress_labels), dropped at the end.
SELECT current_database() AS launch_db \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS pg_shred_regress_labels WITH (FORCE);
CREATE DATABASE pg_shred_regress_labels;
\c pg_shred_regress_labels
CREATE EXTENSION pg_shred;

-- A grantee's name: PUBLIC for grantee 0, '*' appended when it may grant the privilege on.
CREATE FUNCTION pg_temp.grantee(oid, boolean) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN $1 = 0 THEN 'PUBLIC' ELSE $1::regrole::text END || CASE WHEN $2 THEN '*' ELSE '' END;

-- Objects of the extension, by catalog.
CREATE TEMP VIEW member AS
SELECT d.classid, d.objid
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'pg_shred' AND d.deptype = 'e';

-- Every function and procedure.
SELECT p.oid::regprocedure AS function,
       CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' ELSE p.prokind::text END AS kind,
       pg_get_function_result(p.oid) AS returns,
       l.lanname AS language,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END AS volatility,
       CASE WHEN p.proisstrict THEN 'strict' ELSE '' END AS strict,
       CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END AS parallel,
       CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END AS security,
       coalesce(array_to_string(p.proconfig, '; '), '') AS settings,
       coalesce((SELECT string_agg(g, ', ' ORDER BY g COLLATE "C")
                   FROM (SELECT pg_temp.grantee(a.grantee, a.is_grantable) AS g
                           FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                          WHERE a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE') x), '') AS execute
  FROM member m
  JOIN pg_proc p ON p.oid = m.objid
  JOIN pg_language l ON l.oid = p.prolang
 WHERE m.classid = 'pg_proc'::regclass
 ORDER BY p.oid::regprocedure::text COLLATE "C";

-- Privileges on the schema, the type, and every table, view and sequence (and column).
WITH object AS (
    SELECT 'schema ' || n.nspname AS object, coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl, n.nspowner AS owner
      FROM member m JOIN pg_namespace n ON n.oid = m.objid
     WHERE m.classid = 'pg_namespace'::regclass
    UNION ALL
    SELECT 'type ' || t.oid::regtype::text, coalesce(t.typacl, acldefault('T', t.typowner)), t.typowner
      FROM member m JOIN pg_type t ON t.oid = m.objid
     WHERE m.classid = 'pg_type'::regclass
       -- not the row types of tables and views, nor array types (members since PostgreSQL 17)
       AND t.typrelid = 0 AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
    UNION ALL
    SELECT CASE c.relkind WHEN 'r' THEN 'table ' WHEN 'v' THEN 'view ' WHEN 'S' THEN 'sequence ' ELSE c.relkind::text || ' ' END
           || c.oid::regclass::text,
           coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner)), c.relowner
      FROM member m JOIN pg_class c ON c.oid = m.objid
     WHERE m.classid = 'pg_class'::regclass
    UNION ALL
    SELECT 'column ' || c.oid::regclass::text || '.' || quote_ident(att.attname), att.attacl, c.relowner
      FROM member m JOIN pg_class c ON c.oid = m.objid
      JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL
     WHERE m.classid = 'pg_class'::regclass
)
SELECT o.object,
       coalesce((SELECT string_agg(g, ', ' ORDER BY g COLLATE "C")
                   FROM (SELECT pg_temp.grantee(a.grantee, a.is_grantable) || ': ' || string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type COLLATE "C") AS g
                           FROM aclexplode(o.acl) a
                          WHERE a.grantee <> o.owner
                          GROUP BY a.grantee, a.is_grantable) x), '') AS privileges
  FROM object o
 ORDER BY o.object COLLATE "C";

-- Which member objects are neither functions nor the objects above (none: a new kind of
-- object needs its privileges pinned down here).
SELECT pg_describe_object(m.classid, m.objid, 0) AS other_member
  FROM member m
 WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_namespace'::regclass, 'pg_type'::regclass, 'pg_class'::regclass,
                         'pg_event_trigger'::regclass)
 ORDER BY pg_describe_object(m.classid, m.objid, 0) COLLATE "C";

-- The roles the extension creates (cluster-wide, kept by DROP EXTENSION): no login, no
-- attribute, no membership of any role.
SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
       r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil, r.rolconfig,
       ARRAY(SELECT g.roleid::regrole::text FROM pg_auth_members g WHERE g.member = r.oid ORDER BY g.roleid::regrole::text COLLATE "C") AS member_of
  FROM pg_roles r
 WHERE r.rolname IN ('shred_reader', 'shred_writer', 'shred_eraser', 'shred_admin')
 ORDER BY r.rolname COLLATE "C";

\c :launch_db
DROP DATABASE pg_shred_regress_labels WITH (FORCE);
