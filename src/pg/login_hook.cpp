// The login path. Runs in each new backend during authentication (ClientAuthentication
// hook): classifies the login, then books a slot, queues it, or refuses it with FATAL 53300
// (the messages are in login_reports.cpp).
//
// Rules: no I/O and no waiting on the worker; catalog lookups happen before the lock; one
// shared acquisition of our LWLock to classify (through the match index), then one
// exclusive one, held only to decide and book (no ereport, no allocation inside); the
// release callback is registered before a slot is booked, so every way out of the process
// (logout, later FATAL, termination) gives the slot back. A queued login waits on its own
// latch, outside the lock; the session that frees a slot hands it over under the lock and
// sets the waiter's latch. What the server really has free is PostgreSQL's own count of
// free backends, asked under the lock only when the ledger's count leaves room; a login
// admitted that way is not checked again by PostgreSQL.
extern "C" {
#include "postgres.h"

#include "libpq/auth.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <time.h>

#include <algorithm>
#include <new>
#include <optional>
#include <span>

#include "pg/login_attributes.hpp"
#include "pg/login_checks.hpp"
#include "pg/login_hook.hpp"
#include "pg/login_reports.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

// A queued login stops waiting this long before authentication_timeout ends it, so that
// the client gets our message rather than a closed connection.
constexpr long kAuthenticationTimeoutMarginMs = 250;

ClientAuthentication_hook_type previous_hook = nullptr;

// What this backend booked, and where its wake-ups are listed. Kept in TopMemoryContext
// and passed along, not in the module's own variables: a new backend's first write to the
// module's data page copies that page, one more page fault on every login.
struct Booking {
  int session = -1;  // the session slot booked (active or waiting), or -1
  std::span<std::int32_t> wakeups;
};

void release_session(int, Datum arg) {
  SharedState* state = shared_state();
  Booking& booking = *static_cast<Booking*>(static_cast<void*>(DatumGetPointer(arg)));
  if (booking.session < 0 || !state) return;
  Wakeups wakeups(booking.wakeups);
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(&state->lock, LW_EXCLUSIVE);
  ledger().release(booking.session, now, wakeups);
  LWLockRelease(&state->lock);
  booking.session = -1;
  wake_sessions(wakeups);
}

Outcome admit(SharedState& state, Login& login, Booking& booking) {
  const Policy policy = current_policy();
  const TimestampTz now = GetCurrentTimestamp();
  Wakeups wakeups(booking.wakeups);
  // Read without the lock, so the usual case takes it once; rechecked under it. (Counted in
  // `admission`: only logins of servers with "+role" budgets look their groups up.)
  if (ledger().header().uses_role_groups) login.add_groups();
  for (;;) {
    // Classified under the shared lock, so that logins classify side by side; decided and
    // booked under the exclusive one, classified again only if the budgets changed between.
    // (An exempt login needs no rule: it is classified under the exclusive lock at once.)
    Classification classification;
    std::optional<std::uint64_t> classified_at;  // the generation it was classified against
    if (!login.exempt) {
      LWLockAcquire(&state.lock, LW_SHARED);
      classified_at = ledger().header().generation;
      classification = ledger().classify(login.attributes, login.exempt);
      LWLockRelease(&state.lock);
    }
    LWLockAcquire(&state.lock, LW_EXCLUSIVE);
    Ledger& books = ledger();
    if (books.header().uses_role_groups && !login.has_groups) {
      LWLockRelease(&state.lock);  // the configuration changed meanwhile
      login.add_groups();
      continue;
    }
    if (classified_at != books.header().generation) classification = books.classify(login.attributes, login.exempt);
    Outcome outcome;
    const ServerBackends free(login.kept_free, 0);
    outcome.admission = books.admit(my_session_slot(), classification, login.attributes, MyProcPid, policy, free, now,
                                    wakeups);
    const Admission& a = outcome.admission;
    if (a.budget != kNoBudget) {
      outcome.budget = books.budgets()[a.budget].definition.name;
      outcome.mode = books.limits_of(a.budget).mode;
      outcome.on_full = books.limits_of(a.budget).on_full;
      if (a.mismatched != kNoBudget) {
        const BudgetRule& rule = books.budgets()[a.mismatched].definition.rule;
        outcome.mismatched_budget = books.budgets()[a.mismatched].definition.name;
        outcome.mismatched_role = rule.role_name;
        outcome.mismatched_role_is_group = rule.role_is_group;
      }
      if (!refuses(a.verdict)) booking.session = my_session_slot();
    }
    LWLockRelease(&state.lock);
    wake_sessions(wakeups);
    return outcome;
  }
}

// The longest a queued login may wait: its budget's queue_timeout, cut short so that it
// ends before authentication_timeout does.
long wait_limit_ms(const Admission& queued, bool* capped) {
  const long elapsed = TimestampDifferenceMilliseconds(MyStartTimestamp, GetCurrentTimestamp());
  const long allowed = AuthenticationTimeout * 1000L - elapsed - kAuthenticationTimeoutMarginMs;
  *capped = allowed < queued.queue_timeout_ms;
  return std::max(0L, std::min<long>(queued.queue_timeout_ms, allowed));
}

// The phase of this waiting session's slot: still Waiting, Active once the slot has been
// handed over (the handoff latency is recorded then), or Displaced (with the budget that
// took its place copied to *displaced_by; empty if it gave way to reservations, and
// whether to log that in *log).
SessionPhase waiting_phase(SharedState& state, int session, FixedString<kNameMax>* displaced_by,
                           LogLimiter::Decision* log) {
  LWLockAcquire(&state.lock, LW_SHARED);
  const SessionState& slot = ledger().sessions()[session];
  const SessionPhase phase = slot.phase;
  const TimestampTz granted_at = slot.granted_us;
  if (phase == SessionPhase::Displaced && slot.displaced_by != kNoBudget)
    *displaced_by = ledger().budgets()[slot.displaced_by].definition.name;
  if (phase == SessionPhase::Displaced) *log = slot.displaced_log;
  LWLockRelease(&state.lock);
  if (phase == SessionPhase::Active) {
    const long long waited_us = GetCurrentTimestamp() - granted_at;
    state.handoff.record(static_cast<std::uint64_t>(std::max(0LL, waited_us)) * 1000);
  }
  return phase;
}

// Leaves the queue, unless its slot was granted or its place given away first (the caller
// sees which on its next look). Refreshes what the messages say: a reload may have moved
// the waiter to another budget.
Departed leave_queue(SharedState& state, Booking& booking, Departure why, Outcome* queued) {
  const int session = booking.session;
  Wakeups wakeups(booking.wakeups);
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(&state.lock, LW_EXCLUSIVE);
  // Terminated or canceled: not admitted even if the slot came meanwhile.
  const Departed departed = why == Departure::Terminated || why == Departure::Canceled
                                ? ledger().forgo_grant(session, why, now, wakeups)
                                : ledger().leave_queue(session, why, now, wakeups);
  if (departed.outcome == Departed::Outcome::Left) {
    booking.session = -1;
    const BudgetState& budget = ledger().budgets()[departed.budget];
    queued->budget = budget.definition.name;
    queued->admission.budget = departed.budget;
    queued->admission.active = budget.active;
    queued->admission.waiting = budget.waiting;
    queued->admission.limit = ledger().limits_of(departed.budget).max_connections;
    queued->admission.paused = budget.paused;
    queued->admission.log = departed.log;
  }
  LWLockRelease(&state.lock);
  wake_sessions(wakeups);
  return departed;
}

// Why PostgreSQL would interrupt this waiting login now: pg_terminate_backend() or a
// shutdown, pg_cancel_backend(). During authentication it would end it silently, as if it
// had timed out; we say why, and name the budget.
std::optional<Departure> interruption() {
  if (ProcDiePending) return Departure::Terminated;
  if (QueryCancelPending) return Departure::Canceled;
  return std::nullopt;
}

// Waits in the budget's queue until the slot is handed over (returns), or the timeout
// passes (for a budget that refuses, the grace: then refused as full), the client goes
// away or the backend is terminated or canceled (FATAL). Postmaster death
// ends the process; the release callback then takes the login out of the queue.
void wait_for_slot(SharedState& state, Outcome& queued, const LoginAttributes& login, Booking& booking) {
  const int session = booking.session;
  // InitPostgres took a snapshot before authentication; do not hold back VACUUM's horizon
  // while we wait (the next catalog access takes a fresh one).
  InvalidateCatalogSnapshot();
  // An idle session may be ended for this login (idle_reclaim): the worker decides.
  if (ledger().header().uses_idle_reclaim) wake_worker();
  bool capped = false;
  const long limit_ms = wait_limit_ms(queued.admission, &capped);
  const TimestampTz started = GetCurrentTimestamp();
  const TimestampTz deadline = TimestampTzPlusMilliseconds(started, limit_ms);
  WaitEventSet* events = create_wait_event_set(3);
  AddWaitEventToSet(events, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
  AddWaitEventToSet(events, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
  if (MyProcPort && WaitEventSetCanReportClosed())
    AddWaitEventToSet(events, WL_SOCKET_CLOSED, MyProcPort->sock, nullptr, nullptr);

  std::optional<Departure> departure;
  for (;;) {
    FixedString<kNameMax> displaced_by;
    LogLimiter::Decision displaced_log;
    const SessionPhase phase = waiting_phase(state, session, &displaced_by, &displaced_log);
    if (!departure) departure = interruption();  // even if the slot just came
    if (phase == SessionPhase::Active && !departure) break;
    if (phase == SessionPhase::Displaced)
      report_displaced(queued, login, TimestampDifferenceMilliseconds(started, GetCurrentTimestamp()), displaced_by,
                       displaced_log);
    const TimestampTz now = GetCurrentTimestamp();
    if (departure || now >= deadline) {
      if (!departure) departure = Departure::TimedOut;
      const Departed left = leave_queue(state, booking, *departure, &queued);
      if (left.outcome == Departed::Outcome::Granted) break;
      if (left.outcome == Departed::Outcome::Displaced) continue;  // reported at the top
      FreeWaitEventSet(events);
      if (left.refused) {  // a full budget that refuses: no session left it within the grace
        queued.admission.verdict = Verdict::Refuse;
        report(queued, login);
      }
      report_departure(queued, login, *departure, TimestampDifferenceMilliseconds(started, GetCurrentTimestamp()),
                       capped);
    }
    WaitEvent event;
    if (WaitEventSetWait(events, TimestampDifferenceMilliseconds(now, deadline), &event, 1,
                         wait_event(Wait::LoginQueue)) == 1 &&
        (event.events & WL_SOCKET_CLOSED))
      departure = Departure::Abandoned;
    ResetLatch(MyLatch);
    if (!departure) departure = interruption();
    if (!departure) CHECK_FOR_INTERRUPTS();
  }
  FreeWaitEventSet(events);
}

void on_client_authentication(Port* port, int status) {
  if (previous_hook) previous_hook(port, status);
  SharedState* state = shared_state();
  // Only successful logins of ordinary backends count; walsenders never do.
  if (status != STATUS_OK || am_walsender || !state || MyBackendType != B_BACKEND) return;

  // The monotonic clock in nanoseconds (clock_gettime: no system call).
  const auto now_ns = [] {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(now.tv_nsec);
  };
  const std::uint64_t started = now_ns();
  map_hot_window();
  Login login = login_from_port(*port);
  // A login PostgreSQL is about to refuse takes no place: it goes on to that error.
  const bool doomed = postgres_will_refuse(login);
  const std::uint64_t admitting = now_ns();
  state->login_checks.record(admitting - started);
  if (doomed) return;
  // (PostgreSQL authenticates a backend once: this runs once per process.)
  auto* booking = new (MemoryContextAlloc(TopMemoryContext, sizeof(Booking))) Booking{-1, new_wakeup_buffer()};
  before_shmem_exit(release_session, PointerGetDatum(booking));
  Outcome outcome = admit(*state, login, *booking);
  state->admission_cost.record(now_ns() - admitting);
  report_mismatch(outcome, login.attributes);
  const Verdict verdict = outcome.admission.verdict;
  if (verdict == Verdict::Queue)
    wait_for_slot(*state, outcome, login.attributes, *booking);  // returns once admitted
  else
    report(outcome, login.attributes);  // returns unless refused
  // Admitted by the budgets, from what the server really has free (or within its budget's
  // entitlement): PostgreSQL's own, approximate check of its reserved slots must not turn
  // it away now. Not for a login admitted only because enforcement is off.
  if ((verdict == Verdict::Admit || verdict == Verdict::Queue) && !login.exempt) skip_reserved_slots_check();
}

}  // namespace

void install_login_hook() {
  previous_hook = ClientAuthentication_hook;
  ClientAuthentication_hook = on_client_authentication;
  install_log_limiter();
}

}  // namespace connbudget::pg
