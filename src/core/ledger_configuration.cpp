// Configuration changes of the ledger (see ledger.hpp): reconfigure() from a loaded
// configuration, counters restored at start or reset, pauses.
#include "core/ledger.hpp"

#include <algorithm>
#include <limits>

#include "core/core_only.hpp"

namespace connbudget {
namespace {

std::size_t hash_table_size(std::int32_t max_budgets) noexcept {
  std::size_t size = 16;
  while (size < 2 * static_cast<std::size_t>(max_budgets)) size *= 2;
  return size;
}

std::uint32_t name_hash(std::string_view name) noexcept {  // FNV-1a
  std::uint32_t h = 2166136261u;
  for (const char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// Marks reconfigure() puts on budget slots.
enum SlotMark : std::int32_t { kUntouched = 0, kKept = 1, kNew = 2 };

}  // namespace

std::size_t Ledger::scratch_entries(std::int32_t max_budgets, std::int32_t max_sessions) noexcept {
  return static_cast<std::size_t>(max_budgets) + 2 * budget_slots(max_budgets) +
         hash_table_size(max_budgets) + static_cast<std::size_t>(max_sessions);
}

std::size_t Ledger::table_size() const noexcept {
  return hash_table_size(static_cast<std::int32_t>(match_order_.size()));
}

ReconfigureResult Ledger::reconfigure(std::span<const BudgetDefinition> definitions,
                                      const Policy& policy, std::span<std::int32_t> scratch,
                                      std::int64_t now_us, Wakeups& wakeups) noexcept {
  using Status = ReconfigureResult::Status;
  ReconfigureResult result;
  const std::size_t count = definitions.size();
  if (count > match_order_.size() ||
      scratch.size() < scratch_entries(static_cast<std::int32_t>(match_order_.size()),
                                       static_cast<std::int32_t>(sessions_.size()))) {
    result.status = Status::TooManyBudgets;
    return result;
  }
  const std::span<std::int32_t> slot_of = scratch.first(match_order_.size());
  const std::span<std::int32_t> mark = scratch.subspan(slot_of.size(), budgets_.size());
  const std::span<std::int32_t> expected = scratch.subspan(slot_of.size() + mark.size(), budgets_.size());
  const std::span<std::int32_t> table = scratch.subspan(slot_of.size() + 2 * budgets_.size(), table_size());
  const std::span<std::int32_t> waiters = scratch.subspan(slot_of.size() + 2 * budgets_.size() + table.size(), sessions_.size());
  const std::size_t mask = table.size() - 1;
  std::ranges::fill(slot_of, kNoBudget);
  std::ranges::fill(mark, kUntouched);
  std::ranges::fill(table, kNoBudget);

  // Plan, touching only scratch: index the new definitions by name, keep the slots of
  // budgets that stay, and give each new budget a slot nobody keeps.
  for (std::size_t i = 0; i < count; ++i) {
    const std::string_view name = definitions[i].name.view();
    std::size_t pos = name_hash(name) & mask;
    for (; table[pos] != kNoBudget; pos = (pos + 1) & mask) {
      if (definitions[table[pos]].name.view() == name) {
        result.status = Status::DuplicateName;
        result.duplicate = name;
        return result;
      }
    }
    table[pos] = static_cast<std::int32_t>(i);
  }
  for (std::size_t slot = kFirstConfiguredBudget; slot < budgets_.size(); ++slot) {
    if (!budgets_[slot].configured && !budgets_[slot].restored) continue;
    const std::string_view name = budgets_[slot].definition.name.view();
    for (std::size_t pos = name_hash(name) & mask; table[pos] != kNoBudget; pos = (pos + 1) & mask) {
      if (definitions[table[pos]].name.view() == name) {
        if (slot_of[table[pos]] != kNoBudget) break;  // never two slots for one budget
        slot_of[table[pos]] = static_cast<std::int32_t>(slot);
        mark[slot] = kKept;
        break;
      }
    }
  }
  std::size_t free_slot = kFirstConfiguredBudget;
  for (std::size_t i = 0; i < count; ++i) {
    if (slot_of[i] != kNoBudget) continue;
    while (mark[free_slot] != kUntouched) ++free_slot;  // count <= max_budgets: one exists
    slot_of[i] = static_cast<std::int32_t>(free_slot);
    mark[free_slot] = kNew;
  }

  // Apply.
  bool changed = static_cast<std::int32_t>(count) != header_->configured_count;
  for (std::size_t i = 0; i < count; ++i)
    changed = changed || slot_of[i] != match_order_[i] || mark[slot_of[i]] == kNew ||
              !(budgets_[slot_of[i]].definition == definitions[i]);
  for (std::size_t slot = 0; slot < budgets_.size(); ++slot) expected[slot] = budgets_[slot].active;
  for (std::size_t slot = kFirstConfiguredBudget; slot < budgets_.size(); ++slot) {
    if (mark[slot] == kUntouched) {
      budgets_[slot].configured = budgets_[slot].restored = false;
      budgets_[slot].reserved = 0;
    }
    if (mark[slot] != kNew) continue;
    budgets_[slot] = BudgetState();
    budgets_[slot].configured = true;
    budgets_[slot].counters.stats_reset_us = now_us;
  }
  bool uses_role_groups = false;
  for (std::size_t i = 0; i < count; ++i) {
    budgets_[slot_of[i]].definition = definitions[i];
    budgets_[slot_of[i]].configured = true;
    budgets_[slot_of[i]].restored = false;
    match_order_[i] = slot_of[i];
    uses_role_groups = uses_role_groups || definitions[i].rule.role_is_group;
  }

  // Recount from the session slots, moving sessions and waiters of deleted budgets to
  // default, and rebuild every queue in arrival order.
  for (BudgetState& budget : budgets_) {
    budget.active = budget.waiting = budget.reclaiming = 0;
    budget.queue_head = budget.queue_tail = kNoSession;
    budget.next_waiting = budget.prev_waiting = kNoBudget;
  }
  header_->waiting_budgets = kNoBudget;
  adopt(policy);
  // Reservations in match order, as far as the capacity goes.
  std::int32_t promised = 0;
  for (std::size_t i = 0; i < count; ++i) {
    BudgetState& budget = budgets_[slot_of[i]];
    budget.reserved = std::clamp(header_->capacity - promised, 0, budget.definition.limits.reserved);
    promised += budget.reserved;
    result.reservation_shortfall += budget.definition.limits.reserved - budget.reserved;
  }
  header_->configured_count = static_cast<std::int32_t>(count);
  header_->occupied = header_->sessions = header_->waiting = header_->displaced = 0;
  std::size_t waiter_count = 0;
  for (std::size_t s = 0; s < sessions_.size(); ++s) {
    SessionState& session = sessions_[s];
    if (session.phase == SessionPhase::Free) continue;
    if (session.displaced_by >= kFirstConfiguredBudget && mark[session.displaced_by] != kKept)
      session.displaced_by = kNoBudget;  // that budget is gone
    if (session.reclaimed_for >= kFirstConfiguredBudget && mark[session.reclaimed_for] != kKept)
      session.reclaimed_for = kNoBudget;  // so is the one it is being ended for
    if (session.reclaimed && session.reclaimed_for != kNoBudget) ++budgets_[session.reclaimed_for].reclaiming;
    if (session.budget >= kFirstConfiguredBudget && mark[session.budget] != kKept) {
      if (session.phase == SessionPhase::Active) {
        --expected[session.budget];
        ++expected[kDefaultBudget];
      }
      if (session.phase != SessionPhase::Displaced) ++result.moved_to_default;
      session.budget = kDefaultBudget;
    }
    if (session.phase == SessionPhase::Displaced) {
      ++header_->displaced;
      continue;
    }
    if (session.phase == SessionPhase::Active)
      ++budgets_[session.budget].active;
    else
      waiters[waiter_count++] = static_cast<std::int32_t>(s);
  }
  for (const BudgetState& budget : budgets_) {
    header_->occupied += budget.active;
    header_->sessions += budget.active;
  }
  refresh_entitlements();  // and the unused sums, from the sessions (waiters join below)
  std::sort(waiters.begin(), waiters.begin() + waiter_count,
            [this](std::int32_t a, std::int32_t b) { return sessions_[a].ticket < sessions_[b].ticket; });
  for (std::size_t i = 0; i < waiter_count; ++i) enqueue(waiters[i]);
  for (std::size_t slot = 0; slot < budgets_.size(); ++slot) {
    if (mark[slot] == kNew) continue;
    if (budgets_[slot].active != expected[slot]) ++result.corrected;
    record_peak(budgets_[slot], now_us);
  }

  header_->uses_role_groups = uses_role_groups;
  if (changed) {
    ++header_->generation;
    header_->index_current = false;  // built for other rules: scan until publish_index()
  }
  result.status = changed ? Status::Applied : Status::Unchanged;

  // Waiters below a raised reservation start first (that does not change what the server
  // holds); then, if the raised reservations find the server full, waiters give their
  // place, lowest priority and youngest first (sessions are never ended).
  grant_waiters(now_us, wakeups);
  while (header_->occupied + header_->unused_entitled > header_->capacity) {
    const std::int32_t victim = youngest_waiter_below(std::numeric_limits<std::int32_t>::max());
    if (victim == kNoSession) break;
    displace(victim, kNoBudget, now_us);
    wakeups.add(victim);
    ++result.displaced;
  }
  result.overcommitted = std::max(0, header_->occupied + header_->unused_entitled - header_->capacity);

  // Raised limits (or waiters moved to a budget with room) admit waiters at once.
  grant_waiters(now_us, wakeups);
  return result;
}

bool Ledger::reset_stats(std::optional<std::string_view> budget, std::int64_t now_us) noexcept {
  const std::int32_t only = budget ? find(*budget) : kNoBudget;
  if (budget && only == kNoBudget) return false;
  for (std::size_t slot = 0; slot < budgets_.size(); ++slot) {
    BudgetState& state = budgets_[slot];
    if (!budget) state.restored = false;  // saved counters not yet claimed are reset too
    if (!state.configured || (budget && static_cast<std::int32_t>(slot) != only)) continue;
    state.counters = BudgetCounters();
    state.counters.stats_reset_us = now_us;
    record_peak(state, now_us);
  }
  return true;
}

void Ledger::set_paused(std::int32_t budget, bool paused, std::int64_t now_us, Wakeups& wakeups) noexcept {
  budgets_[budget].paused = paused;
  grant_waiters(now_us, wakeups);
}

std::size_t Ledger::restore_index_entries(std::int32_t max_budgets) noexcept { return hash_table_size(max_budgets); }

Ledger::RestoreIndex Ledger::restore_index(std::span<std::int32_t> scratch) const noexcept {
  const std::span<std::int32_t> table = scratch.first(table_size());
  std::ranges::fill(table, kNoBudget);
  return RestoreIndex{table};
}

bool Ledger::restore(std::string_view name, const BudgetCounters& counters, RestoreIndex& index) noexcept {
  // One slot per name: a name given twice keeps its last counters.
  std::int32_t slot = kNoBudget;
  for (const std::int32_t implicit : {kDefaultBudget, kExemptBudget})
    if (budgets_[implicit].definition.name.view() == name) slot = implicit;
  const std::size_t mask = index.table.size() - 1;
  std::size_t pos = name_hash(name) & mask;
  if (slot == kNoBudget) {
    for (; index.table[pos] != kNoBudget; pos = (pos + 1) & mask)
      if (budgets_[index.table[pos]].definition.name.view() == name) {
        slot = index.table[pos];
        break;
      }
  }
  if (slot == kNoBudget) {
    while (index.next_free < budgets_.size() &&
           (budgets_[index.next_free].configured || budgets_[index.next_free].restored))
      ++index.next_free;
    if (index.next_free == budgets_.size() || !budgets_[index.next_free].definition.name.assign(name)) return false;
    slot = static_cast<std::int32_t>(index.next_free);
    budgets_[slot].restored = true;
    index.table[pos] = slot;
  }
  budgets_[slot].counters = counters;
  return true;
}

}  // namespace connbudget
