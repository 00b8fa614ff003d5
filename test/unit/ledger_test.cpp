// The shared books: classification order, admission and release, counts recomputed from
// session slots, reconfiguration that keeps counters by name and never loses a slot.
#include "core/ledger.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

using namespace connbudget;

namespace {

BudgetDefinition budget(std::string_view name, std::optional<std::string_view> app, int max) {
  BudgetRow row;
  row.name = name;
  row.application_name = app;
  row.max_connections = max;
  BudgetDefinition def;
  EXPECT_FALSE(build_definition(row, def).has_value());
  return def;
}

class LedgerTest : public ::testing::Test {
 protected:
  static constexpr int kMaxBudgets = 8;
  static constexpr int kSessions = 16;

  LedgerTest()
      : block_(Ledger::bytes_needed(kMaxBudgets, kSessions) / sizeof(std::max_align_t) + 1),
        scratch_(Ledger::scratch_entries(kMaxBudgets)),
        ledger_(block_.data(), kMaxBudgets, kSessions) {
    ledger_.initialize(1);
  }

  ReconfigureResult configure(std::vector<BudgetDefinition> defs) {
    return ledger_.reconfigure(defs, scratch_, 2);
  }

  Admission login_as(int session, std::string_view app, bool exempt = false) {
    const LoginAttributes login{app, "role", "db", {}, {}};
    return ledger_.admit(session, ledger_.classify(login, exempt), login, 1000 + session,
                         default_limits_, enabled_, 3);
  }

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
  Ledger ledger_;
  BudgetLimits default_limits_{};
  bool enabled_ = true;
};

}  // namespace

TEST_F(LedgerTest, FreshLedgerHasOnlyTheImplicitBudgets) {
  EXPECT_EQ(ledger_.header().configured_count, 0);
  EXPECT_EQ(ledger_.find("default"), kDefaultBudget);
  EXPECT_EQ(ledger_.find("exempt"), kExemptBudget);
  EXPECT_EQ(login_as(0, "anything").budget, kDefaultBudget);
  EXPECT_EQ(login_as(1, "anything", true).budget, kExemptBudget);
}

TEST_F(LedgerTest, FirstMatchingBudgetInMatchOrderWins) {
  configure({budget("specific", "extraction_worker", 5), budget("workers", "%worker", 5)});
  EXPECT_EQ(ledger_.budgets()[login_as(0, "extraction_worker").budget].definition.name.view(), "specific");
  EXPECT_EQ(ledger_.budgets()[login_as(1, "event_worker").budget].definition.name.view(), "workers");
  EXPECT_EQ(login_as(2, "psql").budget, kDefaultBudget);
}

TEST_F(LedgerTest, FullBudgetRefusesAndCountsTheRefusal) {
  configure({budget("api", "backend", 3)});
  for (int s = 0; s < 3; ++s) EXPECT_EQ(login_as(s, "backend").verdict, Verdict::Admit);
  const Admission refused = login_as(3, "backend");
  EXPECT_EQ(refused.verdict, Verdict::Refuse);
  EXPECT_EQ(refused.active, 3);
  EXPECT_EQ(refused.limit, 3);
  EXPECT_EQ(active("api"), 3);
  EXPECT_EQ(counters("api").admitted, 3);
  EXPECT_EQ(counters("api").rejected, 1);
  EXPECT_EQ(ledger_.sessions()[3].budget, kNoBudget);  // a refused login books nothing

  ledger_.release(1);
  EXPECT_EQ(active("api"), 2);
  EXPECT_EQ(login_as(3, "backend").verdict, Verdict::Admit);  // the freed slot is reusable
  EXPECT_EQ(counters("api").peak, 3);
}

TEST_F(LedgerTest, ReleaseIsIdempotentAndRebookingNeverDoubleCounts) {
  configure({budget("api", "backend", 3)});
  login_as(0, "backend");
  ledger_.release(0);
  ledger_.release(0);
  EXPECT_EQ(active("api"), 0);
  login_as(5, "backend");
  login_as(5, "backend");  // the same slot booked again replaces, never adds
  EXPECT_EQ(active("api"), 1);
}

TEST_F(LedgerTest, MonitorModeAndDisabledEnforcementAdmitOverLimit) {
  BudgetDefinition monitored = budget("m", "mon", 1);
  monitored.limits.mode = Mode::Monitor;
  configure({monitored, budget("e", "enf", 1)});
  login_as(0, "mon");
  EXPECT_EQ(login_as(1, "mon").verdict, Verdict::AdmitOverLimit);
  EXPECT_EQ(active("m"), 2);
  login_as(2, "enf");
  enabled_ = false;
  EXPECT_EQ(login_as(3, "enf").verdict, Verdict::AdmitOverLimit);
}

TEST_F(LedgerTest, DefaultBudgetUsesTheLimitsItIsGiven) {
  default_limits_.max_connections = 1;
  EXPECT_EQ(login_as(0, "x").verdict, Verdict::Admit);
  EXPECT_EQ(login_as(1, "x").verdict, Verdict::Refuse);
  EXPECT_EQ(login_as(2, "x", true).verdict, Verdict::Admit);  // exempt is never limited
}

TEST_F(LedgerTest, ReconfigureKeepsCountersByNameAndBumpsGenerationOnlyOnChange) {
  configure({budget("api", "backend", 3)});
  const auto generation = ledger_.header().generation;
  login_as(0, "backend");
  EXPECT_EQ(configure({budget("api", "backend", 3)}).status, ReconfigureResult::Status::Unchanged);
  EXPECT_EQ(ledger_.header().generation, generation);
  const auto result = configure({budget("new", "x", 1), budget("api", "backend", 10)});
  EXPECT_EQ(result.status, ReconfigureResult::Status::Applied);
  EXPECT_EQ(ledger_.header().generation, generation + 1);
  EXPECT_EQ(active("api"), 1);
  EXPECT_EQ(counters("api").admitted, 1);
  EXPECT_EQ(ledger_.budgets()[ledger_.find("api")].definition.limits.max_connections, 10);
  EXPECT_EQ(ledger_.match_order()[0], ledger_.find("new"));
}

TEST_F(LedgerTest, DeletedBudgetMovesItsSessionsToDefault) {
  configure({budget("api", "backend", 3)});
  login_as(0, "backend");
  login_as(1, "backend");
  const auto result = configure({});
  EXPECT_EQ(result.moved_to_default, 2);
  EXPECT_EQ(result.corrected, 0);
  EXPECT_EQ(ledger_.find("api"), kNoBudget);
  EXPECT_EQ(ledger_.budgets()[kDefaultBudget].active, 2);
  ledger_.release(0);
  ledger_.release(1);
  EXPECT_EQ(ledger_.budgets()[kDefaultBudget].active, 0);
}

TEST_F(LedgerTest, SlotsOfDeletedBudgetsAreReusedWithoutInheritingSessions) {
  std::vector<BudgetDefinition> full, other;
  for (int i = 0; i < kMaxBudgets; ++i) {
    full.push_back(budget("a" + std::to_string(i), "a" + std::to_string(i), 2));
    other.push_back(budget("b" + std::to_string(i), "b" + std::to_string(i), 2));
  }
  configure(full);
  login_as(0, "a3");
  EXPECT_EQ(configure(other).status, ReconfigureResult::Status::Applied);
  EXPECT_EQ(ledger_.find("a3"), kNoBudget);
  for (int i = 0; i < kMaxBudgets; ++i) EXPECT_EQ(active("b" + std::to_string(i)), 0);
  EXPECT_EQ(ledger_.budgets()[kDefaultBudget].active, 1);
  EXPECT_EQ(counters("b3").admitted, 0);
}

TEST_F(LedgerTest, RefusesTooManyOrDuplicateBudgetsWithoutChangingAnything) {
  configure({budget("api", "backend", 3)});
  const auto generation = ledger_.header().generation;
  std::vector<BudgetDefinition> many(kMaxBudgets + 1, budget("x", "x", 1));
  EXPECT_EQ(configure(many).status, ReconfigureResult::Status::TooManyBudgets);
  const auto dup = configure({budget("dup", "a", 1), budget("dup", "b", 1)});
  EXPECT_EQ(dup.status, ReconfigureResult::Status::DuplicateName);
  EXPECT_EQ(dup.duplicate, "dup");
  EXPECT_EQ(ledger_.header().generation, generation);
  EXPECT_NE(ledger_.find("api"), kNoBudget);
}

TEST_F(LedgerTest, RecountCorrectsDriftFromSessionSlots) {
  configure({budget("api", "backend", 3)});
  login_as(0, "backend");
  // Simulate drift: a count that disagrees with the session slots.
  auto* states = const_cast<BudgetState*>(ledger_.budgets().data());
  states[ledger_.find("api")].active = 7;
  const auto result = configure({budget("api", "backend", 3)});
  EXPECT_EQ(result.corrected, 1);
  EXPECT_EQ(active("api"), 1);
}

TEST_F(LedgerTest, ThousandsOfLoginsAndLogoutsLeaveExactCounts) {
  configure({budget("api", "backend", 5), budget("w", "worker", 3)});
  for (int round = 0; round < 1000; ++round) {
    const int s = round % kSessions;
    ledger_.release(s);
    login_as(s, round % 3 ? "backend" : "worker");
  }
  EXPECT_EQ(active("api") + active("w") + ledger_.budgets()[kDefaultBudget].active, booked_sessions());
  for (int s = 0; s < kSessions; ++s) ledger_.release(s);
  EXPECT_EQ(active("api"), 0);
  EXPECT_EQ(active("w"), 0);
  EXPECT_EQ(booked_sessions(), 0);
}

TEST_F(LedgerTest, ResetStatsZeroesCountersButKeepsActive) {
  configure({budget("api", "backend", 1)});
  login_as(0, "backend");
  login_as(1, "backend");
  EXPECT_TRUE(ledger_.reset_stats(std::string_view("api"), 99));
  EXPECT_EQ(counters("api").admitted, 0);
  EXPECT_EQ(counters("api").rejected, 0);
  EXPECT_EQ(counters("api").peak, 1);
  EXPECT_EQ(counters("api").stats_reset_us, 99);
  EXPECT_EQ(active("api"), 1);
  EXPECT_FALSE(ledger_.reset_stats(std::string_view("nope"), 100));
  EXPECT_TRUE(ledger_.reset_stats(std::nullopt, 100));
  EXPECT_EQ(counters("default").stats_reset_us, 100);
}

TEST_F(LedgerTest, OutOfRangeSessionIsAdmittedUncounted) {
  const LoginAttributes login{"x", "r", "d", {}, {}};
  const Admission a = ledger_.admit(kSessions, kDefaultBudget, login, 1, default_limits_, true, 0);
  EXPECT_EQ(a.verdict, Verdict::Admit);
  EXPECT_EQ(a.budget, kNoBudget);
  EXPECT_EQ(booked_sessions(), 0);
}
