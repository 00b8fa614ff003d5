// The shared books: classification order, admission and release, counts recomputed from
// session slots, reconfiguration that keeps counters by name and never loses a slot, and
// the FIFO queue with direct handoff.
#include "core/ledger.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "core/reclaim.hpp"
#include "ledger_fixture.hpp"

using namespace connbudget;
using namespace connbudget::testing_support;

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
  EXPECT_EQ(counters("api").rejected(), 1);
  EXPECT_EQ(ledger_.sessions()[3].budget, kNoBudget);  // a refused login books nothing

  release(1);
  EXPECT_EQ(active("api"), 2);
  EXPECT_EQ(login_as(3, "backend").verdict, Verdict::Admit);  // the freed slot is reusable
  EXPECT_EQ(counters("api").peak, 3);
}

// A pool that closes a connection and logs in again at once: the old session is still
// counted until its backend exits. With a grace, the new login waits for that slot.
TEST_F(LedgerTest, FullBudgetThatRefusesGivesALeavingSessionTheGrace) {
  policy_.reject_grace_ms = 100;
  configure({budget("api", "backend", 2)});
  login_as(0, "backend");
  login_as(1, "backend");
  const Admission waits = login_as(2, "backend");
  EXPECT_EQ(waits.verdict, Verdict::Queue);
  EXPECT_EQ(waits.queue_timeout_ms, 100);
  EXPECT_EQ(waits.enforced, Verdict::Refuse);  // what it comes to if no session leaves
  EXPECT_EQ(login_as(3, "backend").verdict, Verdict::Queue);  // behind the first, never before it
  EXPECT_EQ(release(0), Woken{2});  // the old session exits: its slot goes to the oldest
  EXPECT_EQ(phase(2), SessionPhase::Active);
  EXPECT_EQ(counters("api").admitted, 3);
  EXPECT_EQ(counters("api").queued, 0);  // the grace is no queue: admitted, or refused as full
  EXPECT_EQ(counters("api").waits, 0);

  // The grace runs out with no session gone: refused because the budget is full.
  const Departed refused = leave(3, Departure::TimedOut);
  EXPECT_EQ(refused.outcome, Departed::Outcome::Left);
  EXPECT_TRUE(refused.refused);
  EXPECT_EQ(counters("api").rejected_full, 1);
  EXPECT_EQ(counters("api").timed_out, 0);
  EXPECT_GT(counters("api").last_refusal_us, 0);
  EXPECT_EQ(ledger_.budgets()[ledger_.find("api")].waiting, 0);

  // However else it leaves during the grace (client gone, terminated, its backend gone),
  // it was a login the full budget turned away.
  login_as(4, "backend");
  EXPECT_FALSE(leave(4, Departure::Abandoned).refused);
  login_as(5, "backend");
  release(5);
  EXPECT_EQ(counters("api").rejected_full, 3);
  EXPECT_EQ(counters("api").abandoned, 0);
  EXPECT_EQ(counters("api").queued, 0);
}

TEST_F(LedgerTest, TheGraceNeedsABackendAndRoomInTheQueue) {
  policy_.reject_grace_ms = 100;
  policy_.max_queue = 1;
  configure({budget("api", "backend", 1)});
  login_as(0, "backend");
  EXPECT_EQ(login_as(1, "backend").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(2, "backend").verdict, Verdict::Refuse);  // max_queue logins in their grace already
  policy_.reject_grace_ms = 0;
  leave(1, Departure::Abandoned);
  EXPECT_EQ(login_as(1, "backend").verdict, Verdict::Refuse);  // no grace: refused at once
}

TEST_F(LedgerTest, MonitorModeCountsALoginInTheGraceAsRefused) {
  policy_.reject_grace_ms = 100;
  BudgetDefinition monitored = budget("m", "mon", 1);
  monitored.limits.mode = Mode::Monitor;
  configure({monitored});
  login_as(0, "mon");
  const Admission over = login_as(1, "mon");
  EXPECT_EQ(over.verdict, Verdict::AdmitOverLimit);
  EXPECT_EQ(over.enforced, Verdict::Refuse);
  EXPECT_EQ(counters("m").would_reject, 1);
}

TEST_F(LedgerTest, ReleaseIsIdempotentAndRebookingNeverDoubleCounts) {
  configure({budget("api", "backend", 3)});
  login_as(0, "backend");
  release(0);
  release(0);
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
  policy_.enforcement_enabled = false;
  EXPECT_EQ(login_as(3, "enf").verdict, Verdict::AdmitOverLimit);
}

TEST_F(LedgerTest, DefaultBudgetUsesTheLimitsItIsGiven) {
  policy_.default_limits.max_connections = 1;
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
  release(0);
  release(1);
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
  const std::vector<BudgetDefinition> twice = {budget("dup", "a", 1), budget("dup", "b", 1)};
  const auto dup = configure(twice);  // its duplicate is a view into the definitions
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
    release(s);
    login_as(s, round % 3 ? "backend" : "worker");
  }
  EXPECT_EQ(active("api") + active("w") + ledger_.budgets()[kDefaultBudget].active, booked_sessions());
  for (int s = 0; s < kSessions; ++s) release(s);
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
  EXPECT_EQ(counters("api").rejected(), 0);
  EXPECT_EQ(counters("api").peak, 1);
  EXPECT_EQ(counters("api").stats_reset_us, 99);
  EXPECT_EQ(active("api"), 1);
  EXPECT_FALSE(ledger_.reset_stats(std::string_view("nope"), 100));
  EXPECT_TRUE(ledger_.reset_stats(std::nullopt, 100));
  EXPECT_EQ(counters("default").stats_reset_us, 100);
}

TEST_F(LedgerTest, OutOfRangeSessionIsAdmittedUncounted) {
  const LoginAttributes login{"x", "r", "d", {}, {}};
  Wakeups wakeups(buffer_);
  const Admission a = ledger_.admit(kSessions, Classification{}, login, 1, policy_, server_, 0, wakeups);
  EXPECT_EQ(a.verdict, Verdict::Admit);
  EXPECT_EQ(a.budget, kNoBudget);
  EXPECT_EQ(booked_sessions(), 0);
}

TEST_F(LedgerTest, FullQueueingBudgetQueuesTheLogin) {
  configure({queueing("w", "worker", 1, 2)});
  EXPECT_EQ(login_as(0, "worker").verdict, Verdict::Admit);
  const Admission queued = login_as(1, "worker");
  EXPECT_EQ(queued.verdict, Verdict::Queue);
  EXPECT_EQ(queued.active, 1);
  EXPECT_EQ(phase(1), SessionPhase::Waiting);
  EXPECT_EQ(ledger_.budgets()[ledger_.find("w")].waiting, 1);
  EXPECT_EQ(counters("w").queued, 1);
  EXPECT_EQ(login_as(2, "worker").verdict, Verdict::Queue);
  const Admission full = login_as(3, "worker");
  EXPECT_EQ(full.verdict, Verdict::RefuseQueueFull);
  EXPECT_EQ(full.waiting, 2);
  EXPECT_EQ(phase(3), SessionPhase::Free);
  EXPECT_EQ(counters("w").rejected(), 1);
}

TEST_F(LedgerTest, ReleaseHandsTheSlotToTheOldestWaiter) {
  configure({queueing("w", "worker", 1)});
  login_as(0, "worker");
  for (int s = 1; s <= 3; ++s) login_as(s, "worker");
  EXPECT_EQ(queue_position(ledger_.sessions(), 1), 1);
  EXPECT_EQ(queue_position(ledger_.sessions(), 3), 3);
  EXPECT_EQ(release(0), Woken{1});  // one release wakes exactly the oldest waiter
  EXPECT_EQ(phase(1), SessionPhase::Active);
  EXPECT_EQ(active("w"), 1);
  EXPECT_EQ(queue_position(ledger_.sessions(), 2), 1);
  EXPECT_EQ(release(1), Woken{2});
  EXPECT_EQ(release(2), Woken{3});
  EXPECT_EQ(release(3), Woken{});
  EXPECT_EQ(active("w"), 0);
  EXPECT_EQ(counters("w").admitted, 4);
  EXPECT_EQ(counters("w").waits, 3);
  EXPECT_GT(counters("w").wait_max_us, 0);
}

TEST_F(LedgerTest, NewcomerNeverOvertakesAWaiter) {
  configure({queueing("w", "worker", 2)});
  login_as(0, "worker");
  login_as(1, "worker");
  login_as(2, "worker");  // waits
  // Simulate the instant a slot frees and a newcomer arrives before the waiter runs:
  // the handoff already gave the slot to the waiter, so the newcomer queues.
  EXPECT_EQ(release(0), Woken{2});
  EXPECT_EQ(login_as(3, "worker").verdict, Verdict::Queue);
  EXPECT_EQ(phase(2), SessionPhase::Active);
}

TEST_F(LedgerTest, TimeoutRacingAGrantIsDecidedOnce) {
  configure({queueing("w", "worker", 1)});
  login_as(0, "worker");
  login_as(1, "worker");
  login_as(2, "worker");
  const Departed timed_out = leave(2, Departure::TimedOut);
  EXPECT_EQ(timed_out.outcome, Departed::Outcome::Left);
  EXPECT_EQ(counters("w").timed_out, 1);
  EXPECT_EQ(release(0), Woken{1});
  const Departed too_late = leave(1, Departure::TimedOut);
  EXPECT_EQ(too_late.outcome, Departed::Outcome::Granted);  // it is admitted, not timed out
  EXPECT_EQ(phase(1), SessionPhase::Active);
  EXPECT_EQ(counters("w").timed_out, 1);
  check_invariants();
}

TEST_F(LedgerTest, AbandonedWaitersLeaveWithoutTakingASlot) {
  configure({queueing("w", "worker", 1)});
  login_as(0, "worker");
  login_as(1, "worker");
  login_as(2, "worker");
  EXPECT_EQ(leave(1, Departure::Abandoned).outcome, Departed::Outcome::Left);
  EXPECT_EQ(release(2), Woken{});  // a waiter whose process exits (exit callback) also counts
  EXPECT_EQ(counters("w").abandoned, 2);
  EXPECT_EQ(active("w"), 1);
  EXPECT_EQ(release(0), Woken{});
  EXPECT_EQ(login_as(3, "worker").verdict, Verdict::Admit);
  check_invariants();
}

TEST_F(LedgerTest, RaisedLimitAdmitsWaitersAtOnceInOrder) {
  configure({queueing("w", "worker", 1)});
  for (int s = 0; s < 5; ++s) login_as(s, "worker");
  configure({queueing("w", "worker", 3)});
  EXPECT_EQ(woken_, (Woken{1, 2}));
  EXPECT_EQ(phase(3), SessionPhase::Waiting);
  EXPECT_EQ(queue_position(ledger_.sessions(), 3), 1);
  configure({queueing("w", "worker", 1)});  // lowering never ends sessions
  EXPECT_EQ(active("w"), 3);
}

TEST_F(LedgerTest, ReconfigureAppliesRaisedDefaultLimits) {
  policy_.default_limits.max_connections = 1;
  policy_.default_limits.on_full = OnFull::Queue;
  login_as(0, "x");
  login_as(1, "x");
  EXPECT_EQ(phase(1), SessionPhase::Waiting);
  policy_.default_limits.max_connections = 2;  // a reload of postgresql.conf
  configure({});
  EXPECT_EQ(woken_, Woken{1});
}

TEST_F(LedgerTest, LoginWithARaisedDefaultLimitFirstAdmitsTheWaiters) {
  policy_.default_limits.max_connections = 1;
  policy_.default_limits.on_full = OnFull::Queue;
  login_as(0, "x");
  login_as(1, "x");
  login_as(2, "x");
  policy_.default_limits.max_connections = 10;  // the next login's settings say so
  EXPECT_EQ(login_as(3, "x").verdict, Verdict::Admit);
  EXPECT_EQ(woken_, (Woken{1, 2}));
}

TEST_F(LedgerTest, EnforcementSwitchedOffAdmitsWaitersBeforeNewcomers) {
  configure({queueing("w", "worker", 1)});
  login_as(0, "worker");
  login_as(1, "worker");
  login_as(2, "worker");
  policy_.enforcement_enabled = false;
  EXPECT_EQ(login_as(3, "worker").verdict, Verdict::AdmitOverLimit);
  EXPECT_EQ(woken_, (Woken{1, 2}));
  policy_.enforcement_enabled = true;
}

TEST_F(LedgerTest, MonitorModeByReloadAdmitsTheWaiters) {
  configure({queueing("w", "worker", 1)});
  login_as(0, "worker");
  login_as(1, "worker");
  BudgetDefinition monitored = queueing("w", "worker", 1);
  monitored.limits.mode = Mode::Monitor;
  configure({monitored});
  EXPECT_EQ(woken_, Woken{1});
}

TEST_F(LedgerTest, LeavingReportsTheBudgetAWaiterWasMovedTo) {
  configure({queueing("w", "worker", 1)});
  login_as(0, "worker");
  login_as(1, "worker");
  policy_.default_limits.max_connections = 0;
  policy_.default_limits.on_full = OnFull::Queue;
  configure({});
  const Departed departed = leave(1, Departure::TimedOut);
  EXPECT_EQ(departed.outcome, Departed::Outcome::Left);
  EXPECT_EQ(departed.budget, kDefaultBudget);
}

TEST_F(LedgerTest, WaitersOfADeletedBudgetMoveToDefault) {
  policy_.default_limits.max_connections = 2;
  configure({queueing("w", "worker", 1), queueing("v", "other", 1)});
  login_as(0, "worker");
  login_as(1, "worker");
  login_as(2, "other");
  login_as(3, "worker");
  login_as(4, "other");
  const ReconfigureResult result = configure({});
  EXPECT_EQ(result.moved_to_default, 5);
  // default admits 2 and has 2 already active: nobody is granted, the waiters keep their
  // arrival order in default's queue.
  EXPECT_EQ(woken_, Woken{});
  EXPECT_EQ(queue_position(ledger_.sessions(), 1), 1);
  EXPECT_EQ(queue_position(ledger_.sessions(), 3), 2);
  EXPECT_EQ(queue_position(ledger_.sessions(), 4), 3);
  EXPECT_EQ(release(0), Woken{1});
  EXPECT_EQ(release(2), Woken{3});
  EXPECT_EQ(phase(4), SessionPhase::Waiting);
}

TEST_F(LedgerTest, AReservedBudgetAlwaysGetsItsSlotsAndOthersShareTheRest) {
  policy_.capacity = 10;
  configure({with(budget("api", "backend", 6), 4), budget("workers", "worker", 20)});
  for (int s = 0; s < 6; ++s) EXPECT_EQ(login_as(s, "worker").verdict, Verdict::Admit) << s;
  const Admission refused = login_as(6, "worker");
  EXPECT_EQ(refused.verdict, Verdict::RefuseReserved);  // 4 of the 10 are kept for api
  EXPECT_EQ(refused.free, 4);
  EXPECT_EQ(refused.reserved_for_others, 4);
  for (int s = 6; s < 10; ++s) EXPECT_EQ(login_as(s, "backend").verdict, Verdict::Admit) << s;
  EXPECT_EQ(login_as(10, "backend").verdict, Verdict::RefuseServerFull);  // beyond its 4: shared, full
  release(0);
  EXPECT_EQ(login_as(10, "backend").verdict, Verdict::Admit);  // a shared slot, above its reservation
  EXPECT_EQ(login_as(11, "worker").verdict, Verdict::RefuseServerFull);
}

TEST_F(LedgerTest, AnIdleReservationBlocksNobodyBeyondItsSize) {
  policy_.capacity = 10;
  configure({with(budget("api", "backend", 10), 3), budget("workers", "worker", 20)});
  int admitted = 0;
  for (int s = 0; s < kSessions; ++s) admitted += login_as(s, "worker").verdict == Verdict::Admit;
  EXPECT_EQ(admitted, 7);
}

TEST_F(LedgerTest, ExemptSessionsUseCapacityButAreNeverRefused) {
  policy_.capacity = 4;
  configure({with(budget("api", "backend", 4), 2)});
  EXPECT_EQ(login_as(0, "x", true).verdict, Verdict::Admit);
  EXPECT_EQ(login_as(1, "x", true).verdict, Verdict::Admit);
  EXPECT_EQ(login_as(2, "x").verdict, Verdict::RefuseReserved);  // default: 2 used, 2 reserved
  EXPECT_EQ(login_as(3, "x", true).verdict, Verdict::Admit);
  EXPECT_EQ(login_as(4, "backend").verdict, Verdict::Admit);  // the reservation still holds
}

TEST_F(LedgerTest, QueuedLoginsHoldCapacityToo) {
  policy_.capacity = 6;
  configure({with(budget("api", "backend", 6), 2), queueing("w", "worker", 2)});
  login_as(0, "worker");
  login_as(1, "worker");
  EXPECT_EQ(login_as(2, "worker").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(3, "worker").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(4, "worker").verdict, Verdict::RefuseReserved);  // waiting would eat api's
  EXPECT_EQ(login_as(4, "backend").verdict, Verdict::Admit);
  EXPECT_EQ(login_as(5, "backend").verdict, Verdict::Admit);
}

TEST_F(LedgerTest, AHigherPriorityLoginDisplacesTheYoungestLowerPriorityWaiter) {
  policy_.capacity = 6;
  configure({with(queueing("low", "low", 2), 0, 1), with(queueing("lower", "lower", 1), 0, 0),
             with(budget("high", "high", 5), 0, 9)});
  login_as(0, "low");
  login_as(1, "low");
  login_as(2, "low");    // waits
  login_as(3, "lower");
  login_as(4, "lower");  // waits
  login_as(5, "low");    // waits, youngest of low
  const Admission high = login_as(6, "high");
  EXPECT_EQ(high.verdict, Verdict::Admit);
  EXPECT_EQ(high.displaced, 4);  // the lowest priority goes first
  EXPECT_EQ(woken_, Woken{4});
  EXPECT_EQ(phase(4), SessionPhase::Displaced);
  EXPECT_EQ(ledger_.sessions()[4].displaced_by, ledger_.find("high"));
  EXPECT_EQ(counters("lower").rejected(), 1);
  EXPECT_EQ(login_as(7, "high").displaced, 5);  // then the youngest of the next priority
  EXPECT_EQ(login_as(8, "high").verdict, Verdict::Admit);  // displaces 2
  EXPECT_EQ(login_as(9, "high").verdict, Verdict::RefuseServerFull);  // sessions are never displaced
  EXPECT_EQ(release(4), Woken{});  // the displaced backend exits: nothing to give back
  check_invariants();
}

TEST_F(LedgerTest, ReservationsBeyondCapacityAreHonouredInMatchOrder) {
  policy_.capacity = 5;
  const ReconfigureResult result =
      configure({with(budget("first", "a", 5), 3), with(budget("second", "b", 5), 4)});
  EXPECT_EQ(result.reservation_shortfall, 2);
  EXPECT_EQ(ledger_.budgets()[ledger_.find("first")].reserved, 3);
  EXPECT_EQ(ledger_.budgets()[ledger_.find("second")].reserved, 2);
}

TEST_F(LedgerTest, ADisplacedWaiterThatTimesOutIsNotAdmitted) {
  policy_.capacity = 3;
  configure({with(queueing("low", "low", 1), 0, 1), with(budget("high", "high", 5), 0, 9)});
  login_as(0, "low");
  login_as(1, "low");  // waits
  login_as(2, "high");
  EXPECT_EQ(login_as(3, "high").displaced, 1);
  EXPECT_EQ(leave(1, Departure::TimedOut).outcome, Departed::Outcome::Displaced);
  EXPECT_EQ(phase(1), SessionPhase::Displaced);
}

TEST_F(LedgerTest, NobodyIsDisplacedForALoginThatWouldStillNotFit) {
  policy_.capacity = 10;
  configure({with(budget("api", "backend", 5), 3), with(queueing("w", "worker", 5), 0, 1),
             with(budget("high", "high", 5), 0, 9)});
  for (int s = 0; s < 7; ++s) login_as(s, "worker");  // 5 active, 2 waiting: 7 + 3 reserved
  login_as(7, "x", true);                               // a superuser: 11 > 10, overcommitted
  const Admission high = login_as(8, "high");
  EXPECT_EQ(high.verdict, Verdict::RefuseReserved);
  EXPECT_EQ(high.displaced, kNoSession);
  EXPECT_EQ(ledger_.budgets()[ledger_.find("w")].waiting, 2);
}

TEST_F(LedgerTest, ARaisedReservationDisplacesWaitersToFit) {
  policy_.capacity = 6;
  configure({budget("api", "backend", 5), with(queueing("w", "worker", 3), 0, 1)});
  for (int s = 0; s < 6; ++s) login_as(s, "worker");  // 3 active, 3 waiting: full
  const ReconfigureResult result =
      configure({with(budget("api", "backend", 5), 2), with(queueing("w", "worker", 3), 0, 1)});
  EXPECT_EQ(result.displaced, 2);
  EXPECT_EQ(result.overcommitted, 0);
  EXPECT_EQ(woken_, (Woken{5, 4}));  // youngest first
  EXPECT_EQ(login_as(6, "backend").verdict, Verdict::Admit);
  EXPECT_EQ(login_as(7, "backend").verdict, Verdict::Admit);
}

TEST_F(LedgerTest, MonitorModeKnowsWhatEnforcementWouldHaveDone) {
  policy_.capacity = 4;
  BudgetDefinition watched = with(budget("w", "worker", 10), 0, 0);
  watched.limits.mode = Mode::Monitor;
  configure({with(budget("api", "backend", 2), 2), watched});
  login_as(0, "worker");
  login_as(1, "worker");
  const Admission over = login_as(2, "worker");
  EXPECT_EQ(over.verdict, Verdict::AdmitOverLimit);
  EXPECT_EQ(over.enforced, Verdict::RefuseReserved);
}

TEST_F(LedgerTest, WithAWaitingRoomLoginsWaitForSharedCapacityAndTheHighestPriorityGoesFirst) {
  policy_.capacity = 10;
  policy_.waiting_room = 3;  // sessions beyond reservations: 10 - 3 - 2 (api) = 5
  configure({with(budget("api", "backend", 4), 2), with(queueing("low", "low", 10), 0, 1),
             with(queueing("high", "high", 10), 0, 5)});
  for (int s = 0; s < 5; ++s) EXPECT_EQ(login_as(s, "low").verdict, Verdict::Admit) << s;
  const Admission waits = login_as(5, "low");
  EXPECT_EQ(waits.verdict, Verdict::Queue);  // its budget has room, the server has not
  EXPECT_EQ(login_as(6, "high").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(7, "low").verdict, Verdict::Queue);   // 3 waiting: the room is full
  EXPECT_EQ(login_as(8, "low").verdict, Verdict::RefuseReserved);
  EXPECT_EQ(login_as(8, "backend").verdict, Verdict::Admit);  // reservations stay available
  EXPECT_EQ(login_as(9, "backend").verdict, Verdict::Admit);
  EXPECT_EQ(release(0), Woken{6});  // a low session ends: the high waiter goes first
  EXPECT_EQ(release(1), Woken{5});  // then the low waiters, oldest first
  EXPECT_EQ(release(2), Woken{7});
  EXPECT_EQ(release(8), Woken{});   // a reserved slot freed stays reserved
}

TEST_F(LedgerTest, WithAWaitingRoomNewcomersQueueBehindCapacityWaiters) {
  policy_.capacity = 6;
  policy_.waiting_room = 2;
  configure({with(queueing("a", "a", 10), 0, 1), with(queueing("b", "b", 10), 0, 1)});
  for (int s = 0; s < 4; ++s) login_as(s, "a");
  EXPECT_EQ(login_as(4, "b").verdict, Verdict::Queue);
  EXPECT_EQ(release(0), Woken{4});  // the freed capacity goes to the waiter of b,
  EXPECT_EQ(login_as(0, "a").verdict, Verdict::Queue);  // and a newcomer of a waits
}

TEST_F(LedgerTest, NoWaiterIsDisplacedForALoginThatLacksASessionNotABackend) {
  policy_.capacity = 6;
  policy_.waiting_room = 2;
  configure({with(queueing("low", "low", 10), 0, 1), with(budget("high", "high", 5), 0, 9)});
  for (int s = 0; s < 4; ++s) EXPECT_EQ(login_as(s, "low").verdict, Verdict::Admit) << s;
  EXPECT_EQ(login_as(4, "low").verdict, Verdict::Queue);  // waits for shared capacity
  const Admission high = login_as(5, "high");
  EXPECT_EQ(high.verdict, Verdict::RefuseReserved);
  EXPECT_EQ(high.displaced, kNoSession);
  EXPECT_EQ(phase(4), SessionPhase::Waiting);
}

TEST_F(LedgerTest, WithoutAWaitingRoomAWaiterStartsWhenItsBudgetHasRoomEvenIfSuperusersOvercommit) {
  policy_.capacity = 4;
  configure({queueing("q", "q", 1)});
  login_as(0, "q");
  EXPECT_EQ(login_as(1, "q").verdict, Verdict::Queue);
  for (int s = 2; s < 6; ++s) login_as(s, "x", true);  // superusers beyond the capacity
  EXPECT_EQ(release(0), Woken{1});
}

TEST_F(LedgerTest, ALoginWithNoQueueToWaitInStillDisplacesALowerPriorityWaiter) {
  policy_.capacity = 3;
  configure({with(queueing("low", "low", 1), 0, 1), with(queueing("high", "high", 5, 0), 0, 9)});
  login_as(0, "low");
  login_as(1, "low");  // waits
  login_as(2, "high");
  const Admission a = login_as(3, "high");
  EXPECT_EQ(a.verdict, Verdict::Admit);
  EXPECT_EQ(a.displaced, 1);
}

TEST_F(LedgerTest, ARaisedReservationStartsItsOwnWaitersBeforeDisplacingAnyone) {
  policy_.capacity = 6;
  configure({budget("o", "o", 5), with(queueing("x", "x", 1), 0, 1), with(queueing("v", "v", 1), 0, 0)});
  login_as(0, "x");
  login_as(1, "x");  // waits
  login_as(2, "v");
  login_as(3, "v");  // waits
  login_as(4, "o");
  login_as(5, "o");
  configure({with(budget("o", "o", 5), 3), with(queueing("x", "x", 1), 0, 1), with(queueing("v", "v", 3), 3, 0)});
  EXPECT_EQ(phase(3), SessionPhase::Active);  // below its raised reservation: it starts
}

// Logins, logouts, departures and reloads at random, with the capacity, the waiting room,
// enforcement and the default limit changing under them: every invariant holds after
// every step.
TEST_F(LedgerTest, RandomOperationsKeepEveryInvariant) {
  for (unsigned seed = 1; seed <= 11; ++seed) {
    std::mt19937 random(seed);
    policy_.default_limits.max_connections = 3;
    policy_.default_limits.on_full = OnFull::Queue;
    policy_.capacity = 12;
    policy_.waiting_room = 3;
    BudgetDefinition monitored = with(queueing("m", "m", 1, 3), 0, 7);
    monitored.limits.mode = Mode::Monitor;
    const std::vector<std::vector<BudgetDefinition>> configurations = {
        {with(reclaiming(queueing("a", "a", 2, 3), 0), 2, 1), budget("b", "b", 1)},
        {with(queueing("b", "b", 3, 2), 1, 5), queueing("a", "a", 1, 5)},
        {with(budget("c", "c", 2), 2, 3), with(queueing("a", "a", 4), 3, 0)},
        {with(queueing("c", "c", 3, 4), 3, 9), with(queueing("a", "a", 2, 4), 0, 2),
         with(queueing("b", "b", 5, 0), 1, 4), monitored},
        {monitored, with(reclaiming(queueing("a", "a", 6, 6), 0), 4, 1)},
        {},
    };
    const char* apps[] = {"a", "b", "c", "m", "x"};
    for (int step = 0; step < 10000; ++step) {
      const int session = static_cast<int>(random() % kSessions);
      switch (random() % 12) {
        case 0:
          configure(configurations[random() % configurations.size()]);
          break;
        case 1:
          leave(session, random() % 2 ? Departure::TimedOut : Departure::Abandoned);
          break;
        case 2: case 3: case 4:
          release(session);
          break;
        case 5:
          policy_.enforcement_enabled = random() % 4 != 0;
          policy_.default_limits.max_connections = static_cast<int>(random() % 4);
          break;
        case 6:
          policy_.capacity = 4 + static_cast<int>(random() % 10);
          policy_.waiting_room = static_cast<int>(random() % 5);
          server_.starting_or_ending = static_cast<int>(random() % 4);  // logins the ledger cannot see
          break;
        case 7:
          if (phase(session) == SessionPhase::Free) login_as(session, "x", true);
          break;
        case 8: {  // every candidate idle: end one, as the worker would
          policy_.default_limits.idle_reclaim_ms = random() % 2 ? 0 : BudgetLimits::kNeverReclaim;
          std::vector<IdleSession> idle(kSessions);
          idle.resize(reclaim_candidates(ledger_, idle));
          std::vector<Reclaim> planned(kSessions);
          std::int64_t due = 0;
          planned.resize(plan_reclaims(ledger_, idle, now_, planned, &due));
          if (!planned.empty()) {
            ASSERT_TRUE(ledger_.mark_reclaimed(planned[0], ++now_));
          }
          check_invariants();
          break;
        }
        default:
          if (phase(session) == SessionPhase::Free) {
            const char* app = apps[random() % 5];
            const Admission a = login_as(session, app);
            // Within its entitlement (and its limit, nobody waiting, not paused): always admitted.
            if (a.budget != kNoBudget && a.active < ledger_.budgets()[a.budget].entitled && a.waiting == 0 &&
                !a.paused && (a.limit == BudgetLimits::kUnlimited || a.active < a.limit)) {
              ASSERT_TRUE(a.verdict == Verdict::Admit || a.verdict == Verdict::AdmitOverLimit) << app;
            }
          }
      }
      if (HasFatalFailure()) FAIL() << "seed " << seed << " at step " << step;
    }
  }
}

TEST_F(LedgerTest, ALoginTerminatedAsItsSlotCameIsCountedTerminatedNotAdmitted) {
  configure({queueing("w", "w", 1)});
  login_as(0, "w");
  EXPECT_EQ(login_as(1, "w").verdict, Verdict::Queue);
  login_as(2, "w");
  EXPECT_EQ(release(0), Woken{1});  // its slot is handed over as it is being terminated
  EXPECT_EQ(counters("w").admitted, 2);
  Wakeups wakeups(buffer_);
  const Departed left = ledger_.forgo_grant(1, Departure::Terminated, ++now_, wakeups);
  check_invariants();
  EXPECT_EQ(left.outcome, Departed::Outcome::Left);
  EXPECT_EQ(counters("w").terminated, 1);
  // Passed on to the next waiter: counted admitted are 0 and 2, not 1.
  EXPECT_EQ(std::vector<int>(wakeups.sessions().begin(), wakeups.sessions().end()), Woken{2});
  EXPECT_EQ(counters("w").admitted, 2);
  EXPECT_EQ(counters("w").waits, 1);
  EXPECT_EQ(ledger_.forgo_grant(2, Departure::Canceled, ++now_, wakeups).outcome, Departed::Outcome::Left);
  EXPECT_EQ(counters("w").admitted, 1);
  EXPECT_EQ(counters("w").waits, 0);
  EXPECT_EQ(counters("w").terminated, 2);  // a cancel counts as terminated too
  login_as(3, "w");
  EXPECT_EQ(ledger_.forgo_grant(3, Departure::Terminated, ++now_, wakeups).outcome, Departed::Outcome::Granted)
      << "admitted without waiting: nothing to forgo";
}
