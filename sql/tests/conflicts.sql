-- Constraints and conflict modes, as on a native table.
CREATE VIRTUAL TABLE kv USING tinkv('kv');
.mode list
INSERT INTO kv VALUES ('a', 1), ('b', 2);
INSERT INTO kv VALUES ('a', 9);
INSERT INTO kv VALUES (NULL, 9);
INSERT INTO kv(value) VALUES (9);
INSERT INTO kv(rowid, key, value) VALUES (5, 'c', 3);
INSERT OR IGNORE INTO kv VALUES ('a', 9), ('c', 3), (NULL, 4);
SELECT '-- OR IGNORE kept c only'; SELECT * FROM kv;
INSERT INTO kv VALUES ('d', 4), ('a', 0), ('e', 5);
SELECT '-- ABORT kept nothing'; SELECT * FROM kv;
INSERT OR FAIL INTO kv VALUES ('f', 6), ('a', 0), ('g', 7);
SELECT '-- FAIL kept f'; SELECT * FROM kv;
INSERT OR REPLACE INTO kv VALUES ('a', 'new');
REPLACE INTO kv VALUES ('b', 'newer');
SELECT '-- REPLACE'; SELECT * FROM kv;
BEGIN;
INSERT INTO kv VALUES ('x', 0);
INSERT OR ROLLBACK INTO kv VALUES ('a', 0);
SELECT '-- ROLLBACK ended the transaction'; SELECT count(*) FROM kv WHERE key = 'x';
UPDATE kv SET key = 'a' WHERE key = 'c';
UPDATE OR IGNORE kv SET key = 'a' WHERE key = 'c';
UPDATE OR REPLACE kv SET key = 'a' WHERE key = 'f';
UPDATE kv SET rowid = 1000 WHERE key = 'a';
UPDATE kv SET key = NULL WHERE key = 'a';
SELECT '-- after the updates'; SELECT * FROM kv;
