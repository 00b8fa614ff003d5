// What the ledger counts for connbudget.status (refusals by reason, waits by length, peak
// time, monitor mode's would-be verdicts), pause and resume, counters restored after a
// clean restart, and the log limiter that keeps a refusal storm to one line a second.
#include <gtest/gtest.h>

#include <array>

#include "core/log_limiter.hpp"
#include "ledger_fixture.hpp"

using namespace connbudget;
using namespace connbudget::testing_support;

namespace {

class Observability : public LedgerTest {
 protected:
  void pause(std::string_view name, bool paused) {
    Wakeups wakeups(buffer_);
    ledger_.set_paused(ledger_.find(name), paused, ++now_, wakeups);
    woken_.assign(wakeups.sessions().begin(), wakeups.sessions().end());
    check_invariants();
  }
};

}  // namespace

TEST(WaitBuckets, BoundsAreInclusive) {
  EXPECT_EQ(wait_bucket(0), 0u);
  EXPECT_EQ(wait_bucket(1'000), 0u);
  EXPECT_EQ(wait_bucket(1'001), 1u);
  EXPECT_EQ(wait_bucket(100'000), 2u);
  EXPECT_EQ(wait_bucket(1'000'000), 3u);
  EXPECT_EQ(wait_bucket(10'000'000), 4u);
  EXPECT_EQ(wait_bucket(10'000'001), 5u);
}

TEST_F(Observability, RefusalsAreCountedByReasonWithTheTimeOfTheLast) {
  policy_.capacity = 5;
  configure({budget("api", "api", 10), with(budget("full", "full", 1), 1), queueing("w", "w", 1, 1),
             with(budget("r", "r", 1), 1)});
  login_as(0, "full");
  EXPECT_EQ(login_as(1, "full").verdict, Verdict::Refuse);
  login_as(2, "w");
  EXPECT_EQ(login_as(3, "w").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(4, "w").verdict, Verdict::RefuseQueueFull);
  const std::int64_t queue_full_at = now_;
  login_as(5, "api");
  EXPECT_EQ(login_as(6, "api").verdict, Verdict::RefuseReserved);  // 4 backends in use, 1 kept for r
  login_as(7, "r");
  EXPECT_EQ(login_as(6, "api").verdict, Verdict::RefuseServerFull);  // all 5 in use
  EXPECT_EQ(counters("full").rejected_full, 1);
  EXPECT_EQ(counters("w").rejected_queue_full, 1);
  EXPECT_EQ(counters("w").last_refusal_us, queue_full_at);
  EXPECT_EQ(counters("api").rejected_reserved, 1);
  EXPECT_EQ(counters("api").rejected_server_full, 1);
  EXPECT_EQ(counters("api").rejected(), 2);
  EXPECT_EQ(counters("api").last_refusal_us, now_);

  EXPECT_EQ(leave(3, Departure::TimedOut).outcome, Departed::Outcome::Left);
  EXPECT_EQ(counters("w").timed_out, 1);
  EXPECT_EQ(counters("w").last_refusal_us, now_);
  EXPECT_EQ(counters("w").rejected(), 1);  // a timeout is counted apart
}

TEST_F(Observability, WaitersThatLeaveAreCountedByWhy) {
  configure({queueing("w", "w", 1)});
  login_as(0, "w");
  for (int s = 1; s <= 3; ++s) login_as(s, "w");
  leave(1, Departure::Abandoned);
  leave(2, Departure::Terminated);
  leave(3, Departure::TimedOut);
  EXPECT_EQ(counters("w").abandoned, 1);
  EXPECT_EQ(counters("w").terminated, 1);
  EXPECT_EQ(counters("w").timed_out, 1);
  EXPECT_EQ(counters("w").last_refusal_us, now_);  // only the timeout is a refusal
}

TEST_F(Observability, GrantedWaitsFillTheHistogramAndTotals) {
  configure({queueing("w", "w", 1)});
  login_as(0, "w");
  login_as(1, "w");
  now_ += 50'000;  // the waiter waits ~50 ms
  EXPECT_EQ(release(0), Woken{1});
  login_as(2, "w");
  now_ += 3'000'000;  // ~3 s
  EXPECT_EQ(release(1), Woken{2});
  const BudgetCounters& c = counters("w");
  EXPECT_EQ(c.waits, 2);
  EXPECT_EQ(c.wait_histogram, (std::array<std::int64_t, kWaitBuckets>{0, 0, 1, 0, 1, 0}));
  EXPECT_GE(c.wait_total_us, 3'050'000);
  EXPECT_GE(c.wait_max_us, 3'000'000);
}

TEST_F(Observability, PeakKeepsTheTimeItWasReached) {
  configure({budget("api", "api", 5)});
  login_as(0, "api");
  login_as(1, "api");
  const std::int64_t peak_at = now_;
  release(0);
  login_as(0, "api");  // back to 2: not a new peak
  EXPECT_EQ(counters("api").peak, 2);
  EXPECT_EQ(counters("api").peak_at_us, peak_at);
  Wakeups wakeups(buffer_);
  ledger_.reset_stats("api", 500);
  EXPECT_EQ(counters("api").peak, 2);  // the sessions it holds now
  EXPECT_EQ(counters("api").peak_at_us, 500);
}

TEST_F(Observability, MonitorModeCountsWhatEnforcementWouldHaveDone) {
  BudgetDefinition monitored = queueing("m", "m", 1, 1);
  monitored.limits.mode = Mode::Monitor;
  BudgetDefinition rejecting = budget("r", "r", 0);
  rejecting.limits.mode = Mode::Monitor;
  configure({monitored, rejecting});
  login_as(0, "m");
  const Admission over = login_as(1, "m");
  EXPECT_EQ(over.verdict, Verdict::AdmitOverLimit);
  EXPECT_EQ(over.enforced, Verdict::Queue);
  EXPECT_TRUE(over.log.log);
  EXPECT_EQ(login_as(2, "r").enforced, Verdict::Refuse);
  EXPECT_EQ(counters("m").would_queue, 1);
  EXPECT_EQ(counters("m").would_reject, 0);
  EXPECT_EQ(counters("r").would_reject, 1);
  EXPECT_EQ(counters("m").rejected(), 0);
  EXPECT_EQ(active("m"), 2);
}

TEST_F(Observability, PausedRejectingBudgetRefusesNewLoginsAndKeepsItsSessions) {
  configure({budget("api", "api", 5)});
  login_as(0, "api");
  pause("api", true);
  const Admission refused = login_as(1, "api");
  EXPECT_EQ(refused.verdict, Verdict::RefusePaused);
  EXPECT_TRUE(refused.paused);
  EXPECT_EQ(counters("api").rejected_paused, 1);
  EXPECT_EQ(active("api"), 1);
  configure({budget("api", "api", 6)});  // a reload keeps it paused
  EXPECT_EQ(login_as(1, "api").verdict, Verdict::RefusePaused);
  pause("api", false);
  EXPECT_EQ(login_as(1, "api").verdict, Verdict::Admit);
}

TEST_F(Observability, PausedQueueingBudgetHoldsLoginsUntilResumed) {
  configure({queueing("w", "w", 5)});
  pause("w", true);
  EXPECT_EQ(login_as(0, "w").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(1, "w").verdict, Verdict::Queue);
  EXPECT_EQ(release(15), Woken{});  // capacity freeing elsewhere starts nobody
  pause("w", false);
  EXPECT_EQ(woken_, (Woken{0, 1}));
  EXPECT_EQ(active("w"), 2);
}

TEST_F(Observability, PauseInMonitorModeStillHoldsButDisabledEnforcementAdmits) {
  BudgetDefinition monitored = budget("m", "m", 5);
  monitored.limits.mode = Mode::Monitor;
  configure({monitored});
  pause("m", true);
  EXPECT_EQ(login_as(0, "m").verdict, Verdict::RefusePaused);
  policy_.enforcement_enabled = false;
  EXPECT_EQ(login_as(0, "m").verdict, Verdict::AdmitOverLimit);
}

TEST_F(Observability, RestoredCountersReachTheirBudgetAtTheFirstConfiguration) {
  BudgetCounters saved;
  saved.admitted = 42;
  saved.rejected_full = 7;
  saved.stats_reset_us = 5;
  ASSERT_TRUE(restore("api", saved));
  ASSERT_TRUE(restore("gone", saved));
  BudgetCounters for_default;
  for_default.admitted = 3;
  ASSERT_TRUE(restore("default", for_default));
  EXPECT_EQ(counters("default").admitted, 3);
  EXPECT_EQ(ledger_.find("api"), kNoBudget);  // not shown until configured

  configure({budget("api", "api", 5), budget("new", "new", 5)});
  EXPECT_EQ(counters("api").admitted, 42);
  EXPECT_EQ(counters("api").rejected_full, 7);
  EXPECT_EQ(counters("api").stats_reset_us, 5);
  EXPECT_EQ(counters("new").admitted, 0);
  EXPECT_EQ(ledger_.find("gone"), kNoBudget);
  configure({budget("api", "api", 5), budget("new", "new", 5), budget("gone", "gone", 1)});
  EXPECT_EQ(counters("gone").admitted, 0);  // forgotten once a configuration left it out
}

TEST_F(Observability, RestoreFailsOnlyWhenNoSlotIsLeft) {
  BudgetCounters saved;
  for (int i = 0; i < kMaxBudgets; ++i) EXPECT_TRUE(restore("b" + std::to_string(i), saved));
  EXPECT_FALSE(restore("one-too-many", saved));
}

TEST(LogLimiter, OneLinePerSecondThenASummary) {
  LogLimiter limiter;
  EXPECT_TRUE(limiter.note(0).log);
  const LogLimiter::Decision second = limiter.note(100);
  EXPECT_FALSE(second.log);
  EXPECT_TRUE(second.first_suppressed);
  EXPECT_FALSE(limiter.note(200).first_suppressed);
  std::int64_t due = 0;
  EXPECT_EQ(limiter.take_due(500'000, &due), 0);  // the second is not over
  EXPECT_EQ(due, 1'000'000);
  const LogLimiter::Decision next = limiter.note(1'000'000);  // a storm goes on: the next
  EXPECT_TRUE(next.log);                                      // line says how many were held
  EXPECT_EQ(next.suppressed_before, 2);
  EXPECT_FALSE(limiter.note(1'000'001).log);
  EXPECT_EQ(limiter.take_due(2'000'000, &due), 1);  // the storm ended: a summary
  EXPECT_EQ(limiter.take_due(2'000'001, &due), 0);  // reported once
  const LogLimiter::Decision after = limiter.note(2'000'002);
  EXPECT_TRUE(after.log);  // the summary did not use up the budget's line
  EXPECT_EQ(after.suppressed_before, 0);
}

TEST_F(Observability, SuppressedLinesAreSummarisedPerBudget) {
  configure({budget("a", "a", 0), budget("b", "b", 0)});
  EXPECT_TRUE(login_as(0, "a").log.log);
  EXPECT_FALSE(login_as(0, "a").log.log);
  EXPECT_FALSE(login_as(0, "a").log.log);
  EXPECT_TRUE(login_as(0, "b").log.log);
  std::array<SuppressedLines, 4> out;
  std::int64_t next_due = INT64_MAX;
  EXPECT_EQ(ledger_.take_suppressed(now_, out, &next_due), 0u);
  EXPECT_LT(next_due, INT64_MAX);
  ASSERT_EQ(ledger_.take_suppressed(now_ + kLogIntervalUs, out, &next_due), 1u);
  EXPECT_EQ(out[0].budget.view(), "a");
  EXPECT_EQ(out[0].count, 2);
}

TEST_F(Observability, ANameSavedTwiceTakesOneSlot) {
  BudgetCounters first, second;
  first.admitted = 1;
  second.admitted = 2;
  ASSERT_TRUE(restore("x", first));
  ASSERT_TRUE(restore("x", second));
  std::vector<BudgetDefinition> full;
  for (int i = 0; i < kMaxBudgets; ++i) full.push_back(budget(i == 0 ? "x" : "b" + std::to_string(i), "app", 1));
  EXPECT_EQ(configure(full).status, ReconfigureResult::Status::Applied);  // every slot in use
  EXPECT_EQ(counters("x").admitted, 2);
  for (const std::int32_t index : ledger_.match_order()) EXPECT_TRUE(ledger_.budgets()[index].configured);
}

TEST_F(Observability, ResettingEverythingDropsUnclaimedSavedCounters) {
  BudgetCounters saved;
  saved.admitted = 42;
  ASSERT_TRUE(restore("api", saved));
  ledger_.reset_stats(std::nullopt, 7);
  configure({budget("api", "api", 5)});
  EXPECT_EQ(counters("api").admitted, 0);
}

TEST_F(Observability, APausedLoginDisplacesNobody) {
  policy_.capacity = 3;
  configure({with(queueing("hi", "hi", 5), 0, 10), queueing("lo", "lo", 1)});
  login_as(0, "lo");
  login_as(1, "lo");
  login_as(2, "lo");  // the server is full: one session and two waiters
  pause("hi", true);
  const Admission paused = login_as(3, "hi");
  EXPECT_EQ(paused.displaced, kNoSession);
  EXPECT_EQ(paused.verdict, Verdict::RefuseServerFull);
  EXPECT_EQ(phase(2), SessionPhase::Waiting);
}

TEST(LogLimiter, AClockSteppedBackDoesNotSilenceTheBudget) {
  LogLimiter limiter;
  EXPECT_TRUE(limiter.note(10'000'000).log);
  EXPECT_TRUE(limiter.note(2'000'000).log);  // the clock went back 8 s
}

// 30,000 saved budgets (connbudget.max_budgets allows 100,000): each found by its name's
// hash, so a start with them takes a moment, not seconds (it was quadratic).
TEST(RestoreAtScale, ThirtyThousandSavedBudgetsEachGetTheirCounters) {
  constexpr int kBudgets = 30000;
  std::vector<std::max_align_t> block(Ledger::bytes_needed(kBudgets, 4) / sizeof(std::max_align_t) + 1);
  Ledger ledger(block.data(), kBudgets, 4);
  ledger.initialize(1);
  std::vector<std::int32_t> scratch(Ledger::restore_index_entries(kBudgets));
  Ledger::RestoreIndex index = ledger.restore_index(scratch);
  BudgetCounters saved;
  for (int i = 0; i < kBudgets; ++i) {
    saved.admitted = i;
    ASSERT_TRUE(ledger.restore("budget_" + std::to_string(i), saved, index)) << i;
  }
  saved.admitted = -7;
  ASSERT_TRUE(ledger.restore("budget_123", saved, index));  // given again: overwritten, no new slot
  saved.admitted = 42;
  ASSERT_TRUE(ledger.restore("default", saved, index));
  std::int64_t restored = 0;
  for (const BudgetState& b : ledger.budgets()) restored += b.restored;
  EXPECT_EQ(restored, kBudgets);
  EXPECT_EQ(ledger.budgets()[kDefaultBudget].counters.admitted, 42);
  for (const BudgetState& b : ledger.budgets()) {
    if (b.definition.name.view() == "budget_123") {
      EXPECT_EQ(b.counters.admitted, -7);
    }
  }
}
