// The history: a ring that keeps the newest rows oldest first, and rows whose gains add up
// to each budget's counters across samples, resets, budgets created or deleted, and
// budget slots reused by another budget.
#include "core/history.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

using namespace connbudget;

namespace {

class LedgerBlock {
 public:
  LedgerBlock(int max_budgets, int sessions)
      : memory_(Ledger::bytes_needed(max_budgets, sessions) / sizeof(std::max_align_t) + 1),
        ledger_(memory_.data(), max_budgets, sessions) {
    ledger_.initialize(1);
  }
  Ledger& ledger() { return ledger_; }

 private:
  std::vector<std::max_align_t> memory_;
  Ledger ledger_;
};

// A history with a baseline for every budget slot of `ledger`.
class HistoryBlock {
 public:
  HistoryBlock(int rows, const Ledger& ledger)
      : slots_(static_cast<int>(ledger.budgets().size())),
        memory_(History::bytes_needed(rows, slots_) / sizeof(std::max_align_t) + 1),
        history_(memory_.data(), rows, slots_) {
    history_.initialize(ledger);
  }
  History& history() { return history_; }

 private:
  int slots_;
  std::vector<std::max_align_t> memory_;
  History history_;
};

// A history whose ledger has `max_budgets` budgets, none used yet.
class Block {
 public:
  Block(int rows, int max_budgets) : ledger_(max_budgets, 1), history_(rows, ledger_.ledger()) {}
  History& history() { return history_.history(); }

 private:
  LedgerBlock ledger_;
  HistoryBlock history_;
};

HistoryRow row_at(std::int64_t time) {
  HistoryRow row;
  row.sampled_at_us = time;
  return row;
}

std::vector<std::int64_t> times_of(const History& history) {
  std::vector<std::int64_t> times;
  for (std::size_t i = 0; i < history.size(); ++i) times.push_back(history.at(i).sampled_at_us);
  std::vector<HistoryRow> copy(history.size());
  EXPECT_EQ(history.copy_to(copy), history.size());
  for (std::size_t i = 0; i < copy.size(); ++i) EXPECT_EQ(copy[i].sampled_at_us, times[i]) << "copy row " << i;
  return times;
}

BudgetReading reading(std::int32_t slot, std::string_view name, std::int64_t series_start,
                      HistoryCounts totals, std::int32_t active = 0, std::int32_t waiting = 0) {
  BudgetReading r;
  r.slot = slot;
  r.name.assign(name);
  r.series_start_us = series_start;
  r.totals = totals;
  r.active = active;
  r.waiting = waiting;
  return r;
}

CounterBaseline baseline(std::int64_t series_start, HistoryCounts totals) { return {true, series_start, totals}; }

}  // namespace

TEST(History, RowIs144Bytes) {
  // The figure docs/design.md gives for memory per row.
  EXPECT_EQ(sizeof(HistoryRow), 144u);
  EXPECT_EQ(sizeof(CounterBaseline), 72u);
}

TEST(History, KeepsRowsOldestFirstUntilFull) {
  Block block(4, 2);
  History& h = block.history();
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.capacity(), 4u);
  for (std::int64_t t = 1; t <= 3; ++t) h.push(row_at(t));
  EXPECT_EQ(times_of(h), (std::vector<std::int64_t>{1, 2, 3}));
  h.push(row_at(4));
  EXPECT_EQ(times_of(h), (std::vector<std::int64_t>{1, 2, 3, 4}));
}

TEST(History, WhenFullEachRowOverwritesTheOldest) {
  Block block(4, 2);
  History& h = block.history();
  for (std::int64_t t = 1; t <= 5; ++t) h.push(row_at(t));
  EXPECT_EQ(times_of(h), (std::vector<std::int64_t>{2, 3, 4, 5}));
  for (std::int64_t t = 6; t <= 11; ++t) h.push(row_at(t));  // wraps around more than once
  EXPECT_EQ(times_of(h), (std::vector<std::int64_t>{8, 9, 10, 11}));
  h.push(row_at(12));  // the write position is back at the start of the block
  EXPECT_EQ(times_of(h), (std::vector<std::int64_t>{9, 10, 11, 12}));
}

TEST(History, CopiesOnlyIntoRoomForEveryRow) {
  Block block(3, 2);
  History& h = block.history();
  for (std::int64_t t = 1; t <= 3; ++t) h.push(row_at(t));
  std::vector<HistoryRow> small(2, row_at(-1));
  EXPECT_EQ(h.copy_to(small), 3u);  // says how much room it needs
  EXPECT_EQ(small[0].sampled_at_us, -1);
  EXPECT_EQ(small[1].sampled_at_us, -1);
}

TEST(History, ARingOfNoRowsHoldsNothing) {
  Block block(0, 2);
  History& h = block.history();
  h.push(row_at(1));
  h.record(2, std::vector<BudgetReading>{reading(0, "default", 1, {1, 0, 0, 0, 0})});
  EXPECT_EQ(h.size(), 0u);
  std::vector<HistoryRow> none;
  EXPECT_EQ(h.copy_to(none), 0u);
}

TEST(CountsGained, ASeriesSeenForTheFirstTimeCountsItsTotals) {
  const HistoryCounts totals{7, 3, 2, 1, 1};
  EXPECT_EQ(counts_gained(CounterBaseline{}, reading(2, "api", 100, totals)), totals);
}

TEST(CountsGained, WithinASeriesTheDifference) {
  EXPECT_EQ(counts_gained(baseline(100, {7, 3, 2, 1, 1}), reading(2, "api", 100, {10, 3, 5, 2, 1})),
            (HistoryCounts{3, 0, 3, 1, 0}));
}

TEST(CountsGained, AfterAResetTheNewSeriesCountsFromZero) {
  // Reset, then more logins than before: the difference would report 2 where 9 happened.
  EXPECT_EQ(counts_gained(baseline(100, {7, 3, 0, 0, 0}), reading(2, "api", 500, {9, 1, 0, 0, 0})),
            (HistoryCounts{9, 1, 0, 0, 0}));
}

TEST(CountsGained, ACounterBelowItsBaselineReportsItsValueNeverANegativeGain) {
  EXPECT_EQ(counts_gained(baseline(100, {7, 3, 2, 1, 1}), reading(2, "api", 100, {2, 5, 0, 1, 1})),
            (HistoryCounts{2, 2, 0, 0, 0}));
}

TEST(History, RecordsOneRowPerBudgetWithWhatItGainedSinceItsPreviousRow) {
  Block block(16, 4);
  History& h = block.history();
  h.record(1000, std::vector<BudgetReading>{reading(2, "api", 10, {5, 1, 0, 0, 0}, 3, 0),
                                            reading(0, "default", 1, {2, 0, 0, 0, 0}, 1, 0)});
  h.record(2000, std::vector<BudgetReading>{reading(2, "api", 10, {8, 4, 0, 0, 0}, 4, 2),
                                            reading(0, "default", 1, {2, 0, 0, 0, 0}, 0, 0)});
  ASSERT_EQ(h.size(), 4u);
  const HistoryRow& first_api = h.at(0);
  EXPECT_EQ(first_api.sampled_at_us, 1000);
  EXPECT_EQ(first_api.budget.view(), "api");
  EXPECT_EQ(first_api.gained, (HistoryCounts{5, 1, 0, 0, 0}));  // the series so far
  EXPECT_EQ(first_api.active, 3);
  EXPECT_EQ(h.at(1).budget.view(), "default");
  const HistoryRow& second_api = h.at(2);
  EXPECT_EQ(second_api.sampled_at_us, 2000);
  EXPECT_EQ(second_api.gained, (HistoryCounts{3, 3, 0, 0, 0}));
  EXPECT_EQ(second_api.active, 4);
  EXPECT_EQ(second_api.waiting, 2);
  EXPECT_EQ(h.at(3).gained, HistoryCounts{});  // nothing happened to default
}

TEST(History, ASlotReusedByAnotherBudgetStartsItsOwnSeries) {
  Block block(16, 4);
  History& h = block.history();
  h.record(1000, std::vector<BudgetReading>{reading(2, "old", 10, {5, 0, 0, 0, 0})});
  h.record(2000, std::vector<BudgetReading>{reading(2, "new", 1500, {6, 0, 0, 0, 0})});
  EXPECT_EQ(h.at(1).budget.view(), "new");
  EXPECT_EQ(h.at(1).gained.admitted, 6);
}

TEST(History, BaselinesFollowEveryBudgetEvenWhenTheRingHoldsLessThanOneSample) {
  Block block(1, 4);
  History& h = block.history();
  h.record(1000, std::vector<BudgetReading>{reading(2, "a", 1, {1, 0, 0, 0, 0}), reading(3, "b", 1, {1, 0, 0, 0, 0})});
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h.at(0).budget.view(), "b");  // the sample's last row
  h.record(2000, std::vector<BudgetReading>{reading(2, "a", 1, {4, 0, 0, 0, 0}), reading(3, "b", 1, {1, 0, 0, 0, 0})});
  EXPECT_EQ(h.at(0).gained.admitted, 0);
  h.record(3000, std::vector<BudgetReading>{reading(3, "b", 1, {1, 0, 0, 0, 0}), reading(2, "a", 1, {4, 0, 0, 0, 0})});
  EXPECT_EQ(h.at(0).budget.view(), "a");
  EXPECT_EQ(h.at(0).gained.admitted, 0);  // a's baseline was kept although its row was not
}

TEST(History, ASlotBeyondTheBaselinesIsRecordedWithItsTotals) {
  Block block(4, 2);
  History& h = block.history();
  for (std::int64_t t = 1; t <= 2; ++t)
    h.record(t, std::vector<BudgetReading>{reading(7, "stray", 1, {3, 0, 0, 0, 0})});
  EXPECT_EQ(h.at(1).gained.admitted, 3);
}

// Against the real ledger: rows add up to the counters, and a reset starts a new series.
// A server with backends to spare: the history does not depend on the server's room.
struct PlentyFree : FreeBackends {
  bool at_least(std::int32_t) const noexcept override { return true; }
};

class HistoryOfLedgerTest : public ::testing::Test {
 protected:
  static constexpr int kMaxBudgets = 4;
  static constexpr int kSessions = 8;

  HistoryOfLedgerTest()
      : ledger_block_(kMaxBudgets, kSessions),
        ledger_(ledger_block_.ledger()),
        scratch_(Ledger::scratch_entries(kMaxBudgets, kSessions)),
        wakeup_buffer_(kSessions),
        readings_(kMaxBudgets + 2),
        history_(64, ledger_) {}

  void configure(std::vector<std::string> names) {
    std::vector<BudgetDefinition> definitions;
    for (const std::string& name : names) {
      BudgetRow row;
      row.name = name;
      row.application_name = name;
      row.max_connections = 1;
      BudgetDefinition definition;
      ASSERT_FALSE(build_definition(row, definition).has_value());
      definitions.push_back(definition);
    }
    Wakeups wakeups(wakeup_buffer_);
    ledger_.reconfigure(definitions, Policy{}, scratch_, ++now_, wakeups);
  }

  // Logs in and out once (admitted), or is refused while another session holds the slot.
  void login(std::string_view app) {
    Wakeups wakeups(wakeup_buffer_);
    const LoginAttributes attributes{app, "role", "db", {}, {}};
    ledger_.admit(0, ledger_.classify(attributes, false), attributes, 100, Policy{}, PlentyFree{}, ++now_, wakeups);
    ledger_.release(0, ++now_, wakeups);
  }
  void refused_login(std::string_view app) {
    Wakeups wakeups(wakeup_buffer_);
    const LoginAttributes attributes{app, "role", "db", {}, {}};
    ledger_.admit(1, ledger_.classify(attributes, false), attributes, 101, Policy{}, PlentyFree{}, ++now_, wakeups);
    EXPECT_EQ(ledger_.admit(2, ledger_.classify(attributes, false), attributes, 102, Policy{}, PlentyFree{}, ++now_, wakeups).verdict,
              Verdict::Refuse);
    ledger_.release(1, ++now_, wakeups);
  }

  void sample() {
    const std::size_t count = read_budgets(ledger_, readings_);
    history_.history().record(++now_, std::span(readings_).first(count));
  }

  // The budgets of the newest sample and the sum of each budget's gains over all rows.
  std::vector<std::string> newest_sample() {
    const History& h = history_.history();
    std::vector<std::string> names;
    const std::int64_t newest = h.at(h.size() - 1).sampled_at_us;
    for (std::size_t i = 0; i < h.size(); ++i)
      if (h.at(i).sampled_at_us == newest) names.emplace_back(h.at(i).budget.view());
    return names;
  }
  std::int64_t admitted_in_rows(std::string_view name, std::int64_t since = 0) {
    const History& h = history_.history();
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < h.size(); ++i)
      if (h.at(i).budget.view() == name && h.at(i).sampled_at_us >= since) sum += h.at(i).gained.admitted;
    return sum;
  }
  const BudgetCounters& counters(std::string_view name) { return ledger_.budgets()[ledger_.find(name)].counters; }

  std::int64_t now_ = 1;
  LedgerBlock ledger_block_;
  Ledger& ledger_;
  std::vector<std::int32_t> scratch_;
  std::vector<std::int32_t> wakeup_buffer_;
  std::vector<BudgetReading> readings_;
  HistoryBlock history_;
};

TEST_F(HistoryOfLedgerTest, ReadsBudgetsInStatusOrder) {
  configure({"b", "a"});  // match order is the order the loader gives
  sample();
  EXPECT_EQ(newest_sample(), (std::vector<std::string>{"b", "a", "default", "exempt"}));
  std::vector<BudgetReading> two(2);
  EXPECT_EQ(read_budgets(ledger_, two), 2u);  // never beyond the room it is given
}

TEST_F(HistoryOfLedgerTest, RowsAddUpToTheCounters) {
  configure({"api"});
  login("api");
  login("other");  // default
  sample();
  login("api");
  refused_login("api");
  sample();
  sample();
  EXPECT_EQ(admitted_in_rows("api"), counters("api").admitted);
  EXPECT_EQ(counters("api").admitted, 3);
  EXPECT_EQ(admitted_in_rows("default"), counters("default").admitted);
}

TEST_F(HistoryOfLedgerTest, CountersTheHistoryStartsWithAreBaselinesNotGains) {
  // As after a restart that restored the counters from disk: counted before the history.
  configure({"api"});
  login("api");
  login("other");
  history_.history().initialize(ledger_);
  sample();
  EXPECT_EQ(admitted_in_rows("api"), 0);
  EXPECT_EQ(admitted_in_rows("default"), 0);
  login("api");
  sample();
  EXPECT_EQ(admitted_in_rows("api"), 1);
}

TEST_F(HistoryOfLedgerTest, AResetStartsANewSeriesWithoutNegativeGains) {
  configure({"api"});
  login("api");
  sample();
  ASSERT_TRUE(ledger_.reset_stats("api", ++now_));
  for (int i = 0; i < 3; ++i) login("api");  // more than before the reset
  const std::int64_t after_reset = now_;
  sample();
  const History& h = history_.history();
  for (std::size_t i = 0; i < h.size(); ++i) EXPECT_GE(h.at(i).gained.admitted, 0);
  EXPECT_EQ(admitted_in_rows("api", after_reset), 3);
  EXPECT_EQ(admitted_in_rows("api", after_reset), counters("api").admitted);
}

TEST_F(HistoryOfLedgerTest, ABudgetDeletedAndCreatedAgainStartsANewSeries) {
  configure({"api"});
  login("api");
  login("api");
  sample();
  configure({});
  configure({"api"});
  login("api");
  const std::int64_t recreated = now_;
  sample();
  EXPECT_EQ(admitted_in_rows("api", recreated), 1);
}
