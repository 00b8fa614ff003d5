// The history ring and its counter baselines (see history.hpp).
#include "core/history.hpp"

#include <algorithm>
#include <new>

#include "core/core_only.hpp"

namespace connbudget {
namespace {

constexpr std::size_t kAlign = alignof(std::max_align_t);

constexpr std::size_t aligned(std::size_t n) noexcept { return (n + kAlign - 1) / kAlign * kAlign; }

constexpr CounterBaseline kUnseen{};

std::int64_t gain(std::int64_t previous, std::int64_t now) noexcept { return now >= previous ? now - previous : now; }

BudgetReading reading_of(std::int32_t slot, const BudgetState& budget) noexcept {
  const BudgetCounters& c = budget.counters;
  BudgetReading reading;
  reading.slot = slot;
  reading.name = budget.definition.name;
  reading.max_connections = budget.definition.limits.max_connections;
  reading.active = budget.active;
  reading.waiting = budget.waiting;
  reading.series_start_us = c.stats_reset_us;
  reading.totals = {c.admitted, c.rejected(), c.queued, c.timed_out, c.abandoned, c.reclaimed, c.mismatched};
  return reading;
}

CounterBaseline baseline_of(const BudgetReading& reading) noexcept {
  return {true, reading.series_start_us, reading.totals};
}

}  // namespace

HistoryCounts counts_gained(const CounterBaseline& previous, const BudgetReading& now) noexcept {
  if (!previous.seen || previous.series_start_us != now.series_start_us) return now.totals;
  const HistoryCounts& p = previous.totals;
  const HistoryCounts& n = now.totals;
  return {gain(p.admitted, n.admitted), gain(p.rejected, n.rejected), gain(p.queued, n.queued),
          gain(p.timed_out, n.timed_out), gain(p.abandoned, n.abandoned), gain(p.reclaimed, n.reclaimed),
          gain(p.mismatched, n.mismatched)};
}

std::size_t read_budgets(const Ledger& ledger, std::span<BudgetReading> out) noexcept {
  std::size_t count = 0;
  ledger.visit_in_status_order([&](std::int32_t slot) {
    if (count < out.size()) out[count++] = reading_of(slot, ledger.budgets()[slot]);
  });
  return count;
}

std::size_t History::bytes_needed(std::int32_t rows, std::int32_t budget_slots) noexcept {
  return aligned(sizeof(Header)) + aligned(static_cast<std::size_t>(budget_slots) * sizeof(CounterBaseline)) +
         aligned(static_cast<std::size_t>(rows) * sizeof(HistoryRow));
}

History::History(void* block, std::int32_t rows, std::int32_t budget_slots) noexcept {
  auto* bytes = static_cast<unsigned char*>(block);
  header_ = reinterpret_cast<Header*>(bytes);
  bytes += aligned(sizeof(Header));
  baselines_ = {reinterpret_cast<CounterBaseline*>(bytes), static_cast<std::size_t>(budget_slots)};
  bytes += aligned(baselines_.size_bytes());
  rows_ = {reinterpret_cast<HistoryRow*>(bytes), static_cast<std::size_t>(rows)};
}

void History::initialize(const Ledger& ledger) noexcept {
  new (header_) Header();
  for (CounterBaseline& baseline : baselines_) new (&baseline) CounterBaseline();
  for (HistoryRow& row : rows_) new (&row) HistoryRow();
  const std::size_t slots = std::min(baselines_.size(), ledger.budgets().size());
  for (std::size_t slot = 0; slot < slots; ++slot)
    baselines_[slot] = baseline_of(reading_of(static_cast<std::int32_t>(slot), ledger.budgets()[slot]));
}

void History::record(std::int64_t sampled_at_us, std::span<const BudgetReading> readings) noexcept {
  for (const BudgetReading& reading : readings) {
    const bool tracked = reading.slot >= 0 && static_cast<std::size_t>(reading.slot) < baselines_.size();
    const CounterBaseline& previous = tracked ? baselines_[reading.slot] : kUnseen;
    HistoryRow row;
    row.sampled_at_us = sampled_at_us;
    row.gained = counts_gained(previous, reading);
    row.max_connections = reading.max_connections;
    row.active = reading.active;
    row.waiting = reading.waiting;
    row.budget = reading.name;
    push(row);
    if (tracked) baselines_[reading.slot] = baseline_of(reading);
  }
}

void History::push(const HistoryRow& row) noexcept {
  if (rows_.empty()) return;
  rows_[header_->pushed % rows_.size()] = row;
  ++header_->pushed;
}

std::size_t History::size() const noexcept {
  return static_cast<std::size_t>(std::min<std::uint64_t>(header_->pushed, rows_.size()));
}

std::size_t History::oldest() const noexcept {
  return header_->pushed < rows_.size() ? 0 : static_cast<std::size_t>(header_->pushed % rows_.size());
}

const HistoryRow& History::at(std::size_t i) const noexcept { return rows_[(oldest() + i) % rows_.size()]; }

std::size_t History::copy_to(std::span<HistoryRow> out) const noexcept {
  const std::size_t count = size();
  if (out.size() < count) return count;
  if (count == 0) return 0;
  const std::size_t first = oldest();
  const auto tail = std::copy(rows_.begin() + first, rows_.begin() + count, out.begin());
  std::copy(rows_.begin(), rows_.begin() + first, tail);
  return count;
}

}  // namespace connbudget
