-- Hostile and malformed statements for `query_sql`, each with the outcome the loader must give.
--
-- An entry starts with a line `=== <category>`; its SQL is every line up to the next entry.
-- Categories: the guard's refusals (`sqlguard.Refusal`: syntax, multiple_statements, not_a_read,
-- other_catalog, file_access, forbidden_function, unsupported, too_large), `not_found` (an unknown table),
-- `truncated` (answered, rows cut by the row or byte cap) and `timeout` (stopped by the timer).
-- Placeholders: {catalog} the caller's catalog, {other} another tenant's catalog, {outside} a
-- directory outside the lakehouse that must stay empty, {deep} 5000 nested parentheses, {long}
-- more characters than the guard reads; the other {names} are statements too large to write here
-- (`GENERATED` in test_guard_corpus.py). Lines before the first entry are this comment.

=== multiple_statements
SELECT 1; SELECT 2
=== multiple_statements
SELECT * FROM orders; DROP TABLE orders
=== multiple_statements
SELECT 1;DELETE FROM orders
=== multiple_statements
select * from orders ; insert into orders values (1)
=== multiple_statements
SELECT 1; -- trailing comment
SELECT 2
=== multiple_statements
SELECT ';' AS a; SELECT 2
=== multiple_statements
SELECT 1 /* ; */; SELECT 2
=== multiple_statements
SELECT 1;

UPDATE orders SET n = 0
=== multiple_statements
WITH a AS (SELECT 1) SELECT * FROM a; TRUNCATE TABLE orders
=== multiple_statements
SELECT 1; COPY orders TO '{outside}/x.csv'
=== multiple_statements
SELECT 1; PRAGMA version
=== multiple_statements
SELECT 1; SET x = 1
=== multiple_statements
SELECT 1; USE CATALOG {other}
=== multiple_statements
SELECT 1; CALL sys.proc()
=== multiple_statements
SELECT 1; OPTIMIZE orders
=== multiple_statements
SELECT 1; VACUUM orders
=== multiple_statements
SELECT 1;;SELECT 2
=== multiple_statements
SELECT * FROM BRONZE.ORDERS; DROP TABLE BRONZE.ORDERS
=== multiple_statements
SELECT 1; LOAD httpfs
=== multiple_statements
SELECT 'a;b' ; CREATE TABLE x AS SELECT 1
=== not_a_read
DELETE FROM orders
=== not_a_read
delete from orders where true
=== not_a_read
DeLeTe FrOm orders
=== not_a_read
INSERT INTO orders VALUES (1)
=== not_a_read
INSERT INTO orders SELECT * FROM orders
=== not_a_read
INSERT OVERWRITE orders SELECT * FROM orders
=== not_a_read
INSERT OVERWRITE TABLE orders SELECT 1
=== not_a_read
INSERT INTO TABLE silver.clean SELECT * FROM clean
=== syntax
INSERT INTO DIRECTORY '{outside}/dir' SELECT 1
=== syntax
INSERT OVERWRITE DIRECTORY '{outside}/dir' USING parquet SELECT * FROM orders
=== not_a_read
UPDATE orders SET n = 1
=== not_a_read
UPDATE bronze.orders SET n = n + 1 WHERE n > 0
=== not_a_read
MERGE INTO orders t USING orders s ON t.n = s.n WHEN MATCHED THEN DELETE
=== not_a_read
MERGE INTO silver.clean AS t USING (SELECT 1 AS d) s ON t.d = s.d WHEN NOT MATCHED THEN INSERT *
=== not_a_read
DROP TABLE orders
=== not_a_read
DROP TABLE IF EXISTS bronze.orders
=== not_a_read
DROP SCHEMA bronze CASCADE
=== not_a_read
DROP VIEW gold.summary
=== not_a_read
DROP CATALOG {catalog} CASCADE
=== not_a_read
CREATE TABLE x AS SELECT * FROM orders
=== not_a_read
CREATE OR REPLACE TABLE silver.clean AS SELECT 1 AS n
=== not_a_read
CREATE VIEW gold.v AS SELECT * FROM orders
=== not_a_read
CREATE TEMPORARY VIEW v AS SELECT 1
=== not_a_read
CREATE SCHEMA evil
=== not_a_read
CREATE CATALOG evil
=== not_a_read
CREATE FUNCTION f() RETURNS INT RETURN 1
=== not_a_read
CREATE TABLE t USING parquet LOCATION '{outside}/t'
=== not_a_read
CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')
=== not_a_read
ALTER TABLE orders ADD COLUMN x INT
=== not_a_read
ALTER TABLE orders RENAME TO gone
=== not_a_read
ALTER TABLE orders SET TBLPROPERTIES ('delta.appendOnly' = 'true')
=== not_a_read
TRUNCATE TABLE orders
=== not_a_read
OPTIMIZE orders
=== not_a_read
OPTIMIZE orders ZORDER BY (n)
=== not_a_read
VACUUM orders RETAIN 0 HOURS
=== not_a_read
VACUUM bronze.orders
=== not_a_read
CACHE TABLE orders
=== not_a_read
CACHE LAZY TABLE c AS SELECT * FROM orders
=== not_a_read
UNCACHE TABLE orders
=== not_a_read
CLEAR CACHE
=== not_a_read
REFRESH TABLE orders
=== not_a_read
REFRESH '{outside}'
=== not_a_read
GRANT SELECT ON TABLE orders TO `someone`
=== not_a_read
GRANT ALL PRIVILEGES ON CATALOG {catalog} TO `x`
=== not_a_read
REVOKE SELECT ON TABLE orders FROM `someone`
=== not_a_read
USE CATALOG {other}
=== not_a_read
USE SCHEMA silver
=== not_a_read
USE {other}.bronze
=== not_a_read
SET spark.sql.ansi.enabled = false
=== not_a_read
SET enable_external_access = true
=== not_a_read
SET TIME ZONE 'UTC'
=== not_a_read
RESET
=== not_a_read
ANALYZE TABLE orders COMPUTE STATISTICS
=== not_a_read
MSCK REPAIR TABLE orders
=== syntax
RESTORE TABLE orders TO VERSION AS OF 0
=== not_a_read
COPY INTO orders FROM '{outside}' FILEFORMAT = CSV
=== not_a_read
COPY orders TO '{outside}/dump.csv'
=== not_a_read
COPY (SELECT * FROM orders) TO '{outside}/dump.parquet' (FORMAT parquet)
=== not_a_read
LOAD httpfs
=== not_a_read
INSTALL httpfs
=== not_a_read
CALL system.restart()
=== not_a_read
PRAGMA enable_profiling
=== not_a_read
PRAGMA database_list
=== not_a_read
PRAGMA threads = 1
=== not_a_read
WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone
=== not_a_read
WITH a AS (INSERT INTO orders VALUES (1) RETURNING *) SELECT * FROM a
=== not_a_read
WITH a AS (UPDATE orders SET n = 1 RETURNING n) SELECT * FROM a
=== not_a_read
WITH a AS (WITH b AS (DELETE FROM orders RETURNING *) SELECT * FROM b) SELECT * FROM a
=== not_a_read
SELECT * INTO copy FROM orders
=== not_a_read
SELECT n INTO TEMP t FROM orders
=== not_a_read
/* harmless */ DELETE FROM orders
=== not_a_read
-- a comment first
DROP TABLE orders
=== not_a_read
  	 DROP TABLE orders
=== not_a_read
BEGIN TRANSACTION
=== not_a_read
COMMIT
=== not_a_read
ROLLBACK
=== not_a_read
EXPLAIN SELECT 1
=== not_a_read
EXPLAIN ANALYZE DELETE FROM orders
=== not_a_read
EXECUTE IMMEDIATE 'DROP TABLE orders'
=== not_a_read
DECLARE VARIABLE x INT
=== not_a_read
ADD JAR '{outside}/evil.jar'
=== not_a_read
ADD FILE '/etc/passwd'
=== not_a_read
LIST '/etc'
=== not_a_read
TABLE orders
=== not_a_read
CHECKPOINT
=== not_a_read
SUMMARIZE orders
=== not_a_read
SELEC * FRM orders
=== not_a_read
DETACH other
=== not_a_read
SET GLOBAL threads = 1
=== not_a_read
RESET ALL
=== other_catalog
SELECT * FROM {other}.bronze.secret
=== other_catalog
SELECT * FROM `{other}`.`bronze`.`secret`
=== other_catalog
SELECT * FROM {OTHER}.BRONZE.SECRET
=== other_catalog
select * from {other}.silver.anything
=== other_catalog
SELECT * FROM orders JOIN {other}.bronze.secret s ON true
=== other_catalog
SELECT (SELECT count(*) FROM {other}.bronze.secret)
=== other_catalog
SELECT * FROM orders WHERE n IN (SELECT n FROM {other}.bronze.secret)
=== other_catalog
WITH x AS (SELECT * FROM {other}.bronze.secret) SELECT * FROM x
=== other_catalog
SELECT * FROM orders UNION ALL SELECT * FROM {other}.bronze.secret
=== other_catalog
SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM {other}.bronze.secret)
=== other_catalog
SELECT * FROM system.information_schema.tables
=== other_catalog
SELECT * FROM system.access.audit
=== other_catalog
SELECT * FROM system.billing.usage
=== other_catalog
SELECT * FROM information_schema.tables
=== other_catalog
SELECT * FROM {catalog}.information_schema.columns
=== other_catalog
SELECT * FROM {other}.information_schema.tables
=== other_catalog
SELECT * FROM samples.nyctaxi.trips
=== other_catalog
SELECT * FROM hive_metastore.default.x
=== other_catalog
SELECT * FROM main.default.x
=== other_catalog
SELECT * FROM default.orders
=== other_catalog
SELECT * FROM pg_catalog.pg_tables
=== other_catalog
SELECT * FROM memory.main.x
=== other_catalog
SELECT * FROM temp.orders
=== other_catalog
SELECT * FROM main.orders
=== other_catalog
SELECT * FROM system.orders
=== other_catalog
SELECT {other}.bronze.secret.n FROM orders
=== other_catalog
SHOW TABLES IN {other}.bronze
=== other_catalog
SHOW TABLES IN information_schema
=== other_catalog
DESCRIBE {other}.bronze.secret
=== other_catalog
DESCRIBE TABLE EXTENDED {other}.bronze.secret
=== other_catalog
SELECT * FROM orders o LEFT JOIN {other}.gold.summary g ON o.n = g.n
=== other_catalog
SELECT * FROM `{other}`.bronze.`secret` AS s
=== file_access
SELECT * FROM parquet.`/etc/passwd`
=== file_access
SELECT * FROM csv.`s3://bucket/key`
=== file_access
SELECT * FROM json.`/etc/passwd`
=== file_access
SELECT * FROM text.`/etc/passwd`
=== file_access
SELECT * FROM binaryFile.`/etc`
=== file_access
SELECT * FROM delta.`{outside}`
=== file_access
SELECT * FROM orc.`/x`
=== file_access
SELECT * FROM avro.`/x`
=== file_access
SELECT * FROM PARQUET.`/etc/passwd`
=== file_access
SELECT * FROM `/etc/passwd`
=== file_access
SELECT * FROM `s3://bucket/data`
=== file_access
SELECT * FROM 'http://example.com/x.csv'
=== file_access
SELECT * FROM '/etc/passwd'
=== file_access
SELECT * FROM `~/.ssh/id_rsa`
=== file_access
SELECT * FROM `C:\Windows\win.ini`
=== file_access
SELECT * FROM `file:///etc/passwd`
=== file_access
SELECT * FROM read_files('/etc/passwd')
=== file_access
SELECT * FROM read_files('s3://b/k', format => 'csv')
=== file_access
SELECT * FROM READ_FILES('/etc')
=== file_access
SELECT * FROM read_csv('/etc/passwd')
=== file_access
SELECT * FROM read_csv_auto('/etc/passwd')
=== file_access
SELECT * FROM read_parquet('{outside}/*.parquet')
=== file_access
SELECT * FROM read_json('/etc/x.json')
=== file_access
SELECT * FROM read_json_auto('/x')
=== file_access
SELECT * FROM read_ndjson('/x')
=== file_access
SELECT * FROM read_text('/etc/passwd')
=== file_access
SELECT * FROM read_blob('/etc/passwd')
=== file_access
SELECT read_text('/etc/passwd')
=== file_access
SELECT content FROM read_blob('/etc/shadow')
=== file_access
SELECT * FROM parquet_scan('/x')
=== file_access
SELECT * FROM parquet_metadata('/x')
=== file_access
SELECT * FROM parquet_schema('/x')
=== file_access
SELECT * FROM delta_scan('{outside}')
=== file_access
SELECT * FROM iceberg_scan('/x')
=== syntax
SELECT * FROM glob('/etc/*')
=== file_access
SELECT * FROM sniff_csv('/etc/passwd')
=== file_access
SELECT * FROM cloud_files('/x', 'csv')
=== file_access
SELECT * FROM read_kafka(bootstrapServers => 'x')
=== file_access
SELECT input_file_name() FROM orders
=== file_access
SELECT * FROM orders WHERE n IN (SELECT 1 FROM read_csv('/etc/passwd'))
=== file_access
WITH f AS (SELECT * FROM read_text('/etc/hosts')) SELECT * FROM f
=== file_access
SELECT * FROM orders, read_parquet('/x')
=== file_access
SELECT * FROM csv_scan('/x')
=== file_access
SELECT * FROM json_scan('/x')
=== file_access
sElEcT * fRoM ReAd_CsV('/etc/passwd')
=== file_access
FROM read_csv('/etc/passwd')
=== file_access
SELECT * FROM sqlite_scan('/x.db', 't')
=== file_access
SELECT * FROM postgres_scan('host=x', 'public', 't')
=== file_access
SELECT length(read_blob('{outside}/x')) FROM orders
=== forbidden_function
SELECT getenv('HOME')
=== forbidden_function
SELECT GETENV('PATH')
=== forbidden_function
SELECT current_setting('enable_external_access')
=== forbidden_function
SELECT * FROM duckdb_settings()
=== forbidden_function
SELECT * FROM duckdb_extensions()
=== forbidden_function
SELECT * FROM duckdb_tables()
=== forbidden_function
SELECT * FROM duckdb_secrets()
=== forbidden_function
SELECT * FROM duckdb_functions()
=== forbidden_function
SELECT * FROM duckdb_databases()
=== forbidden_function
SELECT * FROM pragma_database_list()
=== forbidden_function
SELECT * FROM pragma_table_info('orders')
=== forbidden_function
SELECT * FROM pragma_version()
=== forbidden_function
SELECT * FROM range(10)
=== forbidden_function
SELECT * FROM generate_series(1, 1000000000)
=== forbidden_function
SELECT * FROM query('SELECT 1')
=== forbidden_function
SELECT * FROM query_table('orders')
=== forbidden_function
SELECT * FROM which_secret('s3://x', 's3')
=== forbidden_function
SELECT load_extension('httpfs')
=== forbidden_function
SELECT secret('scope', 'key')
=== forbidden_function
SELECT reflect('java.lang.Runtime', 'getRuntime')
=== forbidden_function
SELECT java_method('java.lang.System', 'getenv', 'HOME')
=== forbidden_function
SELECT http_request('http://example.com')
=== forbidden_function
SELECT ai_query('model', 'hello')
=== forbidden_function
SELECT ai_generate_text('x', 'm')
=== forbidden_function
SELECT * FROM identifier('orders')
=== forbidden_function
SELECT * FROM mysql_query('x', 'SELECT 1')
=== forbidden_function
SELECT * FROM explode(array(1, 2))
=== forbidden_function
SELECT * FROM stack(2, 1, 2)
=== forbidden_function
SELECT checkpoint()
=== forbidden_function
SELECT * FROM test_all_types()
=== forbidden_function
SELECT * FROM orders WHERE n = (SELECT length(getenv('X')))
=== forbidden_function
SELECT * FROM orders ORDER BY getenv('x')
=== forbidden_function
SELECT current_setting('home_directory')
=== forbidden_function
SELECT to_json(duckdb_settings())
=== forbidden_function
SELECT * FROM duckdb_logs()
=== forbidden_function
SELECT n, duckdb_secrets() FROM orders
=== forbidden_function
SELECT set_config('x', 'y', false)
=== unsupported
SELECT * FROM orders VERSION AS OF 0
=== unsupported
SELECT * FROM orders TIMESTAMP AS OF '2020-01-01'
=== unsupported
SELECT * FROM orders@v1
=== unsupported
SELECT * FROM orders WHERE n = ?
=== unsupported
SELECT * FROM orders WHERE n = :n
=== unsupported
SELECT * FROM orders WHERE n = ${n}
=== unsupported
SELECT ${var}
=== unsupported
SHOW CATALOGS
=== unsupported
SHOW CREATE TABLE orders
=== unsupported
SHOW COLUMNS IN orders
=== unsupported
SHOW GRANTS ON orders
=== unsupported
SHOW FUNCTIONS
=== unsupported
DESCRIBE HISTORY orders
=== unsupported
DESCRIBE FUNCTION abs
=== unsupported
DESCRIBE SCHEMA bronze
=== unsupported
DESCRIBE SELECT 1
=== unsupported
SELECT * FROM `bronze.orders`
=== unsupported
SELECT * FROM `{other}.bronze.secret`
=== too_large
SELECT (((((((((((((((((((((((((1)))))))))))))))))))))))))
=== too_large
SELECT abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(abs(1))))))))))))))))))))))))))))))
=== too_large
SELECT CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN CASE WHEN true THEN 1 END END END END END END END END END END END END END END END END END END END END END END END END END
=== too_large
SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT (SELECT 1)))))))))))))))))))))))))
=== too_large
SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE EXISTS (SELECT 1 WHERE true)))))))))))))))))))))))))
=== too_large
SELECT array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(array(1)))))))))))))))))))))))))
=== too_large
SELECT coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(coalesce(1, 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2), 2)
=== too_large
SELECT NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (NOT (true)))))))))))))))))))))))))
=== too_large
SELECT named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', named_struct('a', 1)))))))))))))))))))))))))
=== too_large
SELECT 1::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int::int
=== too_large
SELECT - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - 1
=== too_large
SELECT v['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k']['k'] FROM orders
=== too_large
SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 UNION SELECT 1 
=== too_large
SELECT 1 FROM orders a0 LEFT JOIN orders a1 ON true LEFT JOIN orders a2 ON true LEFT JOIN orders a3 ON true LEFT JOIN orders a4 ON true LEFT JOIN orders a5 ON true LEFT JOIN orders a6 ON true LEFT JOIN orders a7 ON true LEFT JOIN orders a8 ON true LEFT JOIN orders a9 ON true LEFT JOIN orders a10 ON true LEFT JOIN orders a11 ON true LEFT JOIN orders a12 ON true LEFT JOIN orders a13 ON true LEFT JOIN orders a14 ON true LEFT JOIN orders a15 ON true LEFT JOIN orders a16 ON true LEFT JOIN orders a17 ON true LEFT JOIN orders a18 ON true LEFT JOIN orders a19 ON true LEFT JOIN orders a20 ON true LEFT JOIN orders a21 ON true LEFT JOIN orders a22 ON true LEFT JOIN orders a23 ON true LEFT JOIN orders a24 ON true LEFT JOIN orders a25 ON true LEFT JOIN orders a26 ON true LEFT JOIN orders a27 ON true LEFT JOIN orders a28 ON true LEFT JOIN orders a29 ON true LEFT JOIN orders a30 ON true LEFT JOIN orders a31 ON true LEFT JOIN orders a32 ON true LEFT JOIN orders a33 ON true LEFT JOIN orders a34 ON true LEFT JOIN orders a35 ON true LEFT JOIN orders a36 ON true LEFT JOIN orders a37 ON true LEFT JOIN orders a38 ON true LEFT JOIN orders a39 ON true LEFT JOIN orders a40 ON true LEFT JOIN orders a41 ON true LEFT JOIN orders a42 ON true LEFT JOIN orders a43 ON true LEFT JOIN orders a44 ON true LEFT JOIN orders a45 ON true LEFT JOIN orders a46 ON true LEFT JOIN orders a47 ON true LEFT JOIN orders a48 ON true LEFT JOIN orders a49 ON true LEFT JOIN orders a50 ON true LEFT JOIN orders a51 ON true LEFT JOIN orders a52 ON true LEFT JOIN orders a53 ON true LEFT JOIN orders a54 ON true LEFT JOIN orders a55 ON true LEFT JOIN orders a56 ON true LEFT JOIN orders a57 ON true LEFT JOIN orders a58 ON true LEFT JOIN orders a59 ON true LEFT JOIN orders a60 ON true LEFT JOIN orders a61 ON true LEFT JOIN orders a62 ON true LEFT JOIN orders a63 ON true LEFT JOIN orders a64 ON true LEFT JOIN orders a65 ON true LEFT JOIN orders a66 ON true LEFT JOIN orders a67 ON true LEFT JOIN orders a68 ON true LEFT JOIN orders a69 ON true
=== too_large
WITH w0 AS (SELECT 1), w1 AS (SELECT 1), w2 AS (SELECT 1), w3 AS (SELECT 1), w4 AS (SELECT 1), w5 AS (SELECT 1), w6 AS (SELECT 1), w7 AS (SELECT 1), w8 AS (SELECT 1), w9 AS (SELECT 1), w10 AS (SELECT 1), w11 AS (SELECT 1), w12 AS (SELECT 1), w13 AS (SELECT 1), w14 AS (SELECT 1), w15 AS (SELECT 1), w16 AS (SELECT 1), w17 AS (SELECT 1), w18 AS (SELECT 1), w19 AS (SELECT 1), w20 AS (SELECT 1), w21 AS (SELECT 1), w22 AS (SELECT 1), w23 AS (SELECT 1), w24 AS (SELECT 1), w25 AS (SELECT 1), w26 AS (SELECT 1), w27 AS (SELECT 1), w28 AS (SELECT 1), w29 AS (SELECT 1), w30 AS (SELECT 1), w31 AS (SELECT 1), w32 AS (SELECT 1), w33 AS (SELECT 1), w34 AS (SELECT 1), w35 AS (SELECT 1), w36 AS (SELECT 1), w37 AS (SELECT 1), w38 AS (SELECT 1), w39 AS (SELECT 1), w40 AS (SELECT 1), w41 AS (SELECT 1), w42 AS (SELECT 1), w43 AS (SELECT 1), w44 AS (SELECT 1), w45 AS (SELECT 1), w46 AS (SELECT 1), w47 AS (SELECT 1), w48 AS (SELECT 1), w49 AS (SELECT 1), w50 AS (SELECT 1), w51 AS (SELECT 1), w52 AS (SELECT 1), w53 AS (SELECT 1), w54 AS (SELECT 1), w55 AS (SELECT 1), w56 AS (SELECT 1), w57 AS (SELECT 1), w58 AS (SELECT 1), w59 AS (SELECT 1), w60 AS (SELECT 1), w61 AS (SELECT 1), w62 AS (SELECT 1), w63 AS (SELECT 1), w64 AS (SELECT 1), w65 AS (SELECT 1), w66 AS (SELECT 1), w67 AS (SELECT 1), w68 AS (SELECT 1), w69 AS (SELECT 1), w70 AS (SELECT 1), w71 AS (SELECT 1), w72 AS (SELECT 1), w73 AS (SELECT 1), w74 AS (SELECT 1), w75 AS (SELECT 1), w76 AS (SELECT 1), w77 AS (SELECT 1), w78 AS (SELECT 1), w79 AS (SELECT 1), w80 AS (SELECT 1), w81 AS (SELECT 1), w82 AS (SELECT 1), w83 AS (SELECT 1), w84 AS (SELECT 1), w85 AS (SELECT 1), w86 AS (SELECT 1), w87 AS (SELECT 1), w88 AS (SELECT 1), w89 AS (SELECT 1), w90 AS (SELECT 1), w91 AS (SELECT 1), w92 AS (SELECT 1), w93 AS (SELECT 1), w94 AS (SELECT 1), w95 AS (SELECT 1), w96 AS (SELECT 1), w97 AS (SELECT 1), w98 AS (SELECT 1), w99 AS (SELECT 1), w100 AS (SELECT 1), w101 AS (SELECT 1), w102 AS (SELECT 1), w103 AS (SELECT 1), w104 AS (SELECT 1), w105 AS (SELECT 1), w106 AS (SELECT 1), w107 AS (SELECT 1), w108 AS (SELECT 1), w109 AS (SELECT 1), w110 AS (SELECT 1), w111 AS (SELECT 1), w112 AS (SELECT 1), w113 AS (SELECT 1), w114 AS (SELECT 1), w115 AS (SELECT 1), w116 AS (SELECT 1), w117 AS (SELECT 1), w118 AS (SELECT 1), w119 AS (SELECT 1), w120 AS (SELECT 1), w121 AS (SELECT 1), w122 AS (SELECT 1), w123 AS (SELECT 1), w124 AS (SELECT 1), w125 AS (SELECT 1), w126 AS (SELECT 1), w127 AS (SELECT 1), w128 AS (SELECT 1), w129 AS (SELECT 1) SELECT 1
=== too_large
{deep}
=== too_large
{long}
=== too_large
{deep_case}
=== too_large
{deep_functions}
=== too_large
{deep_subqueries}
=== too_large
{deep_from}
=== too_large
{deep_exists}
=== too_large
{deep_not}
=== too_large
{deep_minus}
=== too_large
{deep_casts}
=== too_large
{deep_brackets}
=== too_large
{long_sum}
=== too_large
{union}
=== too_large
{intersect}
=== too_large
{ctes}
=== too_large
{cte_chain}
=== too_large
{joins}
=== too_large
{comma_joins}
=== too_large
{in_list}
=== too_large
{columns}
=== too_large
{json_path}
=== too_large
{json_brackets}
=== too_large
{values}
=== syntax

=== syntax
   
=== syntax
-- only a comment
=== syntax
/* only a comment */
=== syntax
SELECT * FROM orders WHERE (n = 1
=== syntax
SELECT * FROM orders WHERE n = 'unterminated
=== syntax
SELECT 1 +
=== syntax
)SELECT 1
=== syntax
SELECT * FROM orders ORDER BY
=== syntax
ATTACH '{outside}/x.db' AS x
=== syntax
EXPORT DATABASE '{outside}/db'
=== syntax
.import '{outside}/x.csv' orders
=== syntax
.shell ls
=== syntax
DESCRIBE DETAIL orders
=== syntax
SELECT `unterminated FROM orders
=== syntax
SELECT * FROM (DELETE FROM orders RETURNING *) AS x
=== syntax
SELECT 1; ATTACH '{outside}/x.db' AS x
=== syntax
SELECT * FROM orders WHERE n = 1)
=== not_found
SELECT * FROM ordres
=== not_found
SELECT * FROM silver.orders
=== not_found
SELECT * FROM gold.nothing
=== not_found
SELECT * FROM _lg_bronze__orders
=== not_found
SELECT * FROM `_lg_bronze__orders`
=== not_found
SELECT * FROM secret
=== not_found
SELECT * FROM bronze.secret
=== not_found
SELECT * FROM {catalog}.bronze.secret
=== not_found
DESCRIBE bronze.secret
=== not_found
SELECT * FROM duckdb_tables
=== not_found
SELECT * FROM sqlite_master
=== not_found
SELECT * FROM passwd
=== not_found
SELECT * FROM ｏｒｄｅｒｓ
=== not_found
SELECT * FROM orders o JOIN bronze.secret s ON true
=== truncated
SELECT * FROM wide
=== truncated
SELECT a.n AS x, b.n AS y FROM wide a CROSS JOIN wide b
=== truncated
SELECT repeat('x', 100000) AS s FROM wide
=== truncated
SELECT a.n FROM wide a, wide b, wide c
=== truncated
SELECT * FROM wide ORDER BY n DESC
=== truncated
SELECT explode(sequence(1, 100000)) AS n
=== truncated
SELECT repeat('x', 10000000) AS s
=== truncated
SELECT * FROM wide UNION ALL SELECT * FROM wide
=== timeout
SELECT count(*) FROM wide a CROSS JOIN wide b CROSS JOIN wide c WHERE a.n + b.n + c.n = -1
=== timeout
SELECT max(a.n * b.n * c.n) FROM wide a, wide b, wide c
=== timeout
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r
=== timeout
SELECT * FROM wide a, wide b, wide c ORDER BY a.n + b.n + c.n DESC LIMIT 1
=== timeout
SELECT count(*) FROM gold.summary a, wide b, wide c, wide d WHERE a.n + b.n = c.n + d.n + 100000
