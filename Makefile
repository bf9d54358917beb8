# Makefile for asr: Azure Site Recovery from inside PostgreSQL (PGXS)
#
#   make              build asr.so
#   make install      install into the PostgreSQL found by pg_config
#   make installcheck pg_regress + isolation specs on throwaway instances
#   make test         every suite (installs what it needs), one summary line
#   make demo         the workflow on a throwaway cluster and the emulator

MODULE_big = asr
OBJS = \
	src/api.o \
	src/arm.o \
	src/armid.o \
	src/asr.o \
	src/auth.o \
	src/authreq.o \
	src/authresp.o \
	src/client.o \
	src/credlookup.o \
	src/creds.o \
	src/dispatch.o \
	src/fdw.o \
	src/http.o \
	src/itemread.o \
	src/items.o \
	src/itemstore.o \
	src/jobapi.o \
	src/jobs.o \
	src/json.o \
	src/jwt.o \
	src/points.o \
	src/poll.o \
	src/reconcile.o \
	src/reprotect.o \
	src/shmem.o \
	src/status.o \
	src/submit.o \
	src/sync.o \
	src/txtry.o \
	src/txn.o \
	src/util.o \
	src/validate.o \
	src/vaults.o \
	src/worker.o
PGFILEDESC = "asr - Azure Site Recovery disaster recovery from SQL"

EXTENSION = asr
DATA = asr--1.0.sql

PG_CONFIG ?= pg_config
PKG_CONFIG ?= pkg-config

PG_CPPFLAGS = $(shell $(PKG_CONFIG) --cflags libcurl openssl 2>/dev/null)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = $(shell $(PKG_CONFIG) --libs libcurl openssl 2>/dev/null || echo -lcurl -lssl -lcrypto)

# pg_regress (sql/ -> expected/) and isolation specs (test/specs), each on a
# private temporary instance with the library preloaded: a packager can run
# "make installcheck" alone.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=test/asr-regress.conf
ISOLATION = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --temp-instance=./tmp_check_iso \
	--temp-config=test/asr-regress.conf

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The worker serves one database: the regression databases must be it.
CONTRIB_TESTDB = asr_regression
ISOLATION_TESTDB = asr_regression

EXTRA_CLEAN = tmp_check tmp_check_iso output_iso results regression.diffs \
	regression.out log .test-run

.PHONY: test demo

test:
	@test/harness/run-all

demo:
	@test/harness/demo

# libFuzzer targets over the network-facing code (clang, ASan + UBSan);
# test/fuzz/run runs them (about a minute each in "make test").
.PHONY: fuzz
fuzz:
	$(MAKE) -C test/fuzz PG_CONFIG=$(PG_CONFIG)

# asr against Microsoft's SDK on the emulator (bench/README.md)
.PHONY: bench
bench:
	@bench/run
