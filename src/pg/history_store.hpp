// The history in shared memory (core/history.hpp) and its own LWLock, so that reading a
// long history never delays a login or the ledger. Sized by connbudget.history_size at
// postmaster start (0: no block, no lock); rebuilt empty after a crash restart.
#pragma once

extern "C" {
#include "postgres.h"

#include "storage/lwlock.h"
}

#include "core/history.hpp"

namespace connbudget::pg {

struct HistoryStore {
  LWLock* lock;     // exclusive: the worker's sampler; shared: readers copying rows
  History history;
};

// Asks for the block and its lock; from _PG_init, when preloading.
void request_history();

// Null unless the library was preloaded with connbudget.history_size > 0.
HistoryStore* history_store();

// The shared memory the history takes (0 when it is off).
std::size_t history_memory_bytes();

}  // namespace connbudget::pg
