// Defines the connbudget.* GUCs. Postmaster-context ones size shared memory; sighup ones
// are read by each backend at login, so a reload reaches new logins without a restart.
extern "C" {
#include "postgres.h"

#include "utils/guc.h"
}

#include <algorithm>
#include <climits>

#include "pg/settings.hpp"
#include "pg/shared_state.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {

bool enabled = true;
char* database = nullptr;  // set by define_server_start_settings(), if ever
int default_max_connections = -1;
int default_on_full = static_cast<int>(OnFull::Reject);
int queue_timeout_ms = 5000;
int max_queue = 32;
bool exempt_superusers = true;
int max_budgets = 1000;
int waiting_room = 0;
int sample_interval_ms = 10000;
int history_size = 10000;
int idle_reclaim_ms = BudgetLimits::kNeverReclaim;
int on_mismatch = static_cast<int>(OnMismatch::FallThrough);
int reject_grace_ms = 100;

namespace {

constexpr int kMaxBudgetsCeiling = 100000;  // connbudget.max_budgets' upper bound
bool server_start_settings_defined = false;

const struct config_enum_entry on_full_options[] = {
    {"reject", static_cast<int>(OnFull::Reject), false},
    {"queue", static_cast<int>(OnFull::Queue), false},
    {nullptr, 0, false},
};

const struct config_enum_entry on_mismatch_options[] = {
    {"fall_through", static_cast<int>(OnMismatch::FallThrough), false},
    {"refuse", static_cast<int>(OnMismatch::Refuse), false},
    {nullptr, 0, false},
};

}  // namespace

void define_settings() {
  DefineCustomBoolVariable("connbudget.enabled", "Enforces connection budgets at login.",
                           "When off, every login is admitted but still counted.", &enabled, true,
                           PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("connbudget.default_max_connections",
                          "Most sessions of logins that match no budget (-1: no limit).", nullptr,
                          &default_max_connections, -1, -1, INT_MAX, PGC_SIGHUP, 0, nullptr,
                          nullptr, nullptr);
  DefineCustomEnumVariable("connbudget.default_on_full",
                           "What a login of the implicit default budget gets when it is full.",
                           nullptr, &default_on_full, static_cast<int>(OnFull::Reject),
                           on_full_options, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("connbudget.queue_timeout",
                          "How long a queued login waits for a slot, unless its budget says.", nullptr,
                          &queue_timeout_ms, 5000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr,
                          nullptr, nullptr);
  DefineCustomIntVariable("connbudget.max_queue",
                          "Most logins waiting at once per budget, unless the budget says.", nullptr,
                          &max_queue, 32, 0, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("connbudget.exempt_superusers",
                           "Counts superusers under the budget \"exempt\" and never limits them.",
                           nullptr, &exempt_superusers, true, PGC_SIGHUP, 0, nullptr, nullptr,
                           nullptr);
  DefineCustomIntVariable("connbudget.waiting_room",
                          "Connections kept for logins that wait for shared capacity.",
                          "Sessions beyond their budgets' reservations leave this many of the "
                          "server's connections to queued logins, which then wait for shared "
                          "capacity, served by budget priority. 0: a login the server has no "
                          "session for is refused, even if its budget queues.",
                          &waiting_room, 0, 0, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("connbudget.sample_interval",
                          "How often the worker samples budgets into connbudget.history.", nullptr,
                          &sample_interval_ms, 10000, 100, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable("connbudget.idle_reclaim",
                          "How long a session of the default budget may be idle while its logins wait.",
                          "A login of the default budget that waits for a slot ends the session of that "
                          "budget idle longest, outside any transaction, for at least this long. -1: never.",
                          &idle_reclaim_ms, BudgetLimits::kNeverReclaim, -1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS,
                          nullptr, nullptr, nullptr);
  DefineCustomEnumVariable("connbudget.on_mismatch",
                           "What a login gets that claims a budget's application_name with another role.",
                           "A budget whose row names both an application_name and a role_name entitles that "
                           "role to the name. fall_through: the login is matched against the rows after it; "
                           "refuse: it is refused. Either way it is counted (mismatched) and logged.",
                           &on_mismatch, static_cast<int>(OnMismatch::FallThrough), on_mismatch_options,
                           PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("connbudget.reject_grace",
                          "How long a login of a full budget that refuses waits for a slot before it is refused.",
                          "A pool that closes a connection and logs in again at once finds its old session "
                          "still counted until that backend has exited; within the grace the new login takes "
                          "its slot. 0: refused at once.",
                          &reject_grace_ms, 100, 0, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
  // Not on a server that does not preload the library: reserving the prefix would remove
  // (with a warning in every session that loads it) postgresql.conf's values of the
  // server-start settings, which the next start needs and the budgets table's check reads.
  if (server_start_settings_defined) MarkGUCPrefixReserved("connbudget");
}

Policy current_policy() {
  Policy policy;
  policy.default_limits.max_connections = default_max_connections;
  policy.default_limits.on_full = static_cast<OnFull>(default_on_full);
  policy.default_limits.idle_reclaim_ms = idle_reclaim_ms;
  policy.queue_timeout_ms = queue_timeout_ms;
  policy.max_queue = max_queue;
  policy.enforcement_enabled = enabled;
  policy.capacity = connection_capacity();
  policy.waiting_room = std::min(waiting_room, policy.capacity);  // more could only overflow the sums
  policy.on_mismatch = static_cast<OnMismatch>(on_mismatch);
  policy.reject_grace_ms = reject_grace_ms;
  return policy;
}

// The settings that size shared memory or the worker: PostgreSQL lets a library define
// those only while shared_preload_libraries loads it. Elsewhere (CREATE EXTENSION on a server
// that does not preload it) they stay placeholders and the defaults above hold.
void define_server_start_settings() {
  DefineCustomStringVariable("connbudget.database",
                             "Database whose connbudget.budgets table the background worker loads.",
                             nullptr, &database, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr,
                             nullptr);
  DefineCustomIntVariable("connbudget.max_budgets",
                          "Most budgets shared memory can hold.", nullptr, &max_budgets, 1000, 1,
                          kMaxBudgetsCeiling, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("connbudget.history_size",
                          "Rows connbudget.history keeps: one per budget per sample.",
                          "The oldest rows are overwritten; 0 turns the history off.", &history_size,
                          10000, 0, INT_MAX, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  server_start_settings_defined = true;
}

int configured_max_budgets() {
  if (server_start_settings_defined) return max_budgets;
  // Only a placeholder here, holding postgresql.conf's text, if any.
  int configured = max_budgets;
  if (const char* text = GetConfigOption("connbudget.max_budgets", true, false))
    (void)parse_int(text, &configured, 0, nullptr);
  return std::clamp(configured, 1, kMaxBudgetsCeiling);
}

}  // namespace connbudget::pg
