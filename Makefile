# pg_connbudget: PGXS build of the extension, plus `make unittest` for the pure C++ core.
EXTENSION = pg_connbudget
MODULE_big = pg_connbudget
DATA = sql/pg_connbudget--1.0.sql
PGFILEDESC = "pg_connbudget - per-application connection budgets enforced at login"

CORE_SRCS = $(sort $(wildcard src/core/*.cpp))
ADAPTER_SRCS = $(sort $(wildcard src/pg/*.cpp))
OBJS = $(CORE_SRCS:.cpp=.o) $(ADAPTER_SRCS:.cpp=.o)

CXXSTD = -std=c++20
# No exception or RTTI can cross into PostgreSQL: the module is built without them.
PG_CXXFLAGS = $(CXXSTD) -fno-exceptions -fno-rtti -Wextra -Wno-register -Wno-missing-field-initializers -Wno-unused-parameter
PG_CPPFLAGS = -Isrc
SHLIB_LINK = -lstdc++

REGRESS = budgets_table match application_name privileges views pause incident_tools history
REGRESS_OPTS = --temp-instance=./tmp_check_regress --temp-config=test/regress.conf
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
EXTRA_CLEAN = tmp_check_regress test/unit/run_unit_tests

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
test/unit/run_unit_tests: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.hpp test/unit/*.hpp)
	$(CXX) $(CXXSTD) -O1 -g -Wall -Wextra -Werror -Isrc -o $@ $(CORE_SRCS) $(UNIT_SRCS) -lgtest -lgtest_main -pthread

.PHONY: unittest
unittest: test/unit/run_unit_tests
	test/unit/run_unit_tests
