// Entitlements: a budget whose row names both an application_name and a role gives that
// name to that role. A login that claims the name with another role is a mismatch:
// counted on that budget, matched against the rows after it, or refused.
#include <gtest/gtest.h>

#include "ledger_fixture.hpp"

using namespace connbudget;
using namespace connbudget::testing_support;

namespace {

BudgetDefinition for_role(BudgetDefinition def, std::string_view role, bool group = false) {
  def.rule.has_role = true;
  def.rule.role_is_group = group;
  def.rule.role_name.assign(role);
  return def;
}

class EntitlementTest : public LedgerTest {
 protected:
  Admission login_with(int session, std::string_view app, std::string_view role,
                       std::span<const std::string_view> member_of = {}) {
    const LoginAttributes login{app, role, "db", {}, member_of};
    Wakeups wakeups(buffer_);
    const Admission a = ledger_.admit(session, classify(login), login, 1000 + session, policy_, server_,
                                      ++now_, wakeups);
    check_invariants();
    return a;
  }
};

}  // namespace

TEST_F(EntitlementTest, AnotherRoleClaimingTheNameFallsThroughAndIsCounted) {
  configure({for_role(with(budget("api", "backend", 10), 10), "api"), budget("workers", "%", 20)});
  const Admission a = login_with(0, "backend", "worker");
  EXPECT_EQ(a.budget, ledger_.find("workers"));  // the rows after it
  EXPECT_EQ(a.mismatched, ledger_.find("api"));
  EXPECT_TRUE(a.mismatch_log.log);
  EXPECT_EQ(counters("api").mismatched, 1);
  EXPECT_EQ(active("api"), 0);
  EXPECT_EQ(login_with(1, "backend", "api").mismatched, kNoBudget);  // the real API
  EXPECT_EQ(active("api"), 1);
}

TEST_F(EntitlementTest, WithRefuseAMismatchIsRefusedInTheBudgetsName) {
  policy_.on_mismatch = OnMismatch::Refuse;
  configure({for_role(budget("api", "backend", 10), "api"), budget("workers", "%", 20)});
  const Admission a = login_with(0, "backend", "worker");
  EXPECT_EQ(a.verdict, Verdict::RefuseMismatch);
  EXPECT_EQ(a.budget, ledger_.find("api"));
  EXPECT_EQ(counters("api").mismatched, 1);
  EXPECT_EQ(booked_sessions(), 0);
  policy_.enforcement_enabled = false;  // connbudget.enabled = off refuses nobody
  EXPECT_EQ(login_with(0, "backend", "worker").budget, ledger_.find("workers"));
}

TEST_F(EntitlementTest, MembersOfAGroupAreEntitledOthersAreNot) {
  configure({for_role(budget("team", "report%", 5), "analysts", true)});
  const std::string_view groups[] = {"analysts"};
  EXPECT_EQ(login_with(0, "report_1", "alice", groups).mismatched, kNoBudget);
  EXPECT_EQ(active("team"), 1);
  EXPECT_EQ(login_with(1, "report_2", "mallory").mismatched, ledger_.find("team"));
}

TEST_F(EntitlementTest, OnlyRowsNamingBothAnApplicationNameAndARoleAreEntitlements) {
  configure({budget("by_name", "backend", 5), for_role(budget("by_role", std::nullopt, 5), "api")});
  EXPECT_EQ(login_with(0, "backend", "worker").mismatched, kNoBudget);  // a name alone binds nobody
  EXPECT_EQ(login_with(1, "other", "worker").mismatched, kNoBudget);    // a role alone claims no name
}

TEST_F(EntitlementTest, ANameGivenToTwoRolesIsNoMismatchForEitherAndTheFirstClaimCounts) {
  configure({for_role(budget("a", "svc%", 5), "alpha"), for_role(budget("b", "svc%", 5), "beta"),
             budget("rest", "%", 5)});
  const Admission beta = login_with(0, "svc", "beta");
  EXPECT_EQ(beta.budget, ledger_.find("b"));
  EXPECT_EQ(beta.mismatched, kNoBudget);  // the name is beta's too
  const Admission other = login_with(1, "svc", "gamma");
  EXPECT_EQ(other.budget, ledger_.find("rest"));
  EXPECT_EQ(other.mismatched, ledger_.find("a"));  // the first it claimed
  EXPECT_EQ(counters("a").mismatched, 1);
  EXPECT_EQ(counters("b").mismatched, 0);
}
