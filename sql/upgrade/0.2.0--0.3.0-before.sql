-- pg_shred 0.2.0 -> 0.3.0, part 1 of 3 (then sql/protect.sql, then 0.2.0--0.3.0-after.sql):
-- take apart what 0.2.0's protected-table layer had and 0.3.0 replaces. Tables protected under
-- 0.2.0 keep their catalog rows; part 3 rebuilds their views, triggers and row tokens.

-- The catalog is no longer writable by every role (0.2.0 let owners write their own rows under
-- row-level security): only pg_shred's functions write it now.
DROP POLICY readable ON shred.protected_table;
DROP POLICY readable ON shred.protected_column;
DROP POLICY table_owner ON shred.protected_table;
DROP POLICY table_owner ON shred.protected_column;
ALTER TABLE shred.protected_table DISABLE ROW LEVEL SECURITY;
ALTER TABLE shred.protected_column DISABLE ROW LEVEL SECURITY;
REVOKE INSERT, UPDATE, DELETE ON shred.protected_table, shred.protected_column FROM PUBLIC;
DROP FUNCTION shred.catalog_row_ok(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name[]);

-- Replaced by functions of the same names with new bodies or signatures (sql/protect.sql).
DROP EVENT TRIGGER pg_shred_follow_renames;
DROP FUNCTION shred.follow_renames();
DROP EVENT TRIGGER pg_shred_follow_drops;
DROP FUNCTION shred.follow_drops();
DROP FUNCTION shred.protect(pg_catalog.regclass, pg_catalog.name, pg_catalog.name[], pg_catalog.name[], pg_catalog.text, pg_catalog.name, pg_catalog.text);
DROP FUNCTION shred.unprotect(pg_catalog.regclass);
DROP FUNCTION shred.set_tombstone(pg_catalog.regclass, pg_catalog.name, pg_catalog.text);
DROP FUNCTION shred.refresh_view(pg_catalog.regclass, pg_catalog.text);
DROP FUNCTION shred.subject_footprint(pg_catalog.text);
DROP FUNCTION shred.export_subject(pg_catalog.text);
DROP FUNCTION shred.check();
DROP FUNCTION shred.select_plain(pg_catalog.regclass);
DROP FUNCTION shred.open_expr(shred.protected_column, shred.protected_table, pg_catalog.text);
DROP FUNCTION shred.subject_expr(shred.protected_table, pg_catalog.text);
DROP FUNCTION shred.qualifier(pg_catalog.text);
DROP FUNCTION shred.kind_opener(pg_catalog.text);

-- Internal helpers get internal names (the catalog's CHECK constraint follows the rename).
ALTER FUNCTION shred.sealing_kind(pg_catalog.regtype) RENAME TO _sealing_kind;
ALTER FUNCTION shred.kind_type(pg_catalog.text) RENAME TO _kind_type;
REVOKE ALL ON FUNCTION shred._sealing_kind(pg_catalog.regtype), shred._kind_type(pg_catalog.text)
    FROM shred_reader, shred_writer, shred_eraser, shred_admin;
