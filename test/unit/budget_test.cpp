// Validation of connbudget.budgets rows and matching of budget rules against logins.
#include "core/budget.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace connbudget;

namespace {

std::string problem(const BudgetRow& row) {
  BudgetDefinition def;
  const auto error = build_definition(row, def);
  return error ? error->message : "";
}

BudgetRule rule(BudgetRow row) {
  if (row.name.empty()) row.name = "b";
  row.max_connections = 1;
  BudgetDefinition def;
  EXPECT_FALSE(build_definition(row, def).has_value());
  return def.rule;
}

LoginAttributes login(std::string_view app, std::string_view role, std::string_view db) {
  return LoginAttributes{app, role, db, {}, {}};
}

}  // namespace

TEST(BudgetRow, ValidRowBuildsDefinition) {
  BudgetRow row;
  row.name = "extraction";
  row.position = 3;
  row.application_name = "extraction%";
  row.role_name = "+workers";
  row.max_connections = 15;
  row.reserved = 2;
  row.on_full = "queue";
  row.queue_timeout_ms = 5000;
  row.max_queue = 32;
  row.priority = 7;
  row.mode = "monitor";
  BudgetDefinition def;
  ASSERT_FALSE(build_definition(row, def).has_value());
  EXPECT_EQ(def.name.view(), "extraction");
  EXPECT_EQ(def.position, 3);
  EXPECT_TRUE(def.rule.role_is_group);
  EXPECT_EQ(def.rule.role_name.view(), "workers");
  EXPECT_EQ(def.limits.max_connections, 15);
  EXPECT_EQ(def.limits.reserved, 2);
  EXPECT_EQ(def.limits.on_full, OnFull::Queue);
  EXPECT_EQ(def.limits.queue_timeout_ms, 5000);
  EXPECT_EQ(def.limits.max_queue, 32);
  EXPECT_EQ(def.limits.priority, 7);
  EXPECT_EQ(def.limits.mode, Mode::Monitor);
}

TEST(BudgetRow, NullQueueSettingsComeFromGucs) {
  BudgetRow row;
  row.name = "api";
  row.max_connections = 10;
  BudgetDefinition def;
  ASSERT_FALSE(build_definition(row, def).has_value());
  EXPECT_EQ(def.limits.queue_timeout_ms, BudgetLimits::kFromSetting);
  EXPECT_EQ(def.limits.max_queue, BudgetLimits::kFromSetting);
  EXPECT_FALSE(def.rule.has_application_name || def.rule.has_role || def.rule.has_database ||
               def.rule.has_client_addr);
}

TEST(BudgetRow, BadRowsSayWhatIsWrong) {
  BudgetRow row;
  row.name = "default";
  EXPECT_EQ(problem(row), "budget name \"default\" is reserved for the implicit budget");
  row.name = "exempt";
  EXPECT_EQ(problem(row), "budget name \"exempt\" is reserved for the implicit budget");
  row.name = "";
  EXPECT_EQ(problem(row), "budget name must not be empty");
  const std::string long_name(64, 'n');
  row.name = long_name;
  EXPECT_EQ(problem(row), "budget name \"" + long_name + "\" is longer than 63 bytes");

  row = BudgetRow{};
  row.name = "w";
  row.application_name = "oops\\";
  EXPECT_EQ(problem(row),
            "application_name pattern \"oops\\\" of budget \"w\" is invalid: LIKE pattern must not "
            "end with escape character");
  row.application_name.reset();
  row.role_name = "+";
  EXPECT_EQ(problem(row), "role_name of budget \"w\" must name a role, or \"+role\" for its members");
  row.role_name.reset();
  row.database_name = "";
  EXPECT_EQ(problem(row), "database_name of budget \"w\" must not be empty");
  row.database_name.reset();
  row.max_connections = -1;
  EXPECT_EQ(problem(row), "max_connections of budget \"w\" must be 0 or more, not -1");
  row.max_connections = 5;
  row.reserved = 6;
  EXPECT_EQ(problem(row), "reserved of budget \"w\" must be between 0 and its max_connections (5), not 6");
  row.reserved = 0;
  row.on_full = "wait";
  EXPECT_EQ(problem(row), "on_full of budget \"w\" must be \"reject\" or \"queue\", not \"wait\"");
  row.on_full = "reject";
  row.mode = "dry";
  EXPECT_EQ(problem(row), "mode of budget \"w\" must be \"enforce\" or \"monitor\", not \"dry\"");
  row.mode = "enforce";
  row.queue_timeout_ms = -1;
  EXPECT_EQ(problem(row), "queue_timeout of budget \"w\" must not be negative");
  row.queue_timeout_ms = 2147483648LL;
  EXPECT_EQ(problem(row), "queue_timeout of budget \"w\" must be at most 2147483647 ms (about 24 days)");
  row.queue_timeout_ms.reset();
  row.max_queue = -2;
  EXPECT_EQ(problem(row), "max_queue of budget \"w\" must be 0 or more, not -2");
  row.max_queue.reset();
  EXPECT_EQ(problem(row), "");
}

TEST(BudgetRule, EveryNonNullConditionMustHold) {
  BudgetRow row;
  row.application_name = "extraction%";
  row.database_name = "app";
  const BudgetRule r = rule(row);
  EXPECT_TRUE(r.matches(login("extraction_worker", "worker", "app")));
  EXPECT_FALSE(r.matches(login("extraction_worker", "worker", "other")));
  EXPECT_FALSE(r.matches(login("semantic_worker", "worker", "app")));
}

TEST(BudgetRule, NullConditionsMatchAnything) {
  const BudgetRule r = rule(BudgetRow{});
  EXPECT_TRUE(r.matches(login("", "anyone", "anydb")));
}

TEST(BudgetRule, RoleAndGroupMembership) {
  BudgetRow exact;
  exact.role_name = "worker";
  EXPECT_TRUE(rule(exact).matches(login("", "worker", "db")));
  EXPECT_FALSE(rule(exact).matches(login("", "worker2", "db")));

  BudgetRow group;
  group.role_name = "+workers";
  const BudgetRule r = rule(group);
  const std::string_view groups[] = {"staff", "workers"};
  LoginAttributes member = login("", "alice", "db");
  member.member_of = groups;
  EXPECT_TRUE(r.matches(member));
  EXPECT_TRUE(r.matches(login("", "workers", "db")));  // a role is a member of itself
  EXPECT_FALSE(r.matches(login("", "bob", "db")));
}

TEST(BudgetRule, ClientAddressRangeAndUnixSocket) {
  BudgetRow row;
  row.client_addr = AddressRange{ClientAddress{AddressFamily::IPv4, {10, 0, 0, 0}}, 8};
  const BudgetRule r = rule(row);
  LoginAttributes tcp = login("", "r", "d");
  tcp.client_addr = ClientAddress{AddressFamily::IPv4, {10, 2, 3, 4}};
  EXPECT_TRUE(r.matches(tcp));
  EXPECT_FALSE(r.matches(login("", "r", "d")));  // Unix socket
}
