-- The tinkv demo: `make demo` runs this in build/ with the sqlite3 shell.
-- A Bitcask key-value store used as an SQL table.
.load ./tinkv
.headers on
.mode column

-- No path: the store is the directory demo.db-kv.tinkv beside demo.db.
CREATE VIRTUAL TABLE kv USING tinkv;

-- Keys and values keep their SQL type.
INSERT INTO kv VALUES
  ('user:1', 'alice'), ('user:2', 'bob'), ('user:3', 'carol'),
  ('visits', 41), ('pi', 3.14159), ('logo', x'89504e47');
UPDATE kv SET value = value + 1 WHERE key = 'visits';
REPLACE INTO kv VALUES ('user:1', 'alice liddell');
DELETE FROM kv WHERE key = 'user:3';

-- A point lookup (one keydir lookup, one read).
SELECT key, value, typeof(value) FROM kv WHERE key = 'user:2';

-- A range query, served from the ordered keydir.
SELECT key, value FROM kv WHERE key >= 'user:' AND key < 'user;' ORDER BY key;

-- Prefix patterns use the keydir too.
SELECT key FROM kv WHERE key LIKE 'USER:%';

-- Transactions: nothing of a rolled back one remains.
BEGIN;
INSERT INTO kv VALUES ('scratch', 1);
ROLLBACK;
SELECT count(*) AS keys FROM kv;

-- Overwrites leave stale records; compaction reclaims them.
SELECT tinkv_compact('kv') AS reclaimed_bytes;
SELECT json_extract(tinkv_stats('kv'), '$.keys') AS keys,
       json_extract(tinkv_stats('kv'), '$.stale_bytes') AS stale_bytes,
       json_extract(tinkv_stats('kv'), '$.compactions') AS compactions;
.mode line
SELECT tinkv_stats('kv') AS stats;
