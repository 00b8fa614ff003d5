// Samples every budget into connbudget.history from the background worker, at a steady
// cadence of connbudget.sample_interval. Copies the budgets under the ledger's lock
// (shared, no allocation), releases it, then writes the rows under the history's own lock:
// the two are never held together, and logins never wait for a sample.
extern "C" {
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include "pg/history_sampler.hpp"
#include "pg/history_store.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

namespace connbudget::pg {
namespace {

// Worker-local room for one reading per budget the ledger can hold, allocated once.
std::span<BudgetReading> reading_buffer() {
  static BudgetReading* buffer = nullptr;
  const std::size_t entries = static_cast<std::size_t>(max_budgets) + 2;
  if (!buffer) buffer = static_cast<BudgetReading*>(MemoryContextAlloc(TopMemoryContext, sizeof(BudgetReading) * entries));
  return {buffer, entries};
}

void take_sample(HistoryStore& store) {
  const std::span<BudgetReading> readings = reading_buffer();
  SharedState& state = *shared_state();
  LWLockAcquire(&state.lock, LW_SHARED);
  // Taken under the lock, so a sample's time orders it with the changes it saw.
  const TimestampTz sampled_at = GetCurrentTimestamp();
  const std::size_t count = read_budgets(ledger(), readings);
  LWLockRelease(&state.lock);

  LWLockAcquire(store.lock, LW_EXCLUSIVE);
  store.history.record(sampled_at, readings.first(count));
  LWLockRelease(store.lock);
}

}  // namespace

TimestampTz sample_history_when_due(TimestampTz now) {
  static TimestampTz last_due = 0;  // when the last sample was due; 0: sample at once
  HistoryStore* store = history_store();
  if (!store) return DT_NOEND;
  TimestampTz due = last_due ? TimestampTzPlusMilliseconds(last_due, sample_interval_ms) : now;
  if (due - now > sample_interval_ms * INT64CONST(1000)) due = now;  // the clock stepped back
  if (now < due) return due;
  take_sample(*store);
  // Keep the cadence, unless the worker fell a whole interval behind (a long load, a
  // shorter interval): then it starts again from now.
  last_due = now - due < sample_interval_ms * INT64CONST(1000) ? due : now;
  return TimestampTzPlusMilliseconds(last_due, sample_interval_ms);
}

}  // namespace connbudget::pg
