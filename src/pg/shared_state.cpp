// Creates and attaches the shared memory described in shared_state.hpp.
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <cstring>
#include <new>
#include <optional>

#include "core/history.hpp"
#include "pg/history_store.hpp"
#include "pg/saved_counters.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

namespace connbudget::pg {
namespace {

constexpr const char* kName = "pg_connbudget";  // the block and the lock's tranche

// A new backend pays a page fault for each shared page it first touches. A read fault maps
// the pages around it too (Linux's fault-around: the 64 KB window, aligned, that holds it),
// a write fault only its own. What every login touches (this state with the lock and the
// latency histograms, then the ledger's header, the live index filter, the session slots and
// the first budget slots) starts such a window, and the login reads it before it writes
// there (map_hot_window()).
constexpr std::size_t kHotWindow = 64 * 1024;
constexpr std::size_t kStateBytes = TYPEALIGN(alignof(std::max_align_t), sizeof(SharedState));

SharedState* state = nullptr;
std::optional<Ledger> ledger_view;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

std::size_t ledger_bytes() { return Ledger::bytes_needed(max_budgets, MaxBackends); }

// The state and the ledger after it, with room to start them on a window's boundary.
std::size_t block_bytes() { return add_size(kHotWindow + kStateBytes, ledger_bytes()); }

void request_memory() {
  if (previous_request_hook) previous_request_hook();
  RequestAddinShmemSpace(block_bytes());
}

void attach_memory() {
  if (previous_startup_hook) previous_startup_hook();
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  void* block = ShmemInitStruct(kName, block_bytes(), &found);
  auto* start = reinterpret_cast<char*>(TYPEALIGN(kHotWindow, block));
  state = reinterpret_cast<SharedState*>(start);
  ledger_view.emplace(start + kStateBytes, max_budgets, MaxBackends);
  if (!found) {
    std::memset(static_cast<void*>(state), 0, sizeof(SharedState));
    LWLockInitialize(&state->lock, LWLockNewTrancheId());
    pg_atomic_init_u64(&state->changes, 0);
    pg_atomic_init_u64(&state->reload_requests, 0);
    new (&state->login_checks) LatencyHistogram();
    new (&state->admission_cost) LatencyHistogram();
    new (&state->handoff) LatencyHistogram();
    state->latency_reset = GetCurrentTimestamp();
    ledger_view->initialize(GetCurrentTimestamp());
  }
  LWLockRegisterTranche(state->lock.tranche, kName);
  LWLockRelease(AddinShmemInitLock);
  if (!IsUnderPostmaster) restore_saved_counters();
}

}  // namespace

void request_shared_state() {
  previous_request_hook = shmem_request_hook;
  shmem_request_hook = request_memory;
  previous_startup_hook = shmem_startup_hook;
  shmem_startup_hook = attach_memory;
}

SharedState* shared_state() { return state; }

void map_hot_window() {
  if (state) (void)*reinterpret_cast<volatile const char*>(state);
}

Ledger& ledger() { return *ledger_view; }

SharedState& require_shared_state() {
  if (!state)
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("pg_connbudget is not loaded"),
                    errhint("Add pg_connbudget to shared_preload_libraries and restart the server.")));
  return *state;
}

void report_unknown_budget(const char* name) {
  ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("connection budget \"%s\" does not exist", name),
                  errhint("See SELECT budget FROM connbudget.status.")));
  pg_unreachable();
}

void wake_sessions(const Wakeups& wakeups) {
  // A spurious wake-up (the backend left meanwhile, its PGPROC reused) is harmless.
  for (const std::int32_t session : wakeups.sessions()) SetLatch(&GetPGProcByNumber(session)->procLatch);
}

std::span<std::int32_t> new_wakeup_buffer() {
  return {static_cast<std::int32_t*>(MemoryContextAlloc(TopMemoryContext, sizeof(std::int32_t) * MaxBackends)),
          static_cast<std::size_t>(MaxBackends)};
}

std::span<std::int32_t> wakeup_buffer() {
  static const std::span<std::int32_t> buffer = new_wakeup_buffer();
  return buffer;
}

MemoryUse memory_use() {
  // Per budget and per session: what twice as many take more, so that every array and
  // table sized by them counts.
  constexpr std::int32_t kStep = 1024;
  const std::size_t history_per_budget =
      history_size == 0 ? 0
                        : History::bytes_needed(history_size, 2 * kStep) - History::bytes_needed(history_size, kStep);
  return MemoryUse{
      .total = block_bytes() + history_memory_bytes(),
      .per_budget = (Ledger::bytes_needed(2 * kStep, 1) - Ledger::bytes_needed(kStep, 1) + history_per_budget) / kStep,
      .per_session = (Ledger::bytes_needed(1, 2 * kStep) - Ledger::bytes_needed(1, kStep)) / kStep,
  };
}

void wake_worker() {
  if (!state) return;
  LWLockAcquire(&state->lock, LW_SHARED);
  if (state->worker_latch) SetLatch(state->worker_latch);
  LWLockRelease(&state->lock);
}

}  // namespace connbudget::pg
