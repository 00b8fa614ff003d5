// Idle reclaim: which idle sessions are ended for waiting logins — the longest idle of a
// full budget's own sessions, or of a lower-priority budget above its entitlement for a
// login waiting for shared capacity — and never one whose budget has no idle_reclaim, one
// idle for less than it, or more than the waiters need.
#include <gtest/gtest.h>

#include <vector>

#include "core/reclaim.hpp"
#include "ledger_fixture.hpp"

using namespace connbudget;
using namespace connbudget::testing_support;

namespace {

class ReclaimTest : public LedgerTest {
 protected:
  static constexpr std::int64_t kSecond = 1'000'000;

  // The candidates, as pg_stat_activity would show them: idle since `idle_since_us` each
  // (by session slot; a slot missing from the map is busy).
  std::vector<Reclaim> plan(const std::vector<std::pair<int, std::int64_t>>& idle_since,
                            std::int64_t* next_due = nullptr) {
    std::vector<IdleSession> candidates(kSessions);
    candidates.resize(reclaim_candidates(ledger_, candidates));
    std::vector<IdleSession> idle;
    for (const IdleSession& c : candidates)
      for (const auto& [slot, since] : idle_since)
        if (c.slot == slot) idle.push_back(IdleSession{c.slot, c.pid, since});
    std::vector<Reclaim> out(kSessions);
    std::int64_t due = INT64_MAX;
    out.resize(plan_reclaims(ledger_, idle, now_, out, &due));
    if (next_due) *next_due = due;
    return out;
  }

  bool mark(const Reclaim& r) {
    const bool marked = ledger_.mark_reclaimed(r, ++now_);
    check_invariants();
    return marked;
  }

  std::vector<int> slots(const std::vector<Reclaim>& plan) {
    std::vector<int> out;
    for (const Reclaim& r : plan) out.push_back(r.slot);
    return out;
  }
};

}  // namespace

TEST_F(ReclaimTest, AFullBudgetsWaiterTakesItsLongestIdleSessionOfAtLeastIdleReclaim) {
  now_ = 100 * kSecond;
  configure({reclaiming(queueing("w", "w", 3), 2000)});
  for (int s = 0; s < 3; ++s) login_as(s, "w");
  EXPECT_EQ(login_as(3, "w").verdict, Verdict::Queue);
  std::int64_t next_due = 0;
  // Session 0 is busy; 1 idle 5 s; 2 idle 1 s (too young for 2 s).
  const auto planned = plan({{1, now_ - 5 * kSecond}, {2, now_ - kSecond}}, &next_due);
  ASSERT_EQ(slots(planned), std::vector<int>{1});
  EXPECT_EQ(planned[0].for_budget, ledger_.find("w"));
  EXPECT_EQ(planned[0].idle_us, 5 * kSecond);
  EXPECT_EQ(next_due, now_ - kSecond + 2 * kSecond);  // when session 2 would be old enough
  ASSERT_TRUE(mark(planned[0]));
  EXPECT_EQ(counters("w").reclaimed, 1);
  EXPECT_TRUE(plan({{2, now_ - 10 * kSecond}}).empty());  // one waiter, one reclaim on its way
  EXPECT_EQ(release(1), Woken{3});  // the ended session's slot goes to the waiter
  EXPECT_EQ(ledger_.budgets()[ledger_.find("w")].reclaiming, 0);
}

TEST_F(ReclaimTest, SessionsOfABudgetWithoutIdleReclaimAreNeverEnded) {
  now_ = 100 * kSecond;
  configure({queueing("w", "w", 1)});
  login_as(0, "w");
  login_as(1, "w");
  EXPECT_FALSE(ledger_.header().uses_idle_reclaim);
  EXPECT_TRUE(plan({{0, 0}}).empty());
}

TEST_F(ReclaimTest, AsManySessionsAreEndedAsLoginsWaitAndNoMore) {
  now_ = 100 * kSecond;
  configure({reclaiming(queueing("w", "w", 4), 0)});
  for (int s = 0; s < 4; ++s) login_as(s, "w");
  login_as(4, "w");
  login_as(5, "w");
  const auto planned = plan({{0, now_ - 1}, {1, now_ - 9}, {2, now_ - 5}, {3, now_ - 7}});
  EXPECT_EQ(slots(planned), (std::vector<int>{1, 3}));  // two waiters: the two longest idle
  ASSERT_TRUE(mark(planned[0]));
  EXPECT_EQ(leave(4, Departure::Abandoned).outcome, Departed::Outcome::Left);  // a waiter leaves
  EXPECT_FALSE(mark(planned[1]));  // the one waiter left has its reclaim on the way already
}

TEST_F(ReclaimTest, AStalePlanIsNotCarriedOut) {
  now_ = 100 * kSecond;
  configure({reclaiming(queueing("w", "w", 1), 0)});
  login_as(0, "w");
  login_as(1, "w");
  const auto planned = plan({{0, now_ - kSecond}});
  ASSERT_EQ(planned.size(), 1u);
  Reclaim other_pid = planned[0];
  other_pid.pid += 1;  // the slot was reused by another backend meanwhile
  EXPECT_FALSE(mark(other_pid));
  EXPECT_TRUE(mark(planned[0]));
  EXPECT_FALSE(mark(planned[0]));  // never twice
}

TEST_F(ReclaimTest, AWaiterForSharedCapacityTakesALowerPriorityBudgetsSessionAboveItsEntitlement) {
  now_ = 100 * kSecond;
  policy_.capacity = 6;
  policy_.waiting_room = 2;
  // 5 + 5 + 3 > 4: no fit. lo reserves 1 and reclaims; peer has the same priority as hi but
  // no idle_reclaim; top has a higher priority than hi.
  configure({with(reclaiming(queueing("lo", "lo", 5), 0), 1, 1), with(queueing("hi", "hi", 5), 0, 5),
             with(reclaiming(queueing("top", "top", 3), 0), 0, 9)});
  login_as(0, "lo");  // within lo's reservation
  login_as(1, "lo");
  login_as(2, "top");
  login_as(3, "lo");  // 4 sessions: the capacity less the waiting room
  EXPECT_EQ(login_as(4, "hi").verdict, Verdict::Queue);
  EXPECT_EQ(ledger_.why_waiting(ledger_.find("hi")), WaitReason::SharedCapacity);
  // Every session is idle; top's may not be taken (priority 9), lo's may (above its 1).
  const auto planned = plan({{0, now_ - 9 * kSecond}, {1, now_ - 5 * kSecond}, {2, now_ - 99 * kSecond},
                             {3, now_ - kSecond}});
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].victim_budget, ledger_.find("lo"));
  EXPECT_EQ(planned[0].slot, 0);  // the longest idle of lo's
  ASSERT_TRUE(mark(planned[0]));
  EXPECT_EQ(release(0), Woken{4});  // the shared session it frees starts hi's waiter
}

TEST_F(ReclaimTest, TheHigherPriorityWaitersAreServedFirst) {
  now_ = 100 * kSecond;
  policy_.capacity = 6;
  policy_.waiting_room = 2;
  configure({with(reclaiming(queueing("lo", "lo", 9), 0), 0, 0), with(queueing("a", "a", 5), 0, 3),
             with(queueing("b", "b", 5), 0, 7)});
  for (int s = 0; s < 4; ++s) login_as(s, "lo");
  login_as(4, "a");  // waits for shared capacity, first
  login_as(5, "b");  // waits too, with a higher priority
  const auto planned = plan({{0, now_ - kSecond}});  // one idle session for two waiters
  ASSERT_EQ(planned.size(), 1u);
  EXPECT_EQ(planned[0].for_budget, ledger_.find("b"));
}

TEST_F(ReclaimTest, AReclaimForADeletedBudgetStillEndsButCountsForNobody) {
  now_ = 100 * kSecond;
  configure({reclaiming(queueing("w", "w", 1), 0)});
  login_as(0, "w");
  login_as(1, "w");
  ASSERT_TRUE(mark(plan({{0, 0}}).at(0)));
  configure({});  // w is deleted: its session and its waiter move to default
  EXPECT_EQ(ledger_.sessions()[0].reclaimed_for, kNoBudget);
  EXPECT_EQ(ledger_.reclaim_names(0).for_budget.view(), "w");  // what its message says
}

TEST_F(ReclaimTest, TheDefaultBudgetReclaimsWithItsSetting) {
  now_ = 100 * kSecond;
  policy_.default_limits.max_connections = 1;
  policy_.default_limits.on_full = OnFull::Queue;
  policy_.default_limits.idle_reclaim_ms = 500;
  configure({});
  EXPECT_TRUE(ledger_.header().uses_idle_reclaim);
  login_as(0, "x");
  login_as(1, "x");
  EXPECT_EQ(slots(plan({{0, now_ - kSecond}})), std::vector<int>{0});
}
