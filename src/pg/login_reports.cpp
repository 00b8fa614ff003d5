// The messages of the login path (see login_reports.hpp).
extern "C" {
#include "postgres.h"

#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
}

#include <algorithm>

#include "pg/login_reports.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

emit_log_hook_type previous_emit_log_hook = nullptr;
int hide_next_report = 0;  // the level (FATAL, LOG) of our next message if it stays out of the server log

// A message held back goes neither to the server log nor to the hooks chained after us
// (log shippers).
// A session that idle reclaim ends (idle_reclaim.cpp) would get PostgreSQL's "terminating
// connection due to administrator command": say instead who needed its slot and why, with
// the same SQLSTATE (57P01), which pools take for "connection gone". Its own slot was
// marked before the signal and only this session clears it, so it is read without a lock.
// False if this message is not that.
bool explain_reclaim(ErrorData* edata) {
  if (edata->elevel != FATAL || edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN || !shared_state() || !MyProc) return false;
  const int session = my_session_slot();
  if (session < 0 || static_cast<std::size_t>(session) >= ledger().sessions().size()) return false;
  const SessionState& slot = ledger().sessions()[session];
  if (slot.phase != SessionPhase::Active || slot.pid != MyProcPid || !slot.reclaimed) return false;
  const double idle_s = static_cast<double>(slot.reclaimed_idle_us) / 1e6;
  const double after_s = slot.reclaimed_after_ms / 1000.0;
  const ReclaimNames& names = ledger().reclaim_names(session);
  edata->message = psprintf("terminating idle connection for a login waiting in connection budget \"%s\"",
                            names.for_budget.c_str());
  edata->message_id = edata->message;
  edata->detail = psprintf("This session of connection budget \"%s\" had been idle for %.1f s, outside any "
                           "transaction; the budget's idle_reclaim is %.1f s.",
                           names.own_budget.c_str(), idle_s, after_s);
  edata->detail_log = psprintf("Session of connection budget \"%s\" idle for %.1f s (idle_reclaim %.1f s) ended "
                               "for a waiting login; application_name \"%s\", role \"%s\", database \"%s\".",
                               names.own_budget.c_str(), idle_s, after_s, slot.application_name.c_str(),
                               slot.role_name.c_str(), slot.database_name.c_str());
  edata->hint = pstrdup("Connection pools open a new connection when they need one; idle_reclaim in "
                        "connbudget.budgets sets how long a session may stay idle while logins wait.");
  edata->output_to_server = edata->output_to_server && slot.reclaimed_log.log;
  return true;
}

void on_emit_log(ErrorData* edata) {
  if (explain_reclaim(edata) && !edata->output_to_server) return;
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

// Who holds the server's connections for ordinary logins, for a refusal because it is
// full: what the ledger counts, and what PostgreSQL's own count adds (logins still
// authenticating, or refused and on their way out).
struct ServerUse {
  int sessions = 0;    // of budgets
  int waiting = 0;
  int other = 0;       // starting or ending
  int superusers = 0;
  const char* kept = "";  // what PostgreSQL keeps beyond them, in words
};

ServerUse server_use(const Admission& a) {
  ServerUse use;
  use.sessions = a.server_sessions - a.server_exempt;
  use.waiting = a.server_waiting;
  use.superusers = a.server_exempt;
  // Backends held by others than this login, as PostgreSQL counts them.
  const int held = MaxConnections - free_backends(kept_free_slots() + 1) - 1;
  use.other = std::max(0, held - a.server_sessions - a.server_waiting);
  use.kept = describe_kept_free_slots();
  return use;
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
    case Verdict::RefuseServerFull: return "the server has no connection left for ordinary logins";
    default: return "the budget is full";
  }
}

}  // namespace

// The role a mismatched budget is for, in words.
const char* entitled_role(const Outcome& outcome) {
  return psprintf(outcome.mismatched_role_is_group ? "members of role \"%s\"" : "role \"%s\"",
                  outcome.mismatched_role.c_str());
}

// A login that claimed another role's application_name and went on to the rows after it:
// a LOG line (rate-limited like refusals) says who claimed what.
void report_mismatch(const Outcome& outcome, const LoginAttributes& login) {
  const Admission& a = outcome.admission;
  if (a.mismatched == kNoBudget || a.verdict == Verdict::RefuseMismatch) return;
  if (!a.mismatch_log.log) {
    if (a.mismatch_log.first_suppressed) wake_worker();
    return;
  }
  const char* more = held_back(a.mismatch_log);
  ereport(LOG, (errmsg("connection budget \"%s\" is for %s: a login of role \"%.*s\" claimed its "
                       "application_name \"%.*s\"",
                       outcome.mismatched_budget.c_str(), entitled_role(outcome),
                       static_cast<int>(login.role_name.size()), login.role_name.data(),
                       static_cast<int>(login.application_name.size()), login.application_name.data()),
                errdetail("It was matched against the budgets after it and counted under \"%s\"; %s.%s",
                          outcome.budget.c_str(), login_description(login), more)));
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
  if (a.verdict == Verdict::RefuseMismatch)
    ereport(FATAL,
            (errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
             errmsg("application_name \"%.*s\" belongs to %s in connection budget \"%s\"",
                    static_cast<int>(login.application_name.size()), login.application_name.data(),
                    entitled_role(outcome), budget),
             errdetail("Role \"%.*s\" may not log in under it (connbudget.on_mismatch is refuse).",
                       static_cast<int>(login.role_name.size()), login.role_name.data()),
             errdetail_log("A login claimed the application_name of connection budget \"%s\" with another role; "
                           "%s.%s",
                           budget, who, more),
             errhint("Log in as that role, or with an application_name of your own.")));
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
  if (a.verdict == Verdict::RefuseReserved) {
    const char* room = a.waiting_room == 0 ? ""
                       : psprintf(" connbudget.waiting_room keeps %d of the server's connections for logins waiting "
                                  "for shared capacity, where sessions beyond their budgets' share may not go.",
                                  a.waiting_room);
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("remaining connections are reserved for other connection budgets"),
             a.limit == BudgetLimits::kUnlimited
                 ? errdetail("Connection budget \"%s\" holds %d connections, %d logins wait for it; %d of the "
                             "server's %d connections are free and %d of them are reserved for other budgets.%s",
                             budget, a.active, a.waiting, std::max(0, a.free), a.capacity, a.reserved_for_others,
                             room)
                 : errdetail("Connection budget \"%s\" holds %d of its %d connections (%d reserved), %d logins "
                             "wait for it; %d of the server's %d connections are free and %d of them are "
                             "reserved for other budgets.%s",
                             budget, a.active, a.limit, a.reserved, a.waiting, std::max(0, a.free), a.capacity,
                             a.reserved_for_others, room),
             errdetail_log("Connection budget \"%s\" holds %d connections (%d reserved), %d waiting; %d of the "
                           "server's %d connections free, %d reserved for other budgets; %s.%s",
                           budget, a.active, a.reserved, a.waiting, std::max(0, a.free), a.capacity,
                           a.reserved_for_others, who, more),
             a.paused ? errhint("%s", refusal_hint(outcome))
                      : errhint("Retry later. The reservations are the column reserved of connbudget.budgets; "
                                "SELECT * FROM connbudget.explain(...) shows the numbers for a login.")));
  }
  if (a.verdict == Verdict::RefuseServerFull) {
    const ServerUse use = server_use(a);
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("the server has no connection left for connection budget \"%s\"", budget),
             errdetail("All %d of the server's connections for ordinary logins are in use: %d by sessions of "
                       "connection budgets, %d by logins waiting in a queue, %d by logins still starting or "
                       "ending, %d by superusers. %s",
                       a.capacity, use.sessions, use.waiting, use.other, use.superusers, use.kept),
             errdetail_log("All %d connections in use (%d sessions, %d waiting, %d starting or ending, %d "
                           "superusers); %s.%s",
                           a.capacity, use.sessions, use.waiting, use.other, use.superusers, who, more),
             errhint("Retry later. For room, raise max_connections, or lower the max_connections or max_queue "
                     "of budgets in connbudget.budgets.")));
  }
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

void install_log_limiter() {
  previous_emit_log_hook = emit_log_hook;
  emit_log_hook = on_emit_log;
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

[[noreturn]] void report_departure(const Outcome& queued, const LoginAttributes& login, Departure why, long waited_ms,
                                   bool capped) {
  const Admission& a = queued.admission;
  const char* who = login_description(login);
  const char* more = held_back(a.log);
  limit_server_log(a.log, FATAL);
  if (why == Departure::Canceled)
    ereport(FATAL, (errcode(ERRCODE_QUERY_CANCELED),
                    errmsg("canceling a login that waited for a slot in connection budget \"%s\"",
                           queued.budget.c_str()),
                    errdetail("waited %ld ms; %d of %d connections in use.", waited_ms, a.active, a.limit),
                    errdetail_log("waited %ld ms; %d of %d connections in use; %s.%s", waited_ms, a.active,
                                  a.limit, who, more)));
  if (why == Departure::Terminated)
    ereport(FATAL, (errcode(ERRCODE_ADMIN_SHUTDOWN),
                    errmsg("terminating a login that waited for a slot in connection budget \"%s\"",
                           queued.budget.c_str()),
                    errdetail("waited %ld ms; %d of %d connections in use.", waited_ms, a.active, a.limit),
                    errdetail_log("waited %ld ms; %d of %d connections in use; %s.%s", waited_ms, a.active,
                                  a.limit, who, more)));
  if (why == Departure::Abandoned) {
    whereToSendOutput = DestNone;  // the client has gone: nothing to send it (no "Broken pipe")
    ereport(FATAL, (errcode(ERRCODE_CONNECTION_FAILURE),
                    errmsg("client closed the connection while waiting for a slot in connection budget \"%s\"",
                           queued.budget.c_str()),
                    errdetail_log("waited %ld ms; %d of %d connections in use; %s.%s", waited_ms, a.active,
                                  a.limit, who, more)));
  }
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
  pg_unreachable();
}

}  // namespace connbudget::pg
