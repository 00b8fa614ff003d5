// The shared books of budgets and sessions (see ledger.hpp).
#include "core/ledger.hpp"

#include <algorithm>
#include <limits>
#include <new>

#include "core/core_only.hpp"

namespace connbudget {
namespace {

constexpr std::size_t kAlign = alignof(std::max_align_t);

constexpr std::size_t aligned(std::size_t n) noexcept { return (n + kAlign - 1) / kAlign * kAlign; }

std::size_t budget_slots(std::int32_t max_budgets) noexcept {
  return static_cast<std::size_t>(max_budgets) + kFirstConfiguredBudget;
}

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

void record_peak(BudgetState& budget, std::int64_t now_us) noexcept {
  if (budget.active <= budget.counters.peak) return;
  budget.counters.peak = budget.active;
  budget.counters.peak_at_us = now_us;
}

// Marks reconfigure() puts on budget slots.
enum SlotMark : std::int32_t { kUntouched = 0, kKept = 1, kNew = 2 };

}  // namespace

std::size_t wait_bucket(std::int64_t waited_us) noexcept {
  std::size_t bucket = 0;
  while (bucket < kWaitBucketBoundsUs.size() && waited_us > kWaitBucketBoundsUs[bucket]) ++bucket;
  return bucket;
}

std::size_t Ledger::bytes_needed(std::int32_t max_budgets, std::int32_t max_sessions) noexcept {
  return aligned(sizeof(LedgerHeader)) + aligned(budget_slots(max_budgets) * sizeof(BudgetState)) +
         aligned(static_cast<std::size_t>(max_budgets) * sizeof(std::int32_t)) +
         aligned(static_cast<std::size_t>(max_sessions) * sizeof(SessionState));
}

std::size_t Ledger::scratch_entries(std::int32_t max_budgets, std::int32_t max_sessions) noexcept {
  return static_cast<std::size_t>(max_budgets) + 2 * budget_slots(max_budgets) +
         hash_table_size(max_budgets) + static_cast<std::size_t>(max_sessions);
}

Ledger::Ledger(void* block, std::int32_t max_budgets, std::int32_t max_sessions) noexcept {
  auto* bytes = static_cast<unsigned char*>(block);
  header_ = reinterpret_cast<LedgerHeader*>(bytes);
  bytes += aligned(sizeof(LedgerHeader));
  budgets_ = {reinterpret_cast<BudgetState*>(bytes), budget_slots(max_budgets)};
  bytes += aligned(budgets_.size_bytes());
  match_order_ = {reinterpret_cast<std::int32_t*>(bytes), static_cast<std::size_t>(max_budgets)};
  bytes += aligned(match_order_.size_bytes());
  sessions_ = {reinterpret_cast<SessionState*>(bytes), static_cast<std::size_t>(max_sessions)};
}

void Ledger::initialize(std::int64_t now_us) noexcept {
  new (header_) LedgerHeader();
  for (BudgetState& budget : budgets_) new (&budget) BudgetState();
  for (std::int32_t& index : match_order_) index = kNoBudget;
  for (SessionState& session : sessions_) new (&session) SessionState();
  for (const std::int32_t implicit : {kDefaultBudget, kExemptBudget}) {
    BudgetState& budget = budgets_[implicit];
    budget.definition.name.assign(implicit == kDefaultBudget ? "default" : "exempt");
    budget.configured = true;
    budget.counters.stats_reset_us = now_us;
  }
}

std::int32_t Ledger::classify(const LoginAttributes& login, bool exempt) const noexcept {
  if (exempt) return kExemptBudget;
  for (const std::int32_t index : match_order())
    if (budgets_[index].definition.rule.matches(login)) return index;
  return kDefaultBudget;
}

const BudgetLimits& Ledger::limits_of(std::int32_t budget) const noexcept {
  static constexpr BudgetLimits unlimited{};
  return budget == kExemptBudget ? unlimited : budgets_[budget].definition.limits;
}

void Ledger::adopt(const Policy& policy) noexcept {
  budgets_[kDefaultBudget].definition.limits = policy.default_limits;
  header_->enforcement_enabled = policy.enforcement_enabled;
  header_->capacity = policy.capacity;
  header_->waiting_room = policy.waiting_room;
}

std::int32_t Ledger::unused_reservation(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  return std::max(0, state.reserved - state.active - state.waiting);
}

void Ledger::occupy(std::int32_t budget, std::int32_t active_delta, std::int32_t waiting_delta) noexcept {
  BudgetState& state = budgets_[budget];
  const std::int32_t unused_before = unused_reservation(budget);
  const std::int32_t unused_sessions_before = std::max(0, state.reserved - state.active);
  state.active += active_delta;
  state.waiting += waiting_delta;
  header_->occupied += active_delta + waiting_delta;
  header_->sessions += active_delta;
  header_->waiting += waiting_delta;
  header_->unused_reserved += unused_reservation(budget) - unused_before;
  header_->unused_reserved_sessions += std::max(0, state.reserved - state.active) - unused_sessions_before;
}

bool Ledger::session_room(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  if (budget == kExemptBudget || state.active < state.reserved) return true;
  return header_->capacity - header_->waiting_room - header_->sessions - 1 >= header_->unused_reserved_sessions;
}

bool Ledger::backend_room(std::int32_t budget) const noexcept {
  if (budget == kExemptBudget || unused_reservation(budget) > 0) return true;
  return header_->capacity - header_->occupied - 1 >= header_->unused_reserved;
}

Admission Ledger::evaluate(std::int32_t budget, const Policy& policy) const noexcept {
  const BudgetState& state = budgets_[budget];
  const BudgetLimits& limits = limits_of(budget);
  const Pressure pressure{state.active, state.waiting, session_room(budget), backend_room(budget), state.paused};
  Admission a;
  a.verdict = decide(limits, pressure, policy);
  a.budget = budget;
  a.active = state.active;
  a.waiting = state.waiting;
  a.limit = limits.max_connections;
  a.reserved = state.reserved;
  a.queue_timeout_ms = policy.queue_timeout_of(limits);
  a.capacity = header_->capacity;
  a.free = header_->capacity - header_->occupied;
  a.reserved_for_others = header_->unused_reserved - unused_reservation(budget);
  a.paused = state.paused;
  Policy enforcing = policy;
  enforcing.enforcement_enabled = true;
  BudgetLimits enforced_limits = limits;
  enforced_limits.mode = Mode::Enforce;
  a.enforced = decide(enforced_limits, pressure, enforcing);
  return a;
}

std::int32_t Ledger::youngest_waiter_below(std::int32_t priority) const noexcept {
  std::int32_t victim_budget = kNoBudget;
  for (std::int32_t b = header_->waiting_budgets; b != kNoBudget; b = budgets_[b].next_waiting) {
    const std::int32_t mine = limits_of(b).priority;
    if (mine >= priority) continue;
    if (victim_budget == kNoBudget) {
      victim_budget = b;
      continue;
    }
    const std::int32_t best = limits_of(victim_budget).priority;
    if (mine < best || (mine == best && sessions_[budgets_[b].queue_tail].ticket >
                                            sessions_[budgets_[victim_budget].queue_tail].ticket))
      victim_budget = b;
  }
  return victim_budget == kNoBudget ? kNoSession : budgets_[victim_budget].queue_tail;
}

std::int32_t Ledger::victim_for(std::int32_t budget, const Policy& policy) const noexcept {
  // Displacing one waiter frees exactly one backend (its budget, being full, has no
  // unused reservation) and no session: never displace for a login that would still not
  // be let in.
  const BudgetState& state = budgets_[budget];
  if (state.paused && header_->enforcement_enabled) return kNoSession;  // it could not start anyway
  const Pressure with_a_backend{state.active, state.waiting, session_room(budget), true, state.paused};
  if (refuses(decide(limits_of(budget), with_a_backend, policy))) return kNoSession;
  if (header_->capacity - header_->occupied < header_->unused_reserved) return kNoSession;
  return youngest_waiter_below(limits_of(budget).priority);
}

LogLimiter::Decision Ledger::count_refusal(std::int32_t budget, Verdict verdict, std::int64_t now_us) noexcept {
  BudgetCounters& c = budgets_[budget].counters;
  switch (verdict) {
    case Verdict::Refuse: ++c.rejected_full; break;
    case Verdict::RefuseQueueFull: ++c.rejected_queue_full; break;
    case Verdict::RefusePaused: ++c.rejected_paused; break;
    default: ++c.rejected_reserved; break;
  }
  c.last_refusal_us = now_us;
  return budgets_[budget].log.note(now_us);
}

void Ledger::displace(std::int32_t waiter, std::int32_t by, std::int64_t now_us) noexcept {
  unlink(waiter);
  SessionState& slot = sessions_[waiter];
  slot.displaced_log = count_refusal(slot.budget, Verdict::RefuseReserved, now_us);
  slot.phase = SessionPhase::Displaced;
  slot.displaced_by = by;
}

Admission Ledger::admit(std::int32_t session, std::int32_t budget, const LoginAttributes& login,
                        std::int32_t pid, const Policy& policy, std::int64_t now_us,
                        Wakeups& wakeups) noexcept {
  if (session < 0 || static_cast<std::size_t>(session) >= sessions_.size() || budget < 0 ||
      static_cast<std::size_t>(budget) >= budgets_.size())
    return Admission{};
  release(session, now_us, wakeups);  // a slot is never booked twice
  // This login's settings may have raised the default limit or switched enforcement off:
  // waiters that now fit go first, so that the newcomer cannot overtake them.
  adopt(policy);
  grant_waiters(now_us, wakeups);

  BudgetState& state = budgets_[budget];
  Admission admission = evaluate(budget, policy);
  if (admission.verdict == Verdict::RefuseReserved) {
    const std::int32_t victim = victim_for(budget, policy);
    if (victim != kNoSession) {
      displace(victim, budget, now_us);
      wakeups.add(victim);
      admission = evaluate(budget, policy);
      admission.displaced = victim;
    }
  }
  if (refuses(admission.verdict)) {
    admission.log = count_refusal(budget, admission.verdict, now_us);
    return admission;
  }
  if (admission.verdict == Verdict::AdmitOverLimit && limits_of(budget).mode == Mode::Monitor) {
    ++(admission.enforced == Verdict::Queue ? state.counters.would_queue : state.counters.would_reject);
    admission.log = state.log.note(now_us);
  }

  SessionState& slot = sessions_[session];
  slot.budget = budget;
  slot.pid = pid;
  slot.since_us = now_us;
  slot.application_name.assign_truncated(login.application_name);
  slot.role_name.assign_truncated(login.role_name);
  slot.database_name.assign_truncated(login.database_name);
  slot.client_addr = login.client_addr;
  if (admission.verdict == Verdict::Queue) {
    slot.phase = SessionPhase::Waiting;
    slot.ticket = header_->next_ticket++;
    enqueue(session);
    ++state.counters.queued;
    return admission;
  }
  slot.phase = SessionPhase::Active;
  occupy(budget, 1, 0);
  ++state.counters.admitted;
  record_peak(state, now_us);
  return admission;
}

void Ledger::link_waiting_budget(std::int32_t budget) noexcept {
  BudgetState& state = budgets_[budget];
  state.prev_waiting = kNoBudget;
  state.next_waiting = header_->waiting_budgets;
  if (header_->waiting_budgets != kNoBudget) budgets_[header_->waiting_budgets].prev_waiting = budget;
  header_->waiting_budgets = budget;
}

void Ledger::unlink_waiting_budget(std::int32_t budget) noexcept {
  BudgetState& state = budgets_[budget];
  if (state.prev_waiting != kNoBudget)
    budgets_[state.prev_waiting].next_waiting = state.next_waiting;
  else
    header_->waiting_budgets = state.next_waiting;
  if (state.next_waiting != kNoBudget) budgets_[state.next_waiting].prev_waiting = state.prev_waiting;
  state.next_waiting = state.prev_waiting = kNoBudget;
}

void Ledger::enqueue(std::int32_t session) noexcept {
  SessionState& slot = sessions_[session];
  BudgetState& budget = budgets_[slot.budget];
  if (budget.queue_head == kNoSession) link_waiting_budget(slot.budget);
  slot.next = kNoSession;
  slot.prev = budget.queue_tail;
  if (budget.queue_tail != kNoSession)
    sessions_[budget.queue_tail].next = session;
  else
    budget.queue_head = session;
  budget.queue_tail = session;
  occupy(slot.budget, 0, 1);
}

void Ledger::unlink(std::int32_t session) noexcept {
  SessionState& slot = sessions_[session];
  BudgetState& budget = budgets_[slot.budget];
  if (slot.prev != kNoSession)
    sessions_[slot.prev].next = slot.next;
  else
    budget.queue_head = slot.next;
  if (slot.next != kNoSession)
    sessions_[slot.next].prev = slot.prev;
  else
    budget.queue_tail = slot.prev;
  slot.next = slot.prev = kNoSession;
  if (budget.queue_head == kNoSession) unlink_waiting_budget(slot.budget);
  occupy(slot.budget, 0, -1);
}

bool Ledger::enforced(std::int32_t budget) const noexcept {
  return header_->enforcement_enabled && limits_of(budget).mode == Mode::Enforce;
}

bool Ledger::head_may_start(std::int32_t budget) const noexcept {
  const BudgetState& state = budgets_[budget];
  if (state.queue_head == kNoSession) return false;
  if (state.paused && header_->enforcement_enabled) return false;
  if (!enforced(budget)) return true;
  // Without a waiting room nobody waits for shared capacity: a waiter already holds its
  // backend, and its budget's room is all it needs.
  return has_room(limits_of(budget), state.active) && (header_->waiting_room == 0 || session_room(budget));
}

void Ledger::grant_waiters(std::int64_t now_us, Wakeups& wakeups) noexcept {
  while (header_->waiting > 0) {
    // The waiter to start next: of the budgets whose oldest waiter may start, the highest
    // priority, then the longest waiting.
    std::int32_t chosen = kNoBudget;
    for (std::int32_t budget = header_->waiting_budgets; budget != kNoBudget;
         budget = budgets_[budget].next_waiting) {
      if (!head_may_start(budget)) continue;
      if (chosen == kNoBudget) {
        chosen = budget;
        continue;
      }
      const std::int32_t mine = limits_of(budget).priority, best = limits_of(chosen).priority;
      if (mine > best || (mine == best && sessions_[budgets_[budget].queue_head].ticket <
                                              sessions_[budgets_[chosen].queue_head].ticket))
        chosen = budget;
    }
    if (chosen == kNoBudget) return;
    BudgetState& state = budgets_[chosen];
    const std::int32_t waiter = state.queue_head;
    unlink(waiter);
    SessionState& slot = sessions_[waiter];
    slot.phase = SessionPhase::Active;
    slot.waited_us = now_us - slot.since_us;
    slot.granted_us = now_us;
    slot.since_us = now_us;
    occupy(chosen, 1, 0);
    ++state.counters.admitted;
    ++state.counters.waits;
    state.counters.wait_total_us += slot.waited_us;
    state.counters.wait_max_us = std::max(state.counters.wait_max_us, slot.waited_us);
    ++state.counters.wait_histogram[wait_bucket(slot.waited_us)];
    record_peak(state, now_us);
    wakeups.add(waiter);
  }
}

void Ledger::release(std::int32_t session, std::int64_t now_us, Wakeups& wakeups) noexcept {
  if (session < 0 || static_cast<std::size_t>(session) >= sessions_.size()) return;
  SessionState& slot = sessions_[session];
  const std::int32_t budget = slot.budget;
  if (slot.phase == SessionPhase::Free) return;
  if (slot.phase == SessionPhase::Displaced) {  // counted nowhere any more
    slot = SessionState();
    return;
  }
  if (slot.phase == SessionPhase::Waiting) {
    unlink(session);
    ++budgets_[budget].counters.abandoned;
  } else {
    occupy(budget, -1, 0);
  }
  slot = SessionState();
  grant_waiters(now_us, wakeups);
}

Departed Ledger::leave_queue(std::int32_t session, Departure why, std::int64_t now_us,
                             Wakeups& wakeups) noexcept {
  if (session < 0 || static_cast<std::size_t>(session) >= sessions_.size()) return {};
  SessionState& slot = sessions_[session];
  const std::int32_t budget = slot.budget;
  if (slot.phase == SessionPhase::Active) return {Departed::Outcome::Granted, budget, {}};
  if (slot.phase != SessionPhase::Waiting) return {Departed::Outcome::Displaced, budget, {}};
  unlink(session);
  BudgetCounters& counters = budgets_[budget].counters;
  switch (why) {
    case Departure::TimedOut:
      ++counters.timed_out;
      counters.last_refusal_us = now_us;
      break;
    case Departure::Abandoned: ++counters.abandoned; break;
    case Departure::Terminated: ++counters.terminated; break;
  }
  slot = SessionState();
  grant_waiters(now_us, wakeups);
  return {Departed::Outcome::Left, budget, budgets_[budget].log.note(now_us)};
}

std::int32_t queue_position(std::span<const SessionState> sessions, std::int32_t session) noexcept {
  if (sessions[session].phase != SessionPhase::Waiting) return 0;
  std::int32_t position = 1;
  for (std::int32_t s = sessions[session].prev; s != kNoSession; s = sessions[s].prev) ++position;
  return position;
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
    budget.active = budget.waiting = 0;
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
  header_->occupied = header_->unused_reserved = 0;
  header_->sessions = header_->unused_reserved_sessions = header_->waiting = 0;
  std::size_t waiter_count = 0;
  for (std::size_t s = 0; s < sessions_.size(); ++s) {
    SessionState& session = sessions_[s];
    if (session.phase == SessionPhase::Free) continue;
    if (session.displaced_by >= kFirstConfiguredBudget && mark[session.displaced_by] != kKept)
      session.displaced_by = kNoBudget;  // that budget is gone
    if (session.budget >= kFirstConfiguredBudget && mark[session.budget] != kKept) {
      if (session.phase == SessionPhase::Active) {
        --expected[session.budget];
        ++expected[kDefaultBudget];
      }
      if (session.phase != SessionPhase::Displaced) ++result.moved_to_default;
      session.budget = kDefaultBudget;
    }
    if (session.phase == SessionPhase::Displaced) continue;
    if (session.phase == SessionPhase::Active)
      ++budgets_[session.budget].active;
    else
      waiters[waiter_count++] = static_cast<std::int32_t>(s);
  }
  for (std::size_t b = 0; b < budgets_.size(); ++b) {
    header_->occupied += budgets_[b].active;
    header_->sessions += budgets_[b].active;
    header_->unused_reserved += unused_reservation(static_cast<std::int32_t>(b));
    header_->unused_reserved_sessions += std::max(0, budgets_[b].reserved - budgets_[b].active);
  }
  std::sort(waiters.begin(), waiters.begin() + waiter_count,
            [this](std::int32_t a, std::int32_t b) { return sessions_[a].ticket < sessions_[b].ticket; });
  for (std::size_t i = 0; i < waiter_count; ++i) enqueue(waiters[i]);
  for (std::size_t slot = 0; slot < budgets_.size(); ++slot) {
    if (mark[slot] == kNew) continue;
    if (budgets_[slot].active != expected[slot]) ++result.corrected;
    record_peak(budgets_[slot], now_us);
  }

  header_->configured_count = static_cast<std::int32_t>(count);
  header_->uses_role_groups = uses_role_groups;
  if (changed) ++header_->generation;
  result.status = changed ? Status::Applied : Status::Unchanged;

  // Waiters below a raised reservation start first (that does not change what the server
  // holds); then, if the raised reservations find the server full, waiters give their
  // place, lowest priority and youngest first (sessions are never ended).
  grant_waiters(now_us, wakeups);
  while (header_->occupied + header_->unused_reserved > header_->capacity) {
    const std::int32_t victim = youngest_waiter_below(std::numeric_limits<std::int32_t>::max());
    if (victim == kNoSession) break;
    displace(victim, kNoBudget, now_us);
    wakeups.add(victim);
    ++result.displaced;
  }
  result.overcommitted = std::max(0, header_->occupied + header_->unused_reserved - header_->capacity);

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

bool Ledger::restore(std::string_view name, const BudgetCounters& counters) noexcept {
  // One slot per name: a name given twice keeps its last counters.
  std::int32_t slot = kNoBudget, free_slot = kNoBudget;
  for (std::size_t s = 0; s < budgets_.size() && slot == kNoBudget; ++s) {
    const BudgetState& budget = budgets_[s];
    if ((budget.configured || budget.restored) && budget.definition.name.view() == name)
      slot = static_cast<std::int32_t>(s);
    else if (free_slot == kNoBudget && s >= kFirstConfiguredBudget && !budget.configured && !budget.restored)
      free_slot = static_cast<std::int32_t>(s);
  }
  if (slot == kNoBudget) {
    if (free_slot == kNoBudget || !budgets_[free_slot].definition.name.assign(name)) return false;
    slot = free_slot;
    budgets_[slot].restored = true;
  }
  budgets_[slot].counters = counters;
  return true;
}

std::size_t Ledger::take_suppressed(std::int64_t now_us, std::span<SuppressedLines> out,
                                    std::int64_t* next_due_us) noexcept {
  std::size_t taken = 0;
  for (BudgetState& budget : budgets_) {
    if (taken == out.size()) break;
    std::int64_t due_us = 0;
    const std::int64_t count = budget.log.take_due(now_us, &due_us);
    if (count > 0)
      out[taken++] = {budget.definition.name, count};
    else if (budget.log.suppressed() > 0)
      *next_due_us = std::min(*next_due_us, due_us);
  }
  return taken;
}

std::int32_t Ledger::find(std::string_view name) const noexcept {
  for (std::size_t slot = 0; slot < budgets_.size(); ++slot)
    if (budgets_[slot].configured && budgets_[slot].definition.name.view() == name)
      return static_cast<std::int32_t>(slot);
  return kNoBudget;
}

}  // namespace connbudget
