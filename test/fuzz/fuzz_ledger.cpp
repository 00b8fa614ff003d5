// libFuzzer target: random sequences of ledger operations — logins into budgets that
// reject, queue, reserve, monitor, reclaim and entitle; releases; waiters leaving for
// every reason or forgoing a grant; reconfigurations; pauses; idle reclaim; changes of the
// settings, the capacity and of what the server has free — and after each one every
// invariant of core/ledger.hpp (test/support/ledger_invariants.hpp), and that a login
// within its budget's entitlement is admitted. Input: pairs of bytes (operation, argument).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

#include "core/reclaim.hpp"
#include "support/fake_server.hpp"
#include "support/ledger_invariants.hpp"

using namespace connbudget;
using namespace connbudget::testing_support;

namespace {

constexpr int kMaxBudgets = 6;
constexpr int kSessions = 12;

BudgetDefinition budget(std::string_view name, std::string_view app, int max, std::string_view on_full, int reserved,
                        int priority, int idle_reclaim_ms = BudgetLimits::kNeverReclaim,
                        std::string_view role = {}) {
  BudgetRow row;
  row.name = name;
  row.application_name = app;
  row.max_connections = max;
  row.on_full = on_full;
  row.reserved = reserved;
  row.priority = priority;
  row.max_queue = 4;
  if (!role.empty()) row.role_name = role;
  if (idle_reclaim_ms >= 0) row.idle_reclaim_ms = idle_reclaim_ms;
  BudgetDefinition def;
  if (build_definition(row, def)) std::abort();
  return def;
}

const std::vector<std::vector<BudgetDefinition>>& configurations() {
  static const std::vector<std::vector<BudgetDefinition>> all = [] {
    BudgetDefinition monitored = budget("m", "m", 1, "queue", 0, 7);
    monitored.limits.mode = Mode::Monitor;
    return std::vector<std::vector<BudgetDefinition>>{
        {budget("a", "a", 2, "queue", 2, 1, 0), budget("b", "b", 1, "reject", 0, 0)},
        {budget("b", "b", 3, "queue", 1, 5), budget("a", "a", 1, "queue", 0, 5, 0, "alpha")},
        {budget("c", "c", 2, "reject", 2, 3), budget("a", "a", 4, "queue", 3, 0, 0)},
        {budget("c", "c", 3, "queue", 3, 9), budget("a", "a", 2, "queue", 0, 2), budget("b", "b", 5, "queue", 1, 4, 0),
         monitored},
        {monitored, budget("a", "a", 6, "queue", 4, 1, 0, "alpha")},
        {},
    };
  }();
  return all;
}

void check(const Ledger& ledger, const char* after) {
  const std::string problem = ledger_invariant_violation(ledger);
  if (problem.empty()) return;
  std::fprintf(stderr, "invariant broken after %s: %s\n", after, problem.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::max_align_t> block(Ledger::bytes_needed(kMaxBudgets, kSessions) / sizeof(std::max_align_t) + 1);
  std::vector<std::int32_t> scratch(Ledger::scratch_entries(kMaxBudgets, kSessions));
  std::vector<std::int32_t> buffer(kSessions);
  Ledger ledger(block.data(), kMaxBudgets, kSessions);
  ledger.initialize(1);
  FakeServer server(ledger);
  Policy policy;
  policy.capacity = 8;
  std::int64_t now = 1'000'000;
  static constexpr std::string_view kApps[] = {"a", "b", "c", "m", "x"};
  static constexpr std::string_view kRoles[] = {"alpha", "beta"};

  for (std::size_t i = 0; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i], arg = data[i + 1];
    const int session = arg % kSessions;
    now += 1000 + (arg << 8);
    Wakeups wakeups(buffer);
    switch (op % 12) {
      case 0: {  // as the worker loads: the match index built first, published with them (or not)
        const std::vector<BudgetDefinition>& definitions = configurations()[arg % configurations().size()];
        std::vector<MatchIndex::BuildEntry> entries(definitions.size());
        const Ledger::PreparedIndex index = ledger.prepare_index(definitions, entries);
        if (!index.built) std::abort();
        const ReconfigureResult result = ledger.reconfigure(definitions, policy, scratch, now, wakeups);
        if ((arg & 0x80) && result.status != ReconfigureResult::Status::DuplicateName) ledger.publish_index(index, definitions);
        check(ledger, "reconfigure");
        break;
      }
      case 1: {
        static constexpr Departure kWhy[] = {Departure::TimedOut, Departure::Abandoned, Departure::Terminated,
                                             Departure::Canceled};
        ledger.leave_queue(session, kWhy[(arg >> 4) % 4], now, wakeups);
        check(ledger, "leave_queue");
        break;
      }
      case 2:
        ledger.forgo_grant(session, (arg & 0x10) ? Departure::Canceled : Departure::Terminated, now, wakeups);
        check(ledger, "forgo_grant");
        break;
      case 3:
      case 4:
        ledger.release(session, now, wakeups);
        check(ledger, "release");
        break;
      case 5:
        policy.enforcement_enabled = arg % 4 != 0;
        policy.default_limits.max_connections = (arg >> 2) % 5 - 1;
        policy.default_limits.on_full = (arg & 0x40) ? OnFull::Queue : OnFull::Reject;
        policy.default_limits.idle_reclaim_ms = (arg & 0x80) ? 0 : BudgetLimits::kNeverReclaim;
        policy.on_mismatch = (arg & 0x20) ? OnMismatch::Refuse : OnMismatch::FallThrough;
        break;
      case 6:
        policy.capacity = 3 + arg % 10;
        policy.waiting_room = (arg >> 4) % 4;
        policy.reject_grace_ms = (arg & 0x08) ? 100 : 0;  // full budgets that refuse queue for the grace
        server.starting_or_ending = (arg >> 6) % 3;
        break;
      case 7: {
        const std::int32_t b = ledger.find(kApps[arg % 3]);
        if (b != kNoBudget) ledger.set_paused(b, (arg & 0x10) != 0, now, wakeups);
        check(ledger, "set_paused");
        break;
      }
      case 8: {  // idle reclaim, every candidate idle long enough: as the worker would
        std::vector<IdleSession> idle(kSessions);
        idle.resize(reclaim_candidates(ledger, idle));
        std::vector<Reclaim> planned(kSessions);
        std::int64_t due = 0;
        planned.resize(plan_reclaims(ledger, idle, now, planned, &due));
        for (const Reclaim& r : planned)
          if (!ledger.mark_reclaimed(r, now)) std::abort();  // nothing changed since the plan: it holds
        check(ledger, "mark_reclaimed");
        break;
      }
      default: {
        if (ledger.sessions()[session].phase != SessionPhase::Free) break;
        const LoginAttributes login{kApps[arg % 5], kRoles[(arg >> 3) % 2], "db", {}, {}};
        const bool exempt = (arg >> 4) % 8 == 0;
        const Classification c = ledger.classify(login, exempt);
        const Classification scanned = ledger.classify_by_scan(login, exempt);
        if (c.budget != scanned.budget || c.mismatched != scanned.mismatched) {
          std::fprintf(stderr, "the match index and the scan disagree\n");
          std::abort();
        }
        const Admission a = ledger.admit(session, c, login, 1000 + session, policy, server, now, wakeups);
        check(ledger, "admit");
        // Within its entitlement (its limit, nobody waiting, not paused, no refused claim): admitted.
        if (a.verdict != Verdict::RefuseMismatch && a.budget != kNoBudget &&
            a.active < ledger.budgets()[a.budget].entitled && a.waiting == 0 && !a.paused &&
            (a.limit == BudgetLimits::kUnlimited || a.active < a.limit) && refuses(a.verdict)) {
          std::fprintf(stderr, "a login within its entitlement was refused\n");
          std::abort();
        }
      }
    }
  }
  return 0;
}
