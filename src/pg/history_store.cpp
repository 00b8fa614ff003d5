// Creates and attaches the history block described in history_store.hpp.
extern "C" {
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
}

#include <optional>

#include "pg/history_store.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

namespace connbudget::pg {
namespace {

constexpr const char* kName = "pg_connbudget history";  // the block and the lock's tranche

std::optional<HistoryStore> store;
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

// One counter baseline per budget slot of the ledger.
std::int32_t budget_slots() { return max_budgets + kFirstConfiguredBudget; }

void request_memory() {
  if (previous_request_hook) previous_request_hook();
  if (history_size == 0) return;
  RequestAddinShmemSpace(history_memory_bytes());
  RequestNamedLWLockTranche(kName, 1);
}

// Runs after the ledger's hook (request_history() follows request_shared_state()), so a
// new history starts from the counters the ledger starts with.
void attach_memory() {
  if (previous_startup_hook) previous_startup_hook();
  if (history_size == 0) return;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  bool found = false;
  void* block = ShmemInitStruct(kName, history_memory_bytes(), &found);
  store.emplace(HistoryStore{&(GetNamedLWLockTranche(kName))->lock, History(block, history_size, budget_slots())});
  if (!found) store->history.initialize(ledger());
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

std::size_t history_memory_bytes() { return history_size == 0 ? 0 : History::bytes_needed(history_size, budget_slots()); }

void request_history() {
  previous_request_hook = shmem_request_hook;
  shmem_request_hook = request_memory;
  previous_startup_hook = shmem_startup_hook;
  shmem_startup_hook = attach_memory;
}

HistoryStore* history_store() { return store ? &*store : nullptr; }

}  // namespace connbudget::pg
