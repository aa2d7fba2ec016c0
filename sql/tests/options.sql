-- Options and their errors.  TMP stands for the test's directory.
.mode list
CREATE VIRTUAL TABLE a USING tinkv(path='a', colour=blue);
CREATE VIRTUAL TABLE a USING tinkv(path='a', sync=sometimes);
CREATE VIRTUAL TABLE a USING tinkv(path='a', max_file_size=0);
CREATE VIRTUAL TABLE a USING tinkv(path='a', max_file_size='lots');
CREATE VIRTUAL TABLE a USING tinkv(path='a', max_file_size=100);
CREATE VIRTUAL TABLE a USING tinkv(path='a', compact_threshold=-1);
CREATE VIRTUAL TABLE a USING tinkv(path='a', sync=full, sync=off);
CREATE VIRTUAL TABLE a USING tinkv('a', path='b');
CREATE VIRTUAL TABLE a USING tinkv(path='');
CREATE VIRTUAL TABLE a USING tinkv('no/such/dir/a');
CREATE VIRTUAL TABLE a USING tinkv('test.db');
SELECT '-- accepted forms';
CREATE VIRTUAL TABLE t1 USING tinkv(path='t1', sync=normal, max_file_size=64 KiB, compact_threshold='1MiB');
CREATE VIRTUAL TABLE t2 USING tinkv("t2", sync='off', max_file_size="1048576");
CREATE VIRTUAL TABLE t3 USING tinkv(path = t3, sync = FULL);
CREATE VIRTUAL TABLE t4 USING tinkv;
INSERT INTO t1 VALUES (1, 1);
INSERT INTO t4 VALUES (4, 4);
SELECT json_extract(tinkv_stats('t1'), '$.path'), json_extract(tinkv_stats('t4'), '$.path');
