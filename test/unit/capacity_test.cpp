// Exact capacity: what the server really has free (FakeServer, with backends the ledger
// cannot see: logins still authenticating, refused ones on their way out) decides for
// logins beyond their budget's entitlement; a login within it is always admitted; when
// every budget's max_connections fits, waiting logins never take a backend another budget
// is entitled to; a full server is said to be full.
#include <gtest/gtest.h>

#include "ledger_fixture.hpp"

using namespace connbudget;
using namespace connbudget::testing_support;

TEST_F(LedgerTest, ASharedLoginCountsBackendsTheLedgerCannotSee) {
  policy_.capacity = 10;
  configure({with(budget("api", "backend", 10), 4), budget("workers", "worker", 20)});  // 30 > 10: no fit
  for (int s = 0; s < 5; ++s) EXPECT_EQ(login_as(s, "worker").verdict, Verdict::Admit) << s;
  server_.starting_or_ending = 1;  // 5 sessions + 1 unseen: 4 free, all of them api's
  const Admission refused = login_as(5, "worker");
  EXPECT_EQ(refused.verdict, Verdict::RefuseReserved);
  server_.starting_or_ending = 5;  // nothing free at all
  EXPECT_EQ(login_as(5, "worker").verdict, Verdict::RefuseServerFull);
  EXPECT_EQ(counters("workers").rejected_server_full, 1);
  server_.starting_or_ending = 0;
  EXPECT_EQ(login_as(5, "worker").verdict, Verdict::Admit);  // the unseen ones have gone
}

TEST_F(LedgerTest, ALoginWithinItsReservationIsAdmittedWhateverTheServerHasFree) {
  policy_.capacity = 10;
  configure({with(budget("api", "backend", 10), 4), budget("workers", "worker", 20)});
  for (int s = 0; s < 6; ++s) login_as(s, "worker");
  server_.starting_or_ending = 4;  // a storm of refused logins holds every free backend
  for (int s = 6; s < 10; ++s) EXPECT_EQ(login_as(s, "backend").verdict, Verdict::Admit) << s;
  EXPECT_EQ(login_as(10, "backend").verdict, Verdict::RefuseServerFull);  // beyond its reservation
}

TEST_F(LedgerTest, WhenEveryBudgetFitsALoginWhoseBudgetHasRoomIsAlwaysAdmitted) {
  policy_.capacity = 12;  // api 4 + extraction 3 + semantic 3 = 10: they fit, 2 spare
  configure({with(budget("api", "backend", 4), 4), queueing("extraction", "extraction", 3),
             queueing("semantic", "semantic", 3)});
  EXPECT_TRUE(ledger_.header().fits);
  for (int s = 0; s < 3; ++s) login_as(s, "extraction");
  EXPECT_EQ(login_as(3, "extraction").verdict, Verdict::Queue);  // the 2 spare backends
  EXPECT_EQ(login_as(4, "extraction").verdict, Verdict::Queue);
  const Admission no_place = login_as(5, "extraction");
  EXPECT_EQ(no_place.verdict, Verdict::RefuseReserved);  // a third waiter would take semantic's
  EXPECT_EQ(no_place.reserved_for_others, 7);            // api's 4 and semantic's 3
  server_.starting_or_ending = 2;  // and the server's last backends are held by unseen logins
  for (int s = 6; s < 9; ++s) EXPECT_EQ(login_as(s, "semantic").verdict, Verdict::Admit) << s;
  for (int s = 9; s < 13; ++s) EXPECT_EQ(login_as(s, "backend").verdict, Verdict::Admit) << s;
}

TEST_F(LedgerTest, WhenBudgetsDoNotFitOnlyReservationsAreKeptFromWaiters) {
  policy_.capacity = 9;  // 4 + 3 + 3 = 10 > 9
  configure({with(budget("api", "backend", 4), 4), queueing("extraction", "extraction", 3),
             queueing("semantic", "semantic", 3)});
  EXPECT_FALSE(ledger_.header().fits);
  for (int s = 0; s < 3; ++s) login_as(s, "extraction");
  EXPECT_EQ(login_as(3, "extraction").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(4, "extraction").verdict, Verdict::Queue);
  EXPECT_EQ(login_as(5, "extraction").verdict, Verdict::RefuseReserved);  // the rest is api's
  EXPECT_EQ(login_as(5, "semantic").verdict, Verdict::RefuseReserved);    // for semantic too
}

TEST_F(LedgerTest, ALimitedDefaultBudgetTakesPartInTheFit) {
  policy_.capacity = 10;
  policy_.default_limits.max_connections = 6;
  configure({budget("api", "backend", 4)});
  EXPECT_TRUE(ledger_.header().fits);
  EXPECT_EQ(ledger_.budgets()[kDefaultBudget].entitled, 6);
  policy_.default_limits.max_connections = 7;  // a reload of the settings: 11 > 10
  login_as(0, "x");
  EXPECT_FALSE(ledger_.header().fits);
  EXPECT_EQ(ledger_.budgets()[kDefaultBudget].entitled, 0);
}

TEST_F(LedgerTest, AFullServerWithoutBudgetsSaysItIsFull) {
  policy_.capacity = 3;
  configure({});
  for (int s = 0; s < 3; ++s) EXPECT_EQ(login_as(s, "x").verdict, Verdict::Admit);
  const Admission refused = login_as(3, "x");
  EXPECT_EQ(refused.verdict, Verdict::RefuseServerFull);
  EXPECT_EQ(refused.reserved_for_others, 0);
  EXPECT_EQ(counters("default").rejected_server_full, 1);
  EXPECT_EQ(counters("default").rejected_reserved, 0);
}

TEST_F(LedgerTest, ADisplacedWaiterStillHoldsItsBackendUntilItExits) {
  policy_.capacity = 4;
  configure({with(queueing("low", "low", 1), 0, 0), with(budget("high", "high", 4), 0, 9)});
  login_as(0, "low");
  login_as(1, "low");  // waits
  login_as(2, "low");  // waits
  login_as(3, "high");
  EXPECT_EQ(login_as(4, "high").displaced, 2);  // the server is full: the youngest waiter goes
  EXPECT_EQ(ledger_.header().displaced, 1);
  // Its backend is leaving, not yet gone: the next login can only displace the next waiter.
  EXPECT_EQ(login_as(5, "high").displaced, 1);
  EXPECT_EQ(login_as(6, "high").verdict, Verdict::RefuseServerFull);
  release(2);
  release(1);
  EXPECT_EQ(ledger_.header().displaced, 0);
}
