# tinkv: build, test and benchmark.
#
#   make              build/libtinkv.a, build/tinkv.so, build/tinkv-server
#   make demo         the demo: sql/demo.sql in the sqlite3 shell
#   make test         every test (unit, extension, SQL, server, sanitizers)
#   make bench        benchmarks against LevelDB, RocksDB, LMDB, SQLite, Redis
#   make deps         install the Debian packages the build and tests need
#
# Missing Debian packages are installed by `make deps` (as root), which
# `make demo`, `make test` and `make bench` run first.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS  ?= $(OPT) -g
WARN     = -Wall -Wextra -Werror
ALLCFLAGS = -std=c11 -D_GNU_SOURCE -fPIC -pthread $(WARN) $(SAN) $(CFLAGS) -Icore
LDLIBS_CORE = -pthread

CORE_SRC   := $(wildcard core/*.c)
EXT_SRC    := $(wildcard ext/*.c)
SERVER_SRC := $(wildcard server/*.c)
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
EXT_OBJ    := $(EXT_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
EXTT_SRC   := $(wildcard tests/ext/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
EXTT_BIN   := $(EXTT_SRC:tests/ext/%.c=$(BUILD)/tests/%)
TESTLIB    := $(wildcard tests/testutil.c)

LIB  := $(BUILD)/libtinkv.a
SO   := $(BUILD)/tinkv.so
SRV  := $(BUILD)/tinkv-server

ALL_TARGETS := $(LIB)
ifneq ($(EXT_SRC),)
ALL_TARGETS += $(SO)
endif
ifneq ($(SERVER_SRC),)
ALL_TARGETS += $(SRV)
endif

.PHONY: all deps demo test test-unit test-ext test-sql test-server test-asan \
        test-build bench clean check-clang

all: $(ALL_TARGETS)

$(BUILD)/%.o: %.c $(wildcard core/*.h ext/*.h server/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(LIB): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SO): $(EXT_OBJ) $(CORE_OBJ)
	$(CC) $(SAN) -shared -o $@ $^ $(LDLIBS_CORE)

$(SRV): $(SERVER_OBJ) $(LIB)
	$(CC) $(SAN) -o $@ $(SERVER_OBJ) $(LIB) -levent -lmicrohttpd $(LDLIBS_CORE)

# Unit tests of core/: cmocka, no SQLite.
$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB) $(TESTLIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests -o $@ $< $(TESTLIB) $(LIB) -lcmocka $(LDLIBS_CORE)

# Tests of the extension: cmocka, the extension loaded into a connection.
$(BUILD)/tests/test_%: tests/ext/test_%.c $(SO) $(LIB) $(TESTLIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests -o $@ $< $(TESTLIB) $(LIB) -lsqlite3 -lcmocka $(LDLIBS_CORE)

test-build: $(ALL_TARGETS) $(UNIT_BIN) $(EXTT_BIN)

deps:
	@sh tests/deps.sh test

demo: deps $(SO)
	rm -f $(BUILD)/demo.db $(BUILD)/demo.db-kv.tinkv -r
	cd $(BUILD) && sqlite3 demo.db < ../sql/demo.sql

# Everything CI runs.  `tests/run.sh` prints one closing summary line.
test: deps
	$(MAKE) test-build
	@sh tests/run.sh $(BUILD) "$(UNIT_BIN) $(EXTT_BIN)"
	$(MAKE) test-asan

# The same tests built with AddressSanitizer and UBSan.
test-asan:
	$(MAKE) BUILD=build/asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  test-build
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  sh tests/run.sh build/asan "$(UNIT_BIN:$(BUILD)/%=build/asan/%) $(EXTT_BIN:$(BUILD)/%=build/asan/%)" asan

# gcc is the default compiler; this checks that clang builds without warnings.
check-clang:
	$(MAKE) BUILD=build/clang CC=clang test-build

bench: deps
	@sh tests/deps.sh bench
	$(MAKE) OPT=-O3 all
	$(MAKE) -C tests/bench

clean:
	rm -rf $(BUILD) build
