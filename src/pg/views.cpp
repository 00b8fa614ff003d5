// Set-returning functions behind the views connbudget.status, connbudget.wait_histogram,
// connbudget.sessions, connbudget.worker and connbudget.latency. Each copies what it needs under a shared
// lock, releases it, and only then builds tuples (a tuplestore may spill to disk).
extern "C" {
#include "postgres.h"

#include <sys/socket.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connbudget_status);
PG_FUNCTION_INFO_V1(connbudget_wait_histogram);
PG_FUNCTION_INFO_V1(connbudget_sessions);
PG_FUNCTION_INFO_V1(connbudget_worker);
PG_FUNCTION_INFO_V1(connbudget_latency);
PGDLLEXPORT Datum connbudget_status(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_wait_histogram(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_sessions(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_worker(PG_FUNCTION_ARGS);
PGDLLEXPORT Datum connbudget_latency(PG_FUNCTION_ARGS);
}

#include <algorithm>
#include <array>
#include <cstring>
#include <new>

#include "pg/result_row.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"

namespace connbudget::pg {
namespace {

Datum inet_datum(const ClientAddress& address) {
  auto* value = static_cast<inet*>(palloc0(sizeof(inet)));
  const int length = ClientAddress::byte_length(address.family);
  ip_family(value) = address.family == AddressFamily::IPv4 ? PGSQL_AF_INET : PGSQL_AF_INET6;
  ip_bits(value) = static_cast<unsigned char>(8 * length);
  std::memcpy(ip_addr(value), address.bytes, length);
  SET_INET_VARSIZE(value);
  return InetPGetDatum(value);
}

// The budgets in match order, then default and exempt, and the server's totals.
struct BudgetsCopy {
  BudgetState* budgets = nullptr;
  std::size_t count = 0;
  LedgerHeader server;
};

BudgetsCopy copy_budgets(SharedState& state) {
  // Memory is allocated outside the lock (if the configuration grew meanwhile, allocate
  // again).
  BudgetsCopy copy;
  std::size_t allocated = 0;
  for (;;) {
    LWLockAcquire(&state.lock, LW_SHARED);
    copy.count = ledger().status_count();
    if (copy.count <= allocated) {
      copy.server = ledger().header();
      std::size_t i = 0;
      // Constructed as copies: a BudgetState is not trivially copyable (its FirstTouch words).
      ledger().visit_in_status_order(
          [&](std::int32_t slot) { new (&copy.budgets[i++]) BudgetState(ledger().budgets()[slot]); });
      LWLockRelease(&state.lock);
      return copy;
    }
    LWLockRelease(&state.lock);
    copy.budgets = static_cast<BudgetState*>(palloc(sizeof(BudgetState) * copy.count));
    allocated = copy.count;
  }
}

}  // namespace
}  // namespace connbudget::pg

using namespace connbudget;
using namespace connbudget::pg;

Datum connbudget_status(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  InitMaterializedSRF(fcinfo, 0);
  const BudgetsCopy copy = copy_budgets(state);
  const BudgetState* budgets = copy.budgets;
  const std::size_t count = copy.count;
  const LedgerHeader& server = copy.server;

  // What any budget can still grow into: sessions nobody uses or is entitled to, as far as
  // the server has backends for them (waiting logins hold backends too).
  const std::int32_t server_free = std::max(
      0, std::min(server.capacity - server.waiting_room - server.sessions - server.unused_entitled_sessions,
                  server.capacity - server.occupied - server.unused_entitled));
  for (std::size_t i = 0; i < count; ++i) {
    const BudgetState& budget = budgets[i];
    const bool is_exempt = i == count - 1;
    const BudgetLimits& limits = budget.definition.limits;
    const BudgetCounters& c = budget.counters;
    ResultRow<35> row;
    row.text(budget.definition.name.view());
    limits.max_connections == BudgetLimits::kUnlimited ? row.null() : row.integer(limits.max_connections);
    row.integer(limits.reserved);
    is_exempt ? row.null() : row.text(to_string(limits.on_full));
    is_exempt ? row.null() : row.text(to_string(limits.mode));
    row.integer(budget.active);
    row.integer(budget.waiting);
    row.integer(c.peak);
    row.bigint(c.admitted);
    row.bigint(c.rejected());
    row.bigint(c.queued);
    row.bigint(c.timed_out);
    row.bigint(c.abandoned);
    c.waits ? row.number(c.wait_total_us / 1000.0 / c.waits) : row.number(0);
    row.number(c.wait_max_us / 1000.0);
    row.timestamp(c.stats_reset_us);
    row.integer(std::min(budget.active + budget.waiting, budget.reserved));
    row.integer(limits.reserved - budget.reserved);
    row.integer(server_free);
    is_exempt ? row.null() : row.integer(limits.priority);
    for (const std::int64_t n : {c.rejected_full, c.rejected_queue_full, c.rejected_reserved, c.rejected_paused,
                                 c.terminated, c.would_reject, c.would_queue, c.waits})
      row.bigint(n);
    row.number(c.wait_total_us / 1000.0);
    row.timestamp(c.peak_at_us);
    row.timestamp(c.last_refusal_us);
    row.boolean(budget.paused);
    row.bigint(c.rejected_server_full);
    row.bigint(c.reclaimed);
    row.bigint(c.mismatched);
    row.emit(fcinfo);
  }
  return static_cast<Datum>(0);
}

// Per budget, how many logins admitted after waiting waited up to each bound (le_ms; the
// last is infinity): the bucket's own count, not a running total.
Datum connbudget_wait_histogram(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  InitMaterializedSRF(fcinfo, 0);
  const BudgetsCopy copy = copy_budgets(state);
  for (std::size_t i = 0; i < copy.count; ++i) {
    const BudgetState& budget = copy.budgets[i];
    for (std::size_t bucket = 0; bucket < kWaitBuckets; ++bucket) {
      ResultRow<3> row;
      row.text(budget.definition.name.view());
      row.number(bucket < kWaitBucketBoundsUs.size() ? kWaitBucketBoundsUs[bucket] / 1000.0
                                                     : get_float8_infinity());
      row.bigint(budget.counters.wait_histogram[bucket]);
      row.emit(fcinfo);
    }
  }
  return static_cast<Datum>(0);
}

Datum connbudget_sessions(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  InitMaterializedSRF(fcinfo, 0);

  // A copy of every session slot (queue links included) and of the budget names.
  const std::size_t slots = ledger().sessions().size();
  auto* sessions = static_cast<SessionState*>(palloc(sizeof(SessionState) * (slots + 1)));
  auto* names = static_cast<FixedString<kNameMax>*>(palloc(sizeof(FixedString<kNameMax>) * (slots + 1)));
  LWLockAcquire(&state.lock, LW_SHARED);
  for (std::size_t i = 0; i < slots; ++i) {
    new (&sessions[i]) SessionState(ledger().sessions()[i]);
    if (sessions[i].phase != SessionPhase::Free)
      new (&names[i]) FixedString<kNameMax>(ledger().budgets()[sessions[i].budget].definition.name);
  }
  LWLockRelease(&state.lock);

  const TimestampTz now = GetCurrentTimestamp();
  for (std::size_t i = 0; i < slots; ++i) {
    const SessionState& s = sessions[i];
    if (s.phase == SessionPhase::Free) continue;
    const bool waiting = s.phase == SessionPhase::Waiting;
    ResultRow<10> row;
    row.integer(s.pid);
    row.text(names[i].view());
    row.text(waiting ? "waiting" : "active");
    row.text(s.application_name.view());
    row.text_from_outside(s.role_name.view());
    row.text_from_outside(s.database_name.view());
    s.client_addr.family == AddressFamily::None ? row.null() : row.value(inet_datum(s.client_addr));
    row.timestamp(s.since_us);
    row.number((waiting ? now - s.since_us : s.waited_us) / 1000.0);
    waiting ? row.integer(queue_position({sessions, slots}, static_cast<std::int32_t>(i))) : row.null();
    row.emit(fcinfo);
  }
  return static_cast<Datum>(0);
}

Datum connbudget_worker(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  InitMaterializedSRF(fcinfo, 0);

  LWLockAcquire(&state.lock, LW_SHARED);
  const pid_t pid = state.worker_pid;
  const int budgets = state.budgets_loaded;
  const TimestampTz loaded_at = state.loaded_at, checked_at = state.checked_at;
  const TimestampTz last_error_at = state.last_error_at;
  char last_error[kErrorLength];
  strlcpy(last_error, state.last_error, sizeof last_error);
  const uint64 generation = ledger().header().generation;
  const int capacity = ledger().header().capacity;
  const int shortfall = state.reservation_shortfall;
  const MatchIndex::Summary index = ledger().index_summary();
  const bool indexed = ledger().header().index_current;
  LWLockRelease(&state.lock);
  const MemoryUse memory = memory_use();

  ResultRow<15> row;
  pid ? row.integer(pid) : row.null();
  row.text(database);
  row.bigint(static_cast<std::int64_t>(generation));
  row.integer(budgets);
  row.timestamp(loaded_at);
  row.timestamp(checked_at);
  last_error[0] ? row.text(last_error) : row.null();
  last_error[0] ? row.timestamp(last_error_at) : row.null();
  row.integer(capacity);
  row.integer(shortfall);
  row.bigint(static_cast<std::int64_t>(memory.total));
  row.integer(static_cast<int>(memory.per_budget));
  row.integer(static_cast<int>(memory.per_session));
  indexed ? row.integer(index.name_shapes + index.address_shapes) : row.null();
  indexed ? row.integer(index.unindexed) : row.null();
  row.emit(fcinfo);
  return static_cast<Datum>(0);
}

Datum connbudget_latency(PG_FUNCTION_ARGS) {
  SharedState& state = require_shared_state();
  InitMaterializedSRF(fcinfo, 0);

  LWLockAcquire(&state.lock, LW_SHARED);
  const TimestampTz since = state.latency_reset;
  LWLockRelease(&state.lock);
  const std::pair<const char*, const LatencyHistogram*> measures[] = {
      {"login_checks", &state.login_checks}, {"admission", &state.admission_cost}, {"handoff", &state.handoff}};
  for (const auto& [name, histogram] : measures) {
    const LatencyHistogram::Summary summary = histogram->summary();
    ResultRow<7> row;
    row.text(name);
    row.bigint(static_cast<std::int64_t>(summary.count));
    for (const double ns : {summary.mean_ns, summary.p50_ns, summary.p99_ns, summary.max_ns})
      summary.count ? row.number(ns / 1000.0) : row.null();
    row.timestamp(since);
    row.emit(fcinfo);
  }
  return static_cast<Datum>(0);
}
