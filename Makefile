# pg_connbudget: PGXS build of the extension, plus `make unittest` for the pure C++ core.
EXTENSION = pg_connbudget
MODULE_big = pg_connbudget
DATA = sql/pg_connbudget--1.0.sql
PGFILEDESC = "pg_connbudget - per-application connection budgets enforced at login"

CORE_SRCS = $(sort $(wildcard src/core/*.cpp))
ADAPTER_SRCS = $(sort $(wildcard src/pg/*.cpp))
OBJS = $(CORE_SRCS:.cpp=.o) $(ADAPTER_SRCS:.cpp=.o)

CXXSTD = -std=c++20
# No exception or RTTI can cross into PostgreSQL: the module is built without them. A
# backend has one thread: function-local statics need no guard. With neither, the module
# needs nothing from libstdc++ at run time, so the server does not load it (every new
# backend pays a page fault for each page of code or data it first touches).
PG_CXXFLAGS = $(CXXSTD) -fno-exceptions -fno-rtti -fno-threadsafe-statics -Wextra -Wno-register \
	-Wno-missing-field-initializers -Wno-unused-parameter
PG_CPPFLAGS = -Isrc
# Symbols bound when the postmaster loads the module, not at each backend's first call of
# each (which would also write, and so copy, the pages of its table).
SHLIB_LINK = -Wl,-z,now

REGRESS = budgets_table match application_name privileges views pause incident_tools history
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=test/regress.conf
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
EXTRA_CLEAN = tmp_check_regress test/unit/run_unit_tests test/unit/run_unit_tests_sanitized test/fuzz/fuzz_matching \
	test/fuzz/fuzz_ledger test/fuzz/corpus

# Debian's PostgreSQL is built with LLVM JIT: PGXS would also compile every .cpp to bitcode
# with clang and without our C++ flags. Nothing here is worth inlining into JIT code.
override with_llvm = no
# Rebuild objects when a header they include changes (PGXS leaves this off by default).
override autodepend = yes

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The core's unit tests are built without PostgreSQL's include paths: that the core
# compiles here is the proof that it stays pure C++.
UNIT_SRCS = $(sort $(wildcard test/unit/*.cpp))
test/unit/run_unit_tests: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.hpp test/unit/*.hpp test/support/*.hpp)
	$(CXX) $(CXXSTD) -O1 -g -Wall -Wextra -Werror -Isrc -Itest -o $@ $(CORE_SRCS) $(UNIT_SRCS) -lgtest -lgtest_main -pthread

.PHONY: unittest
unittest: test/unit/run_unit_tests
	test/unit/run_unit_tests

# The same unit tests built with clang under AddressSanitizer (leaks included) and
# UndefinedBehaviorSanitizer; any finding fails.
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CLANGXX ?= clang++
test/unit/run_unit_tests_sanitized: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.hpp test/unit/*.hpp test/support/*.hpp)
	$(CLANGXX) $(CXXSTD) -O1 -g $(SANITIZE) -Wall -Wextra -Werror -Isrc -Itest -o $@ $(CORE_SRCS) $(UNIT_SRCS) \
	  -lgtest -lgtest_main -pthread

.PHONY: unittest-sanitized
unittest-sanitized: test/unit/run_unit_tests_sanitized
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 test/unit/run_unit_tests_sanitized

# libFuzzer targets over matching and over sequences of ledger operations, with ASan and
# UBSan: make fuzz FUZZ_SECONDS=600 runs each that long (a corpus grows in test/fuzz/corpus).
FUZZ_TARGETS = test/fuzz/fuzz_matching test/fuzz/fuzz_ledger
FUZZ_SECONDS ?= 60
test/fuzz/fuzz_%: test/fuzz/fuzz_%.cpp $(CORE_SRCS) $(wildcard src/core/*.hpp test/support/*.hpp)
	$(CLANGXX) $(CXXSTD) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc -Itest \
	  -o $@ $< $(CORE_SRCS)

.PHONY: fuzz
fuzz: $(FUZZ_TARGETS)
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p test/fuzz/corpus/$$(basename $$target) && \
	  $$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 test/fuzz/corpus/$$(basename $$target) || exit 1; \
	done
