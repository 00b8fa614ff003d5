// The extension's shared memory: the ledger (core/ledger.hpp) and, before it, what the
// server side needs: the one LWLock, the worker's identity and load status, the wake-up
// counters, and the latency histograms (admission cost, queue handoff). Sized at postmaster
// start; rebuilt empty after a crash restart (no backend survives one, so empty books are
// the true books). Only the budgets' cumulative counters outlive a clean restart
// (saved_counters.cpp).
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
}

#include "core/latency_histogram.hpp"
#include "core/ledger.hpp"

namespace connbudget::pg {

inline constexpr int kErrorLength = 512;

struct SharedState {
  LWLock lock;  // guards the ledger and every plain field below; atomics need no lock

  // The background worker, as it announced itself.
  pid_t worker_pid;
  Latch* worker_latch;
  bool worker_connecting;  // set before connecting to connbudget.database, cleared after
  int worker_connect_failures;

  // Loading budgets.
  pg_atomic_uint64 changes;          // commits that changed connbudget.budgets
  pg_atomic_uint64 reload_requests;  // connbudget.reload() calls
  uint64 reloads_answered;           // highest reload request the worker has answered,
  uint64 answered_generation;        // the generation live after that load,
  char answered_error[kErrorLength];  // and why that load failed (empty: it did not)
  int budgets_loaded;
  int reservation_shortfall;  // reserved slots of the live budgets the capacity cannot honour
  TimestampTz loaded_at;   // last load that succeeded
  TimestampTz checked_at;  // last load attempt
  char last_error[kErrorLength];  // empty after a successful load
  TimestampTz last_error_at;

  // Measured inside the extension (see login_hook.cpp); reset by reset_stats().
  LatencyHistogram login_checks;    // reading the login's role and PostgreSQL's own checks, made first
  LatencyHistogram admission_cost;  // then classifying, deciding and booking the login
  LatencyHistogram handoff;         // a freed slot handed to a waiter -> the waiter runs
  TimestampTz latency_reset;
};

// Asks for shared memory and the lock; from _PG_init (PostgreSQL 15+: via shmem_request_hook).
void request_shared_state();

// Null unless the library was preloaded and shared memory is attached.
SharedState* shared_state();

// Maps the shared pages every login touches into this process at once (one read fault);
// the login path calls it first.
void map_hot_window();

// The ledger in shared memory; only valid when shared_state() is not null.
Ledger& ledger();

// Errors out (with a hint) unless the library was loaded by shared_preload_libraries.
SharedState& require_shared_state();

// Raises the error for a budget name the ledger does not know (with a hint).
[[noreturn]] void report_unknown_budget(const char* name);

// The extension's shared memory: in all, and what each budget of connbudget.max_budgets
// and each session (one per PGPROC) takes of it (the history's rows aside).
struct MemoryUse {
  std::size_t total = 0;
  std::size_t per_budget = 0;
  std::size_t per_session = 0;
};
MemoryUse memory_use();

// Wakes the worker, if one is running; never waits for it.
void wake_worker();

// Wakes the backends of sessions that were granted their slot; call after unlocking.
void wake_sessions(const Wakeups& wakeups);

// Process-local memory for a Wakeups (one entry per session slot); allocate it before
// taking the lock. wakeup_buffer() is this process's one buffer (allocated at its first
// call); new_wakeup_buffer() allocates another in TopMemoryContext, for callers that must
// not write the module's own variables (the login path: see login_hook.cpp).
std::span<std::int32_t> wakeup_buffer();
std::span<std::int32_t> new_wakeup_buffer();

}  // namespace connbudget::pg
