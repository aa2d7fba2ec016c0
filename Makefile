# tinkv: build, test and benchmark.
#
#   make              build/libtinkv.a, build/tinkv.so, build/tinkv-server
#   make demo         the demo: sql/demo.sql in the sqlite3 shell
#   make test         every test (unit, extension, SQL, server, sanitizers)
#   make bench        benchmarks against LevelDB, RocksDB, LMDB, SQLite, Redis
#   make deps         install the Debian packages the build and tests need
#   make install      install under PREFIX (default /usr/local), DESTDIR
#   make uninstall    remove what `make install` installed
#   make static-ext   build/libtinkv-sqlite.a: the extension built with
#                     SQLITE_CORE, for sqlite3_auto_extension (README)
#
# CPPFLAGS, CFLAGS and LDFLAGS are honoured as usual.
#
# Missing Debian packages are installed by `make deps` (as root), which
# `make demo`, `make test` and `make bench` run first.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS  ?= $(OPT) -g
WARN     = -Wall -Wextra -Werror
ALLCFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -pthread $(WARN) $(SAN) $(CPPFLAGS) $(CFLAGS) -Icore
LDLIBS_CORE = -pthread
LDFLAGS ?=

# Installation directories (GNU names; DESTDIR is prepended to each).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL    ?= install
VERSION    := $(shell sed -n 's/^\#define TINKV_VERSION "\(.*\)"/\1/p' core/tinkv.h)

CORE_SRC   := $(wildcard core/*.c)
EXT_SRC    := $(wildcard ext/*.c)
SERVER_SRC := $(wildcard server/*.c)
TOOL_SRC   := $(wildcard tools/*.c)
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
EXT_OBJ    := $(EXT_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
TOOL_OBJ   := $(TOOL_SRC:%.c=$(BUILD)/%.o)
# The extension compiled into a program (SQLITE_CORE): its own objects.
STATIC_EXT_OBJ := $(EXT_SRC:%.c=$(BUILD)/static/%.o)

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
EXTT_SRC   := $(wildcard tests/ext/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
EXTT_BIN   := $(EXTT_SRC:tests/ext/%.c=$(BUILD)/tests/%)
TESTLIB    := $(wildcard tests/testutil.c)

LIB  := $(BUILD)/libtinkv.a
SO   := $(BUILD)/tinkv.so
SRV  := $(BUILD)/tinkv-server
CTL  := $(BUILD)/tinkvctl
STATIC_EXT := $(BUILD)/libtinkv-sqlite.a

ALL_TARGETS := $(LIB)
ifneq ($(EXT_SRC),)
ALL_TARGETS += $(SO)
endif
ifneq ($(SERVER_SRC),)
ALL_TARGETS += $(SRV)
endif
ifneq ($(TOOL_SRC),)
ALL_TARGETS += $(CTL)
endif

.PHONY: all deps demo test test-unit test-ext test-sql test-server test-asan \
        test-build bench clean check-clang test-diff-long install uninstall \
        static-ext

all: $(ALL_TARGETS)

$(BUILD)/%.o: %.c $(wildcard core/*.h ext/*.h server/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(LIB): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# Only the public API (every function core/tinkv.h declares) and the entry
# point are exported; the engine's internals and SQLite's API pointer stay
# local, so the library neither clashes with nor is interposed by the
# symbols of the program that loads it.  tests/install.sh checks the list.
$(BUILD)/tinkv.map: core/tinkv.h
	@mkdir -p $(dir $@)
	{ echo '{ global: sqlite3_tinkv_init;'; \
	  grep -o '\btkv_[a-z0-9_]*(' core/tinkv.h | tr -d '(' | sort -u \
	    | sed 's/$$/;/'; \
	  echo 'local: *; };'; } > $@

$(SO): $(EXT_OBJ) $(CORE_OBJ) $(BUILD)/tinkv.map
	$(CC) $(SAN) $(LDFLAGS) -shared -Wl,--version-script=$(BUILD)/tinkv.map \
	  -o $@ $(EXT_OBJ) $(CORE_OBJ) $(LDLIBS_CORE)

$(SRV): $(SERVER_OBJ) $(LIB)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $(SERVER_OBJ) $(LIB) -levent -lmicrohttpd $(LDLIBS_CORE)

$(CTL): $(TOOL_OBJ) $(LIB)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(LIB) $(LDLIBS_CORE)

# The extension for linking into a program that calls
# sqlite3_auto_extension(sqlite3_tinkv_init): compiled with SQLITE_CORE, so
# it calls SQLite directly; the archive holds the engine too.
$(BUILD)/static/%.o: %.c $(wildcard core/*.h ext/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -DSQLITE_CORE -c $< -o $@

$(STATIC_EXT): $(STATIC_EXT_OBJ) $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

static-ext: $(STATIC_EXT)

FORCE:

# Made on every install: its directories come from this PREFIX.
$(BUILD)/tinkv.pc: pkg/tinkv.pc.in core/tinkv.h FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkg/tinkv.pc.in > $@

# The extension goes to LIBDIR as tinkv.so, beside libtinkv.a, the way
# Debian's extension packages install theirs (mod_spatialite.so): the
# sqlite3 shell's `.load tinkv` then finds it by name when LIBDIR is on the
# dynamic loader's search path (PREFIX=/usr, or LD_LIBRARY_PATH).  Note
# that ldconfig only caches lib*.so names, so /usr/local/lib is not enough.
install: all $(BUILD)/tinkv.pc
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libtinkv.a
	$(INSTALL) -m 644 core/tinkv.h $(DESTDIR)$(INCLUDEDIR)/tinkv.h
	$(INSTALL) -m 644 $(BUILD)/tinkv.pc $(DESTDIR)$(PKGCONFIGDIR)/tinkv.pc
	if [ -f $(SO) ]; then $(INSTALL) -m 755 $(SO) $(DESTDIR)$(LIBDIR)/tinkv.so; fi
	if [ -f $(CTL) ]; then $(INSTALL) -m 755 $(CTL) $(DESTDIR)$(BINDIR)/tinkvctl; fi
	if [ -f $(SRV) ]; then $(INSTALL) -m 755 $(SRV) $(DESTDIR)$(BINDIR)/tinkv-server; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libtinkv.a $(DESTDIR)$(LIBDIR)/tinkv.so \
	  $(DESTDIR)$(INCLUDEDIR)/tinkv.h $(DESTDIR)$(PKGCONFIGDIR)/tinkv.pc \
	  $(DESTDIR)$(BINDIR)/tinkvctl $(DESTDIR)$(BINDIR)/tinkv-server

# Unit tests of core/: cmocka, no SQLite.
$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB) $(TESTLIB) $(wildcard tests/*.h tests/unit/*.h tests/ext/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -Itests -o $@ $< $(TESTLIB) $(LIB) -lcmocka $(LDLIBS_CORE)

# The extension with every symbol exported, for tests that reach the
# engine's fault hooks with dlsym (tests/ext/test_faults.c).
$(BUILD)/tests/hooks/tinkv.so: $(EXT_OBJ) $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -shared -o $@ $^ $(LDLIBS_CORE)

# Tests of the extension: cmocka, the extension loaded into a connection.
$(BUILD)/tests/test_%: tests/ext/test_%.c $(SO) $(BUILD)/tests/hooks/tinkv.so $(LIB) $(TESTLIB) $(wildcard tests/*.h tests/unit/*.h tests/ext/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) $(LDFLAGS) -Itests -o $@ $< $(TESTLIB) $(LIB) -lsqlite3 -lcmocka $(LDLIBS_CORE)

test-build: $(ALL_TARGETS) $(UNIT_BIN) $(EXTT_BIN)

deps:
	@sh tests/deps.sh test

# The demo needs only a compiler, SQLite's headers and its shell.
demo:
	@sh tests/deps.sh demo
	$(MAKE) $(SO)
	rm -rf $(BUILD)/demo.db $(BUILD)/demo.db-kv.tinkv
	cd $(BUILD) && sqlite3 demo.db < $(CURDIR)/sql/demo.sql

# Everything CI runs.  `tests/run.sh` prints one closing summary line.
test: deps
	$(MAKE) test-build
	@sh tests/run.sh $(BUILD) "$(UNIT_BIN) $(EXTT_BIN)"
	$(MAKE) test-crash-short
	$(MAKE) test-asan

# The same tests built with AddressSanitizer and UBSan.
test-asan:
	$(MAKE) BUILD=build/asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  test-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  sh tests/run.sh build/asan "$(UNIT_BIN:$(BUILD)/%=build/asan/%) $(EXTT_BIN:$(BUILD)/%=build/asan/%)" asan

# The differential SQL test (tinkv table against a native table), long run.
test-diff-long: test-build
	TINKV_SO=$(BUILD)/tinkv TINKV_DIFF_SEEDS=500 TINKV_DIFF_STEPS=1000 \
	  $(BUILD)/tests/test_diff

# gcc is the default compiler; this checks that clang builds without warnings.
check-clang:
	$(MAKE) BUILD=build/clang CC=clang test-build

bench: deps
	@sh tests/deps.sh bench
	$(MAKE) OPT=-O3 all
	$(MAKE) -C tests/bench

clean:
	rm -rf $(BUILD) build

# ===========================================================================
# Durability suites: crash (SIGKILL), power loss, fault injection,
# corruption, fuzzing, sanitizers and static checks.  Sources in
# tests/crash, tests/faults, tests/fuzz; tests/check.sh runs the tools.
# Scratch stores go to /dev/shm when it is writable.
#
#   make test-crash        the CI version of the crash/fault/corruption suites
#   make test-crash-short  the short version `make test` runs (~30 s)
#   make test-crash-long   the long version (many minutes)
#   make power-loss        the power-loss simulation alone
#   make fuzz / fuzz-long  libFuzzer targets, bounded time each (FUZZ_TIME)
#   make valgrind tsan coverage lint
# ===========================================================================
DUR_TMP := $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo /tmp)
DUR_BIN := $(BUILD)/tests/durability
DUR_LIB := tests/crash/workload.c $(TESTLIB)
DUR_DEP := $(DUR_LIB) tests/crash/workload.h $(LIB) $(wildcard tests/*.h core/*.h)
DUR_CC   = $(CC) $(ALLCFLAGS) -Itests -Itests/crash
DUR_RUN  = TMPDIR=$(DUR_TMP)
DUR_BINS := $(DUR_BIN)/crash $(DUR_BIN)/powerloss $(DUR_BIN)/faults $(DUR_BIN)/corrupt \
            $(DUR_BIN)/checksweep $(DUR_BIN)/sharecrash
FUZZ_TIME ?= 60

.PHONY: test-crash test-crash-short test-crash-long power-loss fuzz fuzz-long \
        fuzz-build valgrind tsan coverage lint durability-build

durability-build: $(DUR_BINS) $(SO)

$(DUR_BIN)/crash: tests/crash/crash.c $(DUR_DEP)
	@mkdir -p $(dir $@)
	$(DUR_CC) -o $@ $< $(DUR_LIB) $(LIB) -lsqlite3 $(LDLIBS_CORE)

$(DUR_BIN)/%: tests/crash/%.c $(DUR_DEP)
	@mkdir -p $(dir $@)
	$(DUR_CC) -o $@ $< $(DUR_LIB) $(LIB) $(LDLIBS_CORE)

$(DUR_BIN)/%: tests/tools/%.c $(DUR_DEP)
	@mkdir -p $(dir $@)
	$(DUR_CC) -o $@ $< $(DUR_LIB) $(LIB) $(LDLIBS_CORE)

$(DUR_BIN)/%: tests/faults/%.c $(DUR_DEP)
	@mkdir -p $(dir $@)
	$(DUR_CC) -o $@ $< $(DUR_LIB) $(LIB) $(LDLIBS_CORE)

test-crash-short: durability-build
	$(DUR_RUN) $(DUR_BIN)/crash -r 25 -x $(BUILD)/tinkv
	$(DUR_RUN) $(DUR_BIN)/sharecrash -r 12
	$(DUR_RUN) $(DUR_BIN)/powerloss -n 30
	$(DUR_RUN) $(DUR_BIN)/faults -m full
	$(DUR_RUN) $(DUR_BIN)/corrupt -n 10
	$(DUR_RUN) $(DUR_BIN)/checksweep -n 10

test-crash: durability-build
	$(DUR_RUN) $(DUR_BIN)/crash -r 150 -x $(BUILD)/tinkv
	$(DUR_RUN) $(DUR_BIN)/sharecrash -r 60
	$(DUR_RUN) $(DUR_BIN)/powerloss -n 120
	$(DUR_RUN) $(DUR_BIN)/faults
	$(DUR_RUN) $(DUR_BIN)/corrupt
	$(DUR_RUN) $(DUR_BIN)/checksweep

test-crash-long: durability-build
	$(DUR_RUN) $(DUR_BIN)/crash -r 2000 -t 60 -x $(BUILD)/tinkv
	$(DUR_RUN) $(DUR_BIN)/sharecrash -r 600 -k 10 -t 100
	$(DUR_RUN) $(DUR_BIN)/powerloss -n 400
	$(DUR_RUN) $(DUR_BIN)/faults
	$(DUR_RUN) $(DUR_BIN)/corrupt -a -n 200
	$(DUR_RUN) $(DUR_BIN)/checksweep -a -n 200

power-loss: $(DUR_BIN)/powerloss
	$(DUR_RUN) $(DUR_BIN)/powerloss -n 200

# Concurrency test (threads, SQL connections, compaction, the process lock).
# The extension is linked in and registered with sqlite3_auto_extension.
$(DUR_BIN)/concurrent: tests/crash/concurrent.c $(EXT_OBJ) $(LIB) $(TESTLIB)
	@mkdir -p $(dir $@)
	$(DUR_CC) -o $@ $< $(TESTLIB) $(EXT_OBJ) $(LIB) -lsqlite3 $(LDLIBS_CORE)

# ThreadSanitizer: the concurrency tests built with clang -fsanitize=thread
# (test_core_share: merges and readers of several processes, each with its
# merge thread).
tsan:
	$(MAKE) BUILD=build/tsan CC=clang OPT=-O1 SAN=-fsanitize=thread \
	  build/tsan/tests/durability/concurrent build/tsan/tests/test_core_conc \
	  build/tsan/tests/test_core_compact build/tsan/tests/test_core_share \
	  build/tsan/tests/test_core_readtxn build/tsan/tinkv-server
	TMPDIR=$(DUR_TMP) TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  build/tsan/tests/test_core_conc
	TMPDIR=$(DUR_TMP) TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  build/tsan/tests/test_core_share
	TMPDIR=$(DUR_TMP) TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  build/tsan/tests/test_core_readtxn
	TMPDIR=$(DUR_TMP) TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  TKV_TEST_FILTER='*merg*' build/tsan/tests/test_core_compact
	TMPDIR=$(DUR_TMP) TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	  build/tsan/tests/durability/concurrent -n 200
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 sh tests/server.sh build/tsan tsan

# libFuzzer targets (clang; address and undefined sanitizers), each run for
# FUZZ_TIME seconds from the seed corpus in tests/fuzz/corpus/<target>.
# New inputs go to build/fuzz/corpus; crashes to build/fuzz/crash-*.
FUZZ_SAN = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_TARGETS := recover sql

build/fuzz/fuzz_recover: tests/fuzz/fuzz_recover.c $(TESTLIB) build/fuzz/libtinkv.a
	clang $(ALLCFLAGS) -fsanitize=fuzzer,address,undefined -Itests \
	  -o $@ $< $(TESTLIB) build/fuzz/libtinkv.a $(LDLIBS_CORE)

build/fuzz/fuzz_sql: tests/fuzz/fuzz_sql.c $(TESTLIB) build/fuzz/libtinkv.a
	clang $(ALLCFLAGS) -fsanitize=fuzzer,address,undefined -Itests \
	  -o $@ $< $(TESTLIB) build/fuzz/ext/*.o build/fuzz/libtinkv.a -lsqlite3 $(LDLIBS_CORE)

fuzz-build:
	$(MAKE) BUILD=build/fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" \
	  build/fuzz/libtinkv.a build/fuzz/tinkv.so
	$(MAKE) BUILD=build/fuzz CC=clang OPT=-O1 SAN= \
	  $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "fuzz $$t: $(FUZZ_TIME) s"; \
	  build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 \
	    | grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done|==|SUMMARY|differ)" \
	    || true; \
	  ls build/fuzz/crash-* 2>/dev/null && exit 1; \
	done; echo "fuzz: no crash"

fuzz-long:
	$(MAKE) fuzz FUZZ_TIME=1800

# valgrind memcheck over the unit, extension and durability tests (-O0).
valgrind:
	$(MAKE) BUILD=build/valgrind OPT=-O0 test-build durability-build \
	  build/valgrind/tests/durability/concurrent
	sh tests/check.sh valgrind build/valgrind

# Line and branch coverage of core/ and ext/ by the unit, extension and
# durability tests.
coverage:
	rm -rf build/cov
	$(MAKE) BUILD=build/cov OPT=-O0 CFLAGS="-O0 -g --coverage" SAN=--coverage \
	  test-build durability-build
	-sh tests/run.sh build/cov "$(UNIT_BIN:$(BUILD)/%=build/cov/%) $(EXTT_BIN:$(BUILD)/%=build/cov/%)" cov
	$(MAKE) BUILD=build/cov CFLAGS="-O0 -g --coverage" SAN=--coverage test-crash
	sh tests/check.sh coverage build/cov

# cppcheck and clang-tidy (.clang-tidy) over core/ and ext/.
lint:
	sh tests/check.sh lint
