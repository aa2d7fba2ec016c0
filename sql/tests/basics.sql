-- Types, keys, ordering and queries of a tinkv table.
CREATE VIRTUAL TABLE kv USING tinkv('kv');
INSERT INTO kv VALUES
  (1, 'one'), (2.5, 'two and a half'), ('1', 'text one'), (x'31', 'blob one'),
  (-7, NULL), (9223372036854775807, 1e300), ('', x''), ('b', 'bee'),
  ('user:1', 1), ('User:2', 2), ('user:10', 10), (1e20, 'big');
.mode list
.headers off
SELECT '-- everything, in key order (numbers < text < blobs)';
SELECT quote(key), typeof(key), quote(value), typeof(value) FROM kv;
SELECT '-- 1 and 1.0 are one key, ''1'' and x''31'' are others';
SELECT quote(key), value FROM kv WHERE key = 1.0;
SELECT quote(key), value FROM kv WHERE key IN ('1', x'31', 99);
SELECT '-- ranges';
SELECT quote(key) FROM kv WHERE key > 2 AND key < 'b';
SELECT quote(key) FROM kv WHERE key BETWEEN -10 AND 2.5;
SELECT quote(key) FROM kv WHERE key >= 'user:' ORDER BY key DESC;
SELECT '-- LIKE ignores case, GLOB does not';
SELECT key FROM kv WHERE key LIKE 'user:1%';
SELECT key FROM kv WHERE key GLOB 'user:*';
SELECT key FROM kv WHERE key LIKE '1%';
SELECT '-- counting never reads values';
SELECT count(*), count(value), sum(typeof(key) = 'text') FROM kv;
SELECT '-- rowid is the key''s id';
SELECT key FROM kv WHERE rowid = (SELECT rowid FROM kv WHERE key = 'b');
SELECT '-- updates';
UPDATE kv SET value = upper(value) WHERE typeof(value) = 'text' AND key < 'b';
UPDATE kv SET key = 'one' WHERE key = 1;
DELETE FROM kv WHERE key LIKE 'user%';
SELECT quote(key), quote(value) FROM kv;
