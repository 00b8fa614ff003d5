// The ledger test fixture: a ledger in a heap block, helpers that log in, release and
// leave the queue, and a check of every invariant of ledger.hpp after each step.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "core/ledger.hpp"
#include "support/fake_server.hpp"
#include "support/ledger_invariants.hpp"

namespace connbudget::testing_support {

inline BudgetDefinition budget(std::string_view name, std::optional<std::string_view> app, int max,
                        std::string_view on_full = "reject") {
  BudgetRow row;
  row.name = name;
  row.application_name = app;
  row.max_connections = max;
  row.on_full = on_full;
  BudgetDefinition def;
  EXPECT_FALSE(build_definition(row, def).has_value());
  return def;
}

inline BudgetDefinition queueing(std::string_view name, std::string_view app, int max, int max_queue = 10) {
  BudgetDefinition def = budget(name, app, max, "queue");
  def.limits.max_queue = max_queue;
  return def;
}

inline BudgetDefinition reclaiming(BudgetDefinition def, int idle_reclaim_ms) {
  def.limits.idle_reclaim_ms = idle_reclaim_ms;
  return def;
}

inline BudgetDefinition with(BudgetDefinition def, int reserved, int priority = 0) {
  def.limits.reserved = reserved;
  def.limits.priority = priority;
  return def;
}

class LedgerTest : public ::testing::Test {
 protected:
  static constexpr int kMaxBudgets = 8;
  static constexpr int kSessions = 16;

  LedgerTest()
      : block_(Ledger::bytes_needed(kMaxBudgets, kSessions) / sizeof(std::max_align_t) + 1),
        scratch_(Ledger::scratch_entries(kMaxBudgets, kSessions)),
        buffer_(kSessions),
        ledger_(block_.data(), kMaxBudgets, kSessions),
        server_(ledger_) {
    ledger_.initialize(1);
  }

  using Woken = std::vector<std::int32_t>;

  // Loads defs as the worker does: the match index built first, published with them.
  ReconfigureResult configure(const std::vector<BudgetDefinition>& defs) {
    Wakeups wakeups(buffer_);
    std::vector<MatchIndex::BuildEntry> entries(defs.size());
    const Ledger::PreparedIndex index = ledger_.prepare_index(defs, entries);
    const ReconfigureResult result = ledger_.reconfigure(defs, policy_, scratch_, ++now_, wakeups);
    if (result.status == ReconfigureResult::Status::Applied || result.status == ReconfigureResult::Status::Unchanged)
      ledger_.publish_index(index, defs);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
    return result;
  }

  // The ledger's classification, checked against a scan of every rule.
  Classification classify(const LoginAttributes& login, bool exempt = false) const {
    const Classification indexed = ledger_.classify(login, exempt);
    const Classification scanned = ledger_.classify_by_scan(login, exempt);
    EXPECT_EQ(indexed.budget, scanned.budget);
    EXPECT_EQ(indexed.mismatched, scanned.mismatched);
    return indexed;
  }

  Admission login_as(int session, std::string_view app, bool exempt = false) {
    const LoginAttributes login{app, "role", "db", {}, {}};
    Wakeups wakeups(buffer_);
    const Admission admission = ledger_.admit(session, classify(login, exempt), login,
                                              1000 + session, policy_, server_, ++now_, wakeups);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
    return admission;
  }

  // Returns the sessions the release granted a slot to.
  Woken release(int session) {
    Wakeups wakeups(buffer_);
    ledger_.release(session, ++now_, wakeups);
    check_invariants();
    return Woken(wakeups.sessions().begin(), wakeups.sessions().end());
  }

  Departed leave(int session, Departure why) {
    Wakeups wakeups(buffer_);
    const Departed departed = ledger_.leave_queue(session, why, ++now_, wakeups);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
    return departed;
  }

  SessionPhase phase(int session) const { return ledger_.sessions()[session].phase; }

  // Counters saved at a clean shutdown, given back as the server starts (one index for all).
  bool restore(std::string_view name, const BudgetCounters& counters) {
    if (!restore_index_) {
      restore_scratch_.resize(Ledger::restore_index_entries(kMaxBudgets));
      restore_index_ = ledger_.restore_index(restore_scratch_);
    }
    return ledger_.restore(name, counters, *restore_index_);
  }

  // The invariants of ledger.hpp, recomputed from the session slots.
  void check_invariants() const { ASSERT_EQ(ledger_invariant_violation(ledger_), ""); }

  int active(std::string_view name) const { return ledger_.budgets()[ledger_.find(name)].active; }
  const BudgetCounters& counters(std::string_view name) const {
    return ledger_.budgets()[ledger_.find(name)].counters;
  }
  int booked_sessions() const {
    int n = 0;
    for (const SessionState& s : ledger_.sessions()) n += s.budget != kNoBudget;
    return n;
  }

  std::vector<std::max_align_t> block_;
  std::vector<std::int32_t> scratch_;
  std::vector<std::int32_t> buffer_;
  Woken woken_;  // granted by the last configure, login_as or leave
  std::vector<std::int32_t> restore_scratch_;
  std::optional<Ledger::RestoreIndex> restore_index_;
  Ledger ledger_;
  FakeServer server_;
  Policy policy_{};
  std::int64_t now_ = 1;
};

}  // namespace connbudget::testing_support
