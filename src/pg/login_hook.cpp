// The login path. Runs in each new backend during authentication (ClientAuthentication
// hook): classifies the login, then books a slot, queues it, or refuses it with FATAL 53300.
//
// Rules: no I/O and no waiting on the worker; catalog lookups happen before the lock; one
// exclusive acquisition of our LWLock, held only for classify + admit (no ereport, no
// allocation inside); the release callback is registered before a slot is booked, so every
// way out of the process (logout, later FATAL, termination) gives the slot back. A queued
// login waits on its own latch, outside the lock; the session that frees a slot hands it
// over under the lock and sets the waiter's latch.
//
// The server log gets at most one line per budget per second about its refusals (the
// client always gets its message); the ledger's LogLimiter decides under the lock, and an
// emit_log_hook keeps a held-back line out of the server log. The worker summarises them.
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
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <algorithm>
#include <chrono>

#include "pg/login_attributes.hpp"
#include "pg/login_hook.hpp"
#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

// A queued login stops waiting this long before authentication_timeout ends it, so that
// the client gets our message rather than a closed connection.
constexpr long kAuthenticationTimeoutMarginMs = 250;

using Clock = std::chrono::steady_clock;

ClientAuthentication_hook_type previous_hook = nullptr;
emit_log_hook_type previous_emit_log_hook = nullptr;
int booked_session = -1;  // the session slot this backend booked (active or waiting), or -1
int hide_next_report = 0;  // the level (FATAL, LOG) of our next message if it stays out of the server log

// A message held back goes neither to the server log nor to the hooks chained after us
// (log shippers).
void on_emit_log(ErrorData* edata) {
  if (hide_next_report != 0 && edata->elevel == hide_next_report) {
    edata->output_to_server = false;
    hide_next_report = 0;
    return;
  }
  if (previous_emit_log_hook) previous_emit_log_hook(edata);
}

// Call right before the ereport at `level` that `decision` is about. The first line held
// back asks the worker to summarise them once the second is over.
void limit_server_log(const LogLimiter::Decision& decision, int level) {
  if (decision.first_suppressed) wake_worker();
  hide_next_report = decision.log ? 0 : level;
}

// Who a login is, for the server log (the client knows who it is).
char* login_description(const LoginAttributes& login) {
  return psprintf("application_name \"%.*s\", role \"%.*s\", database \"%.*s\", client %s",
                  static_cast<int>(login.application_name.size()), login.application_name.data(),
                  static_cast<int>(login.role_name.size()), login.role_name.data(),
                  static_cast<int>(login.database_name.size()), login.database_name.data(),
                  MyProcPort && MyProcPort->remote_host ? MyProcPort->remote_host : "unknown");
}

// How many lines about the budget the limiter held back before this one, for the log.
const char* held_back(const LogLimiter::Decision& decision) {
  if (decision.suppressed_before == 0) return "";
  return psprintf(" %lld similar messages about this budget were not logged since the last one.",
                  static_cast<long long>(decision.suppressed_before));
}

void release_session(int, Datum) {
  SharedState* state = shared_state();
  if (booked_session < 0 || !state) return;
  Wakeups wakeups(wakeup_buffer());
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(state->lock, LW_EXCLUSIVE);
  ledger().release(booked_session, now, wakeups);
  LWLockRelease(state->lock);
  booked_session = -1;
  wake_sessions(wakeups);
}

// What the messages need, copied out from under the lock.
struct Outcome {
  Admission admission;
  FixedString<kNameMax> budget;
  Mode mode = Mode::Enforce;
  OnFull on_full = OnFull::Reject;
};

Outcome admit(SharedState& state, Login& login) {
  const Policy policy = current_policy();
  const TimestampTz now = GetCurrentTimestamp();
  Wakeups wakeups(wakeup_buffer());
  // Read without the lock, so the usual case takes it once; rechecked under it.
  if (ledger().header().uses_role_groups) login.add_groups();
  for (;;) {
    LWLockAcquire(state.lock, LW_EXCLUSIVE);
    Ledger& books = ledger();
    if (books.header().uses_role_groups && !login.has_groups) {
      LWLockRelease(state.lock);  // the configuration changed meanwhile
      login.add_groups();
      continue;
    }
    Outcome outcome;
    outcome.admission = books.admit(my_session_slot(), books.classify(login.attributes, login.exempt),
                                    login.attributes, MyProcPid, policy, now, wakeups);
    const Admission& a = outcome.admission;
    if (a.budget != kNoBudget) {
      outcome.budget = books.budgets()[a.budget].definition.name;
      outcome.mode = books.limits_of(a.budget).mode;
      outcome.on_full = books.limits_of(a.budget).on_full;
      if (!refuses(a.verdict)) booked_session = my_session_slot();
    }
    LWLockRelease(state.lock);
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
  LWLockAcquire(state.lock, LW_SHARED);
  const SessionState& slot = ledger().sessions()[session];
  const SessionPhase phase = slot.phase;
  const TimestampTz granted_at = slot.granted_us;
  if (phase == SessionPhase::Displaced && slot.displaced_by != kNoBudget)
    *displaced_by = ledger().budgets()[slot.displaced_by].definition.name;
  if (phase == SessionPhase::Displaced) *log = slot.displaced_log;
  LWLockRelease(state.lock);
  if (phase == SessionPhase::Active) {
    const long long waited_us = GetCurrentTimestamp() - granted_at;
    state.handoff.record(static_cast<std::uint64_t>(std::max(0LL, waited_us)) * 1000);
  }
  return phase;
}

[[noreturn]] void report_displaced(const Outcome& queued, const LoginAttributes& login, long waited_ms,
                                   const FixedString<kNameMax>& displaced_by, const LogLimiter::Decision& log) {
  const char* who = login_description(login);
  const char* more = held_back(log);
  limit_server_log(log, FATAL);
  ereport(FATAL,
          (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
           errmsg("remaining connections are reserved for other connection budgets"),
           displaced_by.empty()
               ? errdetail("This login waited %ld ms in the queue of connection budget \"%s\" and gave its "
                           "place to the reservations of other budgets.",
                           waited_ms, queued.budget.c_str())
               : errdetail("This login waited %ld ms in the queue of connection budget \"%s\" and gave its "
                           "place to a login of budget \"%s\", which has a higher priority.",
                           waited_ms, queued.budget.c_str(), displaced_by.c_str()),
           errdetail_log("Displaced after %ld ms in the queue of connection budget \"%s\": %s.%s", waited_ms,
                         queued.budget.c_str(), who, more),
           errhint("Retry later, or raise the priority of this budget in connbudget.budgets.")));
  pg_unreachable();
}

// Leaves the queue, unless its slot was granted or its place given away first (the caller
// sees which on its next look). Refreshes what the messages say: a reload may have moved
// the waiter to another budget.
Departed::Outcome leave_queue(SharedState& state, int session, Departure why, Outcome* queued) {
  Wakeups wakeups(wakeup_buffer());
  const TimestampTz now = GetCurrentTimestamp();
  LWLockAcquire(state.lock, LW_EXCLUSIVE);
  const Departed departed = ledger().leave_queue(session, why, now, wakeups);
  if (departed.outcome == Departed::Outcome::Left) {
    booked_session = -1;
    const BudgetState& budget = ledger().budgets()[departed.budget];
    queued->budget = budget.definition.name;
    queued->admission.budget = departed.budget;
    queued->admission.active = budget.active;
    queued->admission.waiting = budget.waiting;
    queued->admission.limit = ledger().limits_of(departed.budget).max_connections;
    queued->admission.paused = budget.paused;
    queued->admission.log = departed.log;
  }
  LWLockRelease(state.lock);
  wake_sessions(wakeups);
  return departed.outcome;
}

// Waits in the budget's queue until the slot is handed over (returns), or the timeout
// passes, the client goes away or the backend is terminated (FATAL). Postmaster death
// ends the process; the release callback then takes the login out of the queue.
void wait_for_slot(SharedState& state, Outcome& queued, const LoginAttributes& login) {
  const int session = my_session_slot();
  // InitPostgres took a snapshot before authentication; do not hold back VACUUM's horizon
  // while we wait (the next catalog access takes a fresh one).
  InvalidateCatalogSnapshot();
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
    if (phase == SessionPhase::Active) break;
    if (phase == SessionPhase::Displaced)
      report_displaced(queued, login, TimestampDifferenceMilliseconds(started, GetCurrentTimestamp()), displaced_by,
                       displaced_log);
    const TimestampTz now = GetCurrentTimestamp();
    if (departure || now >= deadline) {
      if (!departure) departure = Departure::TimedOut;
      const Departed::Outcome left = leave_queue(state, session, *departure, &queued);
      if (left == Departed::Outcome::Granted) break;
      if (left == Departed::Outcome::Displaced) continue;  // reported at the top
      FreeWaitEventSet(events);
      const long waited_ms = TimestampDifferenceMilliseconds(started, GetCurrentTimestamp());
      const Admission& a = queued.admission;
      const char* who = login_description(login);
      const char* more = held_back(a.log);
      limit_server_log(a.log, FATAL);
      if (*departure == Departure::Terminated)
        ereport(FATAL, (errcode(ERRCODE_ADMIN_SHUTDOWN),
                        errmsg("terminating a login that waited for a slot in connection budget \"%s\"",
                               queued.budget.c_str()),
                        errdetail("waited %ld ms; %d of %d connections in use.", waited_ms, a.active, a.limit),
                        errdetail_log("waited %ld ms; %d of %d connections in use; %s.%s", waited_ms, a.active,
                                      a.limit, who, more)));
      if (*departure == Departure::Abandoned)
        ereport(FATAL, (errcode(ERRCODE_CONNECTION_FAILURE),
                        errmsg("client closed the connection while waiting for a slot in connection budget \"%s\"",
                               queued.budget.c_str()),
                        errdetail_log("waited %ld ms; %d of %d connections in use; %s.%s", waited_ms, a.active,
                                      a.limit, who, more)));
      const bool budget_had_room = a.limit == BudgetLimits::kUnlimited || a.active < a.limit;
      ereport(FATAL,
              (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
               errmsg("timed out waiting for a slot in connection budget \"%s\"", queued.budget.c_str()),
               a.paused
                   ? errdetail("waited %ld ms; the budget is paused (%d of %d connections in use).", waited_ms,
                               a.active, a.limit)
               : a.limit == BudgetLimits::kUnlimited
                   ? errdetail("waited %ld ms; the budget holds %d connections, and no shared capacity was "
                               "free for its priority.", waited_ms, a.active)
               : budget_had_room
                   ? errdetail("waited %ld ms; %d of %d connections in use, and no shared capacity was free "
                               "for this budget's priority.", waited_ms, a.active, a.limit)
                   : errdetail("waited %ld ms; %d of %d connections in use.", waited_ms, a.active, a.limit),
               errdetail_log("waited %ld ms; %d of %d connections in use%s; %s.%s", waited_ms, a.active, a.limit,
                             a.paused ? ", budget paused" : "", who, more),
               a.paused ? errhint("An administrator paused this budget; connbudget.resume('%s') lets logins in.",
                                  queued.budget.c_str())
               : capped ? errhint("The wait is limited by authentication_timeout (%d s); queue_timeout asks for %d ms.",
                                  AuthenticationTimeout, a.queue_timeout_ms)
                        : errhint("Raise queue_timeout or max_connections of this budget in connbudget.budgets.")));
    }
    WaitEvent event;
    if (WaitEventSetWait(events, TimestampDifferenceMilliseconds(now, deadline), &event, 1,
                         wait_event(Wait::LoginQueue)) == 1 &&
        (event.events & WL_SOCKET_CLOSED))
      departure = Departure::Abandoned;
    ResetLatch(MyLatch);
    // During authentication PostgreSQL would end us silently, as if timed out: say why.
    if (ProcDiePending && !departure) departure = Departure::Terminated;
    if (!departure) CHECK_FOR_INTERRUPTS();
  }
  FreeWaitEventSet(events);
}

// A displaced waiter holds its backend until it has exited. Right after this hook,
// PostgreSQL checks that the slots kept for superusers are still free; give the waiter a
// moment (at most a second) to go, so that this login does not fail there instead.
void wait_for_displaced_exit() {
  for (int waited_ms = 0; kept_free_slots() > 0 && waited_ms < 1000 && !kept_free_slots_are_free(); ++waited_ms) {
    WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1, wait_event(Wait::DisplacedExit));
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
  }
}

const char* refusal_hint(const Outcome& outcome) {
  if (outcome.admission.paused)
    return psprintf("An administrator paused this budget; connbudget.resume('%s') lets logins in again.",
                    outcome.budget.c_str());
  if (outcome.admission.budget == kDefaultBudget)
    return "Logins that match no budget share the default budget: raise "
           "connbudget.default_max_connections, or add a budget for this application to "
           "connbudget.budgets.";
  if (outcome.admission.verdict == Verdict::RefuseQueueFull)
    return "Retry later, or raise max_queue or max_connections of this budget in connbudget.budgets.";
  return "Retry when sessions of this budget have ended, or raise its max_connections in "
         "connbudget.budgets.";
}

// Why enforcement would have queued or refused a login (for monitor mode's log line).
const char* enforced_reason(Verdict enforced) {
  switch (enforced) {
    case Verdict::Queue: return "the budget is full";
    case Verdict::RefuseQueueFull: return "the budget is full and so is its queue";
    case Verdict::RefuseReserved: return "remaining connections are reserved for other budgets";
    case Verdict::RefusePaused: return "the budget is paused";
    default: return "the budget is full";
  }
}

void report(const Outcome& outcome, const LoginAttributes& login) {
  const Admission& a = outcome.admission;
  const bool monitored = a.verdict == Verdict::AdmitOverLimit && outcome.mode == Mode::Monitor;
  if (!refuses(a.verdict) && !monitored) return;
  if (monitored && !a.log.log) {  // a LOG line held back: nothing to format
    if (a.log.first_suppressed) wake_worker();
    return;
  }
  const char* budget = outcome.budget.c_str();
  const char* who = login_description(login);
  const char* more = held_back(a.log);
  limit_server_log(a.log, FATAL);
  if (a.verdict == Verdict::Refuse)
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("connection budget \"%s\" is full", budget),
             errdetail("%d of %d connections in use (application_name \"%.*s\", role \"%.*s\", "
                       "database \"%.*s\").",
                       a.active, a.limit, static_cast<int>(login.application_name.size()),
                       login.application_name.data(), static_cast<int>(login.role_name.size()),
                       login.role_name.data(), static_cast<int>(login.database_name.size()),
                       login.database_name.data()),
             errdetail_log("%d of %d connections in use; %s.%s", a.active, a.limit, who, more),
             errhint("%s", refusal_hint(outcome))));
  if (a.verdict == Verdict::RefusePaused)
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("connection budget \"%s\" is paused", budget),
             errdetail("An administrator paused new logins of this budget; its %d sessions continue.", a.active),
             errdetail_log("Paused budget, %d sessions; %s.%s", a.active, who, more),
             errhint("Retry later. connbudget.resume('%s') lets logins in again.", budget)));
  if (a.verdict == Verdict::RefuseReserved)
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("remaining connections are reserved for other connection budgets"),
             a.limit == BudgetLimits::kUnlimited
                 ? errdetail("Connection budget \"%s\" holds %d connections, %d logins wait for it; %d of the "
                             "server's %d connections are free and %d of them are reserved for other budgets.",
                             budget, a.active, a.waiting, std::max(0, a.free), a.capacity, a.reserved_for_others)
                 : errdetail("Connection budget \"%s\" holds %d of its %d connections (%d reserved), %d logins "
                             "wait for it; %d of the server's %d connections are free and %d of them are "
                             "reserved for other budgets.",
                             budget, a.active, a.limit, a.reserved, a.waiting, std::max(0, a.free), a.capacity,
                             a.reserved_for_others),
             errdetail_log("Connection budget \"%s\" holds %d connections (%d reserved), %d waiting; %d of the "
                           "server's %d connections free, %d reserved for other budgets; %s.%s",
                           budget, a.active, a.reserved, a.waiting, std::max(0, a.free), a.capacity,
                           a.reserved_for_others, who, more),
             a.paused ? errhint("%s", refusal_hint(outcome))
                      : errhint("Retry later. The reservations are the column reserved of connbudget.budgets; "
                                "SELECT * FROM connbudget.explain(...) shows the numbers for a login.")));
  if (a.verdict == Verdict::RefuseQueueFull)
    ereport(FATAL, (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
                    errmsg("connection budget \"%s\" is full and its queue is full", budget),
                    errdetail("%d of %d connections in use, %d logins waiting.", a.active, a.limit, a.waiting),
                    errdetail_log("%d of %d connections in use, %d logins waiting; %s.%s", a.active, a.limit,
                                  a.waiting, who, more),
                    errhint("%s", refusal_hint(outcome))));
  ereport(LOG, (errmsg("connection budget \"%s\" would have %s this login (monitor mode)", budget,
                       a.enforced == Verdict::Queue ? "queued" : "refused"),
                errdetail("%s: %d of %d connections in use, %d logins waiting; %d of the server's %d "
                          "connections free, %d of them reserved for other budgets; %s.%s",
                          enforced_reason(a.enforced), a.active, a.limit, a.waiting, std::max(0, a.free),
                          a.capacity, a.reserved_for_others, who, more)));
}

void on_client_authentication(Port* port, int status) {
  if (previous_hook) previous_hook(port, status);
  SharedState* state = shared_state();
  // Only successful logins of ordinary backends count; walsenders never do.
  if (status != STATUS_OK || am_walsender || !state || MyBackendType != B_BACKEND) return;

  const Clock::time_point started = Clock::now();
  Login login = login_from_port(*port);
  static bool release_registered = false;
  if (!release_registered) {
    before_shmem_exit(release_session, 0);
    release_registered = true;
  }
  Outcome outcome = admit(*state, login);
  state->admission_cost.record(
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count()));
  if (outcome.admission.displaced != kNoSession && !refuses(outcome.admission.verdict))
    wait_for_displaced_exit();
  if (outcome.admission.verdict == Verdict::Queue)
    wait_for_slot(*state, outcome, login.attributes);
  else
    report(outcome, login.attributes);
}

}  // namespace

void install_login_hook() {
  previous_hook = ClientAuthentication_hook;
  ClientAuthentication_hook = on_client_authentication;
  previous_emit_log_hook = emit_log_hook;
  emit_log_hook = on_emit_log;
}

}  // namespace connbudget::pg
