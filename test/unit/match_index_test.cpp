// The match index against a scan of every rule: random budgets (application_name patterns
// and exact names, roles and "+groups", databases, address ranges, entitlements) and
// random logins, thousands of cases; every classification must agree.
#include <gtest/gtest.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include "core/ledger.hpp"
#include "ledger_fixture.hpp"

using namespace connbudget;
using connbudget::testing_support::budget;

namespace {

constexpr int kMaxBudgets = 200;
constexpr int kSessions = 4;

class MatchIndexTest : public ::testing::Test {
 protected:
  MatchIndexTest()
      : block_(Ledger::bytes_needed(kMaxBudgets, kSessions) / sizeof(std::max_align_t) + 1),
        scratch_(Ledger::scratch_entries(kMaxBudgets, kSessions)),
        buffer_(kSessions),
        ledger_(block_.data(), kMaxBudgets, kSessions) {
    ledger_.initialize(1);
  }

  void load(const std::vector<BudgetDefinition>& definitions) {
    std::vector<MatchIndex::BuildEntry> entries(definitions.size());
    const Ledger::PreparedIndex index = ledger_.prepare_index(definitions, entries);
    ASSERT_TRUE(index.built);
    Wakeups wakeups(buffer_);
    const ReconfigureResult result = ledger_.reconfigure(definitions, Policy{}, scratch_, ++now_, wakeups);
    ASSERT_NE(result.status, ReconfigureResult::Status::DuplicateName);
    ASSERT_NE(result.status, ReconfigureResult::Status::TooManyBudgets);
    ledger_.publish_index(index, definitions);
    ASSERT_EQ(ledger_.index_summary().rules, static_cast<std::int32_t>(definitions.size()));
  }

  // True if the index and the scan agree on the login.
  ::testing::AssertionResult agree(const LoginAttributes& login) const {
    const Classification indexed = ledger_.classify(login, false);
    const Classification scanned = ledger_.classify_by_scan(login, false);
    if (indexed.budget == scanned.budget && indexed.mismatched == scanned.mismatched)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "application_name \"" << login.application_name << "\" role "
                                         << login.role_name << " database " << login.database_name << ": index "
                                         << indexed.budget << "/" << indexed.mismatched << ", scan " << scanned.budget
                                         << "/" << scanned.mismatched;
  }

  std::vector<std::max_align_t> block_;
  std::vector<std::int32_t> scratch_;
  std::vector<std::int32_t> buffer_;
  Ledger ledger_;
  std::int64_t now_ = 1;
};

std::string random_text(std::mt19937& rng, std::string_view alphabet, std::size_t max_length) {
  std::string text(rng() % (max_length + 1), ' ');
  for (char& c : text) c = alphabet[rng() % alphabet.size()];
  return text;
}

ClientAddress random_address(std::mt19937& rng) {
  ClientAddress address;
  address.family = rng() % 4 == 0 ? AddressFamily::IPv6 : AddressFamily::IPv4;
  for (int i = 0; i < ClientAddress::byte_length(address.family); ++i)
    address.bytes[i] = static_cast<std::uint8_t>(i < 2 ? 10 : rng() % 3);
  return address;
}

std::vector<BudgetDefinition> random_budgets(std::mt19937& rng, int count) {
  static constexpr std::string_view kRoles[] = {"r1", "r2", "r3", "+r1", "+g1", "+g2"};
  static constexpr std::string_view kDatabases[] = {"d1", "d2", "d3"};
  std::vector<BudgetDefinition> definitions;
  for (int i = 0; definitions.size() < static_cast<std::size_t>(count) && i < 10 * count; ++i) {
    BudgetRow row;
    const std::string name = "b" + std::to_string(i);
    row.name = name;
    row.position = i;
    row.max_connections = 5;
    std::string pattern;
    if (rng() % 10 < 7) {
      pattern = rng() % 3 == 0 ? random_text(rng, "abx", 5) : random_text(rng, "abx_%\\", 6);
      // Now and then a head around the 56 bytes the index files by shape.
      if (rng() % 8 == 0) pattern = std::string(50 + rng() % 10, 'a') + random_text(rng, "a_%\\", 3);
      row.application_name = pattern;
    }
    if (rng() % 10 < 4) row.role_name = kRoles[rng() % std::size(kRoles)];
    if (rng() % 10 < 3) row.database_name = kDatabases[rng() % std::size(kDatabases)];
    if (rng() % 10 < 2) {
      const ClientAddress network = random_address(rng);
      const unsigned bits = network.family == AddressFamily::IPv4 ? 33 : 129;
      row.client_addr = AddressRange{network, static_cast<std::uint8_t>(rng() % bits)};
    }
    BudgetDefinition definition;
    if (!build_definition(row, definition)) definitions.push_back(definition);
  }
  return definitions;
}

LoginAttributes random_login(std::mt19937& rng, std::vector<std::string_view>& groups, std::string& name) {
  static constexpr std::string_view kRoles[] = {"r1", "r2", "r3", "r4", "g1"};
  static constexpr std::string_view kDatabases[] = {"d1", "d2", "d3", "d4"};
  static constexpr std::string_view kGroups[] = {"r1", "g1", "g2", "g3"};
  name = rng() % 8 == 0 ? std::string(48 + rng() % 16, 'a') + random_text(rng, "ab_", 3) : random_text(rng, "abx_%\\", 6);
  if (rng() % 20 == 0) name += "\xc3\xa9";  // not ASCII: the index does not answer, the scan does
  groups.clear();
  for (const std::string_view group : kGroups)
    if (rng() % 3 == 0) groups.push_back(group);
  LoginAttributes login{name, kRoles[rng() % std::size(kRoles)], kDatabases[rng() % std::size(kDatabases)], {}, groups};
  if (rng() % 2) login.client_addr = random_address(rng);
  return login;
}

}  // namespace

TEST_F(MatchIndexTest, AgreesWithTheScanOnRandomBudgetsAndLogins) {
  std::mt19937 rng(20261202);
  std::vector<std::string_view> groups;
  std::string name;
  int cases = 0;
  std::array<int, 2> configurations_by_layout{};  // [0]: lists in the table, [1]: compact
  for (int configuration = 0; configuration < 300; ++configuration) {
    // Every other one small enough that its index may be compact.
    const int most = configuration % 2 ? 48 : kMaxBudgets;
    load(random_budgets(rng, 1 + static_cast<int>(rng() % static_cast<unsigned>(most))));
    ++configurations_by_layout[ledger_.index_summary().compact];
    for (int i = 0; i < 40; ++i, ++cases) ASSERT_TRUE(agree(random_login(rng, groups, name)));
  }
  EXPECT_EQ(cases, 12000);
  // Both layouts were tried, many times each.
  EXPECT_GE(configurations_by_layout[0], 50);
  EXPECT_GE(configurations_by_layout[1], 50);
}

TEST_F(MatchIndexTest, AFewRulesKeepTheirListsInTheHeaderAndTheLastOneHoldsThem) {
  // The largest index that fits the header (4 KB of filter room at 200 budgets: 32 rules,
  // 64 buckets of 32 bytes) is compact; one more rule needs twice the buckets and the table.
  for (const int count : {1, 32, 33}) {
    std::vector<BudgetDefinition> definitions;
    for (int i = 0; i < count; ++i) definitions.push_back(budget("b" + std::to_string(i), "svc" + std::to_string(i), 1));
    load(definitions);
    EXPECT_EQ(ledger_.index_summary().compact, count <= 32) << count;
    const std::string last = "svc" + std::to_string(count - 1), beyond = "svc" + std::to_string(count);
    EXPECT_EQ(ledger_.classify(LoginAttributes{last, "r", "d", {}, {}}, false).budget,
              ledger_.find("b" + std::to_string(count - 1)))
        << count;
    EXPECT_EQ(ledger_.classify(LoginAttributes{beyond, "r", "d", {}, {}}, false).budget, kDefaultBudget);
  }
  // And back to the table and to compact again: each load replaces the live index whole.
  load({budget("alpha", "alpha", 1)});
  EXPECT_TRUE(ledger_.index_summary().compact);
  EXPECT_EQ(ledger_.classify(LoginAttributes{"svc0", "r", "d", {}, {}}, false).budget, kDefaultBudget);
  EXPECT_EQ(ledger_.classify(LoginAttributes{"alpha", "r", "d", {}, {}}, false).budget, ledger_.find("alpha"));
}

TEST_F(MatchIndexTest, FindsTheLastOfManyPatternsThroughFewShapes) {
  std::vector<BudgetDefinition> definitions;
  for (int i = 0; i < kMaxBudgets; ++i)
    definitions.push_back(budget("tenant" + std::to_string(i), "app_" + std::to_string(i) + "-%", 1));
  load(definitions);
  const LoginAttributes login{"app_199-worker", "role", "db", {}, {}};
  EXPECT_EQ(ledger_.classify(login, false).budget, ledger_.find("tenant199"));
  EXPECT_TRUE(agree(login));
  const MatchIndex::Summary summary = ledger_.index_summary();
  EXPECT_EQ(summary.name_shapes, 3);  // app_N-, app_NN-, app_NNN-
  EXPECT_EQ(summary.unindexed, 0);
}

TEST_F(MatchIndexTest, TooManyShapesOrGroupsStillAgree) {
  // More head shapes than are indexed, rules no key indexes, and a login of more groups
  // than the candidate lists a login may visit.
  std::vector<BudgetDefinition> definitions;
  std::vector<std::string> texts;
  texts.reserve(kMaxBudgets * 2);
  for (int i = 0; i < 120; ++i) {
    BudgetRow row;
    texts.push_back("s" + std::to_string(i));
    row.name = texts.back();
    texts.push_back(std::string(static_cast<std::size_t>(i % 50), '_') + "z" + (i % 2 ? "%" : ""));
    row.application_name = texts.back();
    row.max_connections = 1;
    if (i % 7 == 0) {
      texts.push_back("+grp" + std::to_string(i));
      row.role_name = texts.back();
      row.application_name = std::nullopt;
    }
    BudgetDefinition definition;
    ASSERT_FALSE(build_definition(row, definition).has_value());
    definitions.push_back(definition);
  }
  load(definitions);
  EXPECT_EQ(ledger_.index_summary().name_shapes, static_cast<std::int32_t>(MatchIndex::kMaxNameShapes));
  std::vector<std::string> group_names;
  for (int i = 0; i < 120; i += 7) group_names.push_back("grp" + std::to_string(i));
  std::vector<std::string_view> many(group_names.begin(), group_names.end());
  for (int length = 0; length < 52; ++length) {
    const std::string app = std::string(static_cast<std::size_t>(length), 'q') + "z";
    EXPECT_TRUE(agree(LoginAttributes{app, "r", "d", {}, {}}));
    EXPECT_TRUE(agree(LoginAttributes{app + "tail", "r", "d", {}, many}));
  }
}

TEST_F(MatchIndexTest, OnlyAnIndexBuiltFromTheAppliedDefinitionsGoesLive) {
  load({budget("alpha", "alpha", 1)});
  const std::vector<BudgetDefinition> beta{budget("beta", "beta", 1)}, gamma{budget("gamma", "gamma", 1)};
  std::vector<MatchIndex::BuildEntry> entries(1);
  const Ledger::PreparedIndex for_beta = ledger_.prepare_index(beta, entries);
  Wakeups wakeups(buffer_);
  // gamma applied with the index prepared for beta (same size): not published, logins scan.
  ledger_.reconfigure(gamma, Policy{}, scratch_, ++now_, wakeups);
  EXPECT_EQ(ledger_.index_summary().rules, 0);
  ledger_.publish_index(for_beta, gamma);
  EXPECT_EQ(ledger_.index_summary().rules, 0);
  EXPECT_EQ(ledger_.classify(LoginAttributes{"gamma", "r", "d", {}, {}}, false).budget, ledger_.find("gamma"));
  // Prepared for gamma, then the spare built again for beta: the first one is gone.
  const Ledger::PreparedIndex for_gamma = ledger_.prepare_index(gamma, entries);
  ledger_.prepare_index(beta, entries);
  ledger_.publish_index(for_gamma, gamma);
  EXPECT_EQ(ledger_.index_summary().rules, 0);
  // Prepared for gamma and published with it: live.
  ledger_.publish_index(ledger_.prepare_index(gamma, entries), gamma);
  EXPECT_EQ(ledger_.index_summary().rules, 1);
  EXPECT_TRUE(agree(LoginAttributes{"gamma", "r", "d", {}, {}}));
}

TEST(MatchIndexScaleTest, AgreesWhenTheFilterHoldsMoreKeysThanItHasBitsForThree) {
  // 50,000 keys in the 16 KB filter: one bit per key (three would pass more absent keys).
  constexpr int kBudgets = 50'000;
  std::vector<std::max_align_t> block(Ledger::bytes_needed(kBudgets, 1) / sizeof(std::max_align_t) + 1);
  std::vector<std::int32_t> scratch(Ledger::scratch_entries(kBudgets, 1)), buffer(1);
  Ledger ledger(block.data(), kBudgets, 1);
  ledger.initialize(1);
  std::vector<BudgetDefinition> definitions;
  for (int i = 0; i < kBudgets; ++i)
    definitions.push_back(budget("b" + std::to_string(i), (i % 2 ? "svc" : "app_") + std::to_string(i) + (i % 2 ? "" : "-%"), 1));
  std::vector<MatchIndex::BuildEntry> entries(definitions.size());
  const Ledger::PreparedIndex index = ledger.prepare_index(definitions, entries);
  ASSERT_TRUE(index.built);
  Wakeups wakeups(buffer);
  ledger.reconfigure(definitions, Policy{}, scratch, 2, wakeups);
  ledger.publish_index(index, definitions);
  ASSERT_EQ(ledger.index_summary().rules, kBudgets);
  std::mt19937 rng(50000);
  for (int i = 0; i < 2000; ++i) {
    const int n = static_cast<int>(rng() % (2 * kBudgets));  // half of them match no budget
    const std::string name = (n % 2 ? "svc" : "app_") + std::to_string(n) + (n % 2 ? "" : "-worker");
    const LoginAttributes login{name, "r", "d", {}, {}};
    const Classification indexed = ledger.classify(login, false);
    ASSERT_EQ(indexed.budget, n < kBudgets ? ledger.find("b" + std::to_string(n)) : kDefaultBudget) << name;
    if (i < 100) {
      ASSERT_EQ(indexed.budget, ledger.classify_by_scan(login, false).budget) << name;
    }
  }
}
