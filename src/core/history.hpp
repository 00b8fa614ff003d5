// The history: samples of every budget taken at intervals, kept in a fixed ring that
// overwrites its oldest row, ready to chart. It lives in one block it carves itself
// (header, one counter baseline per ledger budget slot, the rows), holds no heap pointers,
// and never allocates or blocks; the caller locks (one writer, the sampler; readers copy).
//
// A row is one budget at one sample: its active and waiting counts and what its counters
// gained since its previous row. A budget's counters form a series that starts when its
// counters start counting (server start, the budget's creation, reset_stats()); the
// series is named by the ledger slot and that start time. The history starts from the
// counters as they are when shared memory is created (zero, or restored from disk): those
// are its first baselines, not gains. A series that starts later is counted whole by its
// first row: everything it holds happened since the sampler's previous sample, which saw
// every live series. So a budget's rows add up to what its counters gained since the
// server started (or since they last started counting), for as long as the ring keeps them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/budget.hpp"
#include "core/fixed_string.hpp"
#include "core/ledger.hpp"

namespace connbudget {

// The counters a row reports, as totals of a series or as a row's gain.
struct HistoryCounts {
  std::int64_t admitted = 0;
  std::int64_t rejected = 0;
  std::int64_t queued = 0;
  std::int64_t timed_out = 0;
  std::int64_t abandoned = 0;
  std::int64_t reclaimed = 0;
  std::int64_t mismatched = 0;

  friend bool operator==(const HistoryCounts&, const HistoryCounts&) noexcept = default;
};

// One budget as the sampler read it from the ledger.
struct BudgetReading {
  std::int32_t slot = kNoBudget;  // its ledger slot
  FixedString<kNameMax> name;
  std::int32_t max_connections = BudgetLimits::kUnlimited;
  std::int32_t active = 0;
  std::int32_t waiting = 0;
  std::int64_t series_start_us = 0;  // when its counters started (BudgetCounters::stats_reset_us)
  HistoryCounts totals;
};

// A budget slot's totals at the previous sample.
struct CounterBaseline {
  bool seen = false;
  std::int64_t series_start_us = 0;
  HistoryCounts totals;
};

// One row of the history (144 bytes).
struct HistoryRow {
  std::int64_t sampled_at_us = 0;
  HistoryCounts gained;  // since the previous row of the same series
  std::int32_t max_connections = BudgetLimits::kUnlimited;
  std::int32_t active = 0;
  std::int32_t waiting = 0;
  FixedString<kNameMax> budget;
};

// What a budget's counters gained since the previous sample: the difference from the
// baseline if it holds the same series, else the reading's totals (a new series). A
// counter below its baseline (which only a reset can cause) reports its value.
HistoryCounts counts_gained(const CounterBaseline& previous, const BudgetReading& now) noexcept;

// Reads every live budget in the order connbudget.status shows them (match order, then
// default and exempt) into `out`; returns how many (never more than out.size()). The
// caller holds the ledger's lock, shared at least; max_budgets + 2 entries always suffice.
std::size_t read_budgets(const Ledger& ledger, std::span<BudgetReading> out) noexcept;

class History {
 public:
  static std::size_t bytes_needed(std::int32_t rows, std::int32_t budget_slots) noexcept;

  // Views a block of bytes_needed() bytes (budget_slots: the ledger's budgets().size());
  // initialize() it once, when the block is new.
  History(void* block, std::int32_t rows, std::int32_t budget_slots) noexcept;
  // Empties the ring and takes the counters of every budget slot of `ledger` as they are
  // now as the baselines of the first sample.
  void initialize(const Ledger& ledger) noexcept;

  // Adds one row per reading, taken at sampled_at_us, and makes the readings the
  // baselines of the next sample. Budgets beyond the ring's capacity push out their own
  // sample's first rows.
  void record(std::int64_t sampled_at_us, std::span<const BudgetReading> readings) noexcept;

  // Adds a row, overwriting the oldest when the ring is full.
  void push(const HistoryRow& row) noexcept;

  std::size_t size() const noexcept;
  std::size_t capacity() const noexcept { return rows_.size(); }
  // The i-th oldest row (0 <= i < size()).
  const HistoryRow& at(std::size_t i) const noexcept;
  // Copies the rows, oldest first, if `out` has room for size() of them; returns size().
  std::size_t copy_to(std::span<HistoryRow> out) const noexcept;

 private:
  struct Header {
    std::uint64_t pushed = 0;  // rows ever pushed; the next goes to pushed % capacity
  };

  std::size_t oldest() const noexcept;  // index of the oldest row

  Header* header_;
  std::span<CounterBaseline> baselines_;  // indexed by ledger budget slot
  std::span<HistoryRow> rows_;
};

}  // namespace connbudget
