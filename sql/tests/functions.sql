-- tinkv_compact, tinkv_stats, tinkv_version.
CREATE VIRTUAL TABLE kv USING tinkv('kv');
CREATE TABLE plain(x);
.mode list
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
  INSERT OR REPLACE INTO kv SELECT i % 10, i FROM n;
SELECT json_extract(tinkv_stats('kv'), '$.keys');
SELECT tinkv_compact('kv') > 0;
SELECT json_extract(tinkv_stats('main.kv'), '$.compactions');
SELECT sum(value) FROM kv;
SELECT tinkv_compact('missing');
SELECT tinkv_stats('plain');
SELECT tinkv_compact('kv') FROM kv;
BEGIN;
INSERT INTO kv VALUES (100, 100);
SELECT tinkv_compact('kv');
COMMIT;
SELECT tinkv_version() LIKE '0.%';
