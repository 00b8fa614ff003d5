// The shared books of budgets and sessions (see ledger.hpp): the block's layout, the
// classification of a login, admission and release, the queues and their handoff.
// Who has room is in ledger_room.cpp; configuration changes in ledger_configuration.cpp.
#include "core/ledger.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/reclaim.hpp"
#include "core/core_only.hpp"

namespace connbudget {
namespace {

constexpr std::size_t kAlign = alignof(std::max_align_t);

constexpr std::size_t aligned(std::size_t n) noexcept { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

std::size_t Ledger::budget_slots(std::int32_t max_budgets) noexcept {
  return static_cast<std::size_t>(max_budgets) + kFirstConfiguredBudget;
}

void Ledger::record_peak(BudgetState& budget, std::int64_t now_us) noexcept {
  if (budget.active <= budget.counters.peak) return;
  budget.counters.peak = budget.active;
  budget.counters.peak_at_us = now_us;
}

std::size_t wait_bucket(std::int64_t waited_us) noexcept {
  std::size_t bucket = 0;
  while (bucket < kWaitBucketBoundsUs.size() && waited_us > kWaitBucketBoundsUs[bucket]) ++bucket;
  return bucket;
}

std::size_t Ledger::bytes_needed(std::int32_t max_budgets, std::int32_t max_sessions) noexcept {
  return aligned(sizeof(LedgerHeader)) + 2 * MatchIndex::header_bytes(max_budgets) + 2 * MatchIndex::table_bytes(max_budgets) +
         aligned(budget_slots(max_budgets) * sizeof(BudgetState)) +
         aligned(static_cast<std::size_t>(max_budgets) * sizeof(std::int32_t)) +
         aligned(static_cast<std::size_t>(max_sessions) * sizeof(SessionState)) +
         aligned(static_cast<std::size_t>(max_sessions) * sizeof(ReclaimNames));
}

Ledger::Ledger(void* block, std::int32_t max_budgets, std::int32_t max_sessions) noexcept {
  auto* bytes = static_cast<unsigned char*>(block);
  header_ = reinterpret_cast<LedgerHeader*>(bytes);
  // What every login touches lies together: the header, the live index header, the
  // session slots, then the budget slots from default and exempt on; the match order, the
  // spare index header, the index tables and the reclaims' names come last. A new backend
  // pays a page fault for the first touch of each shared page, and a read fault maps the
  // pages around it (the 64 KB window, Linux's fault-around): a login touches the first
  // window (if the block starts one, as the server's does), its budget's slot, its own
  // session slot (past the first window with more than about a hundred connections) and,
  // for each of its keys that pass the index filter, one bucket of the table; all but the
  // first it writes before it reads them (FirstTouch), so that each maps its page alone.
  bytes += aligned(sizeof(LedgerHeader));
  live_index_header_ = bytes;
  bytes += MatchIndex::header_bytes(max_budgets);
  sessions_ = {reinterpret_cast<SessionState*>(bytes), static_cast<std::size_t>(max_sessions)};
  bytes += aligned(sessions_.size_bytes());
  budgets_ = {reinterpret_cast<BudgetState*>(bytes), budget_slots(max_budgets)};
  bytes += aligned(budgets_.size_bytes());
  match_order_ = {reinterpret_cast<std::int32_t*>(bytes), static_cast<std::size_t>(max_budgets)};
  bytes += aligned(match_order_.size_bytes());
  spare_index_header_ = bytes;
  bytes += MatchIndex::header_bytes(max_budgets);
  for (void*& table : index_tables_) {
    table = bytes;
    bytes += MatchIndex::table_bytes(max_budgets);
  }
  reclaim_names_ = {reinterpret_cast<ReclaimNames*>(bytes), static_cast<std::size_t>(max_sessions)};
}

void Ledger::initialize(std::int64_t now_us) noexcept {
  new (header_) LedgerHeader();
  for (BudgetState& budget : budgets_) new (&budget) BudgetState();
  for (std::int32_t& index : match_order_) index = kNoBudget;
  for (SessionState& session : sessions_) new (&session) SessionState();
  for (ReclaimNames& names : reclaim_names_) new (&names) ReclaimNames();
  live_index().clear();
  spare_index().clear();
  for (const std::int32_t implicit : {kDefaultBudget, kExemptBudget}) {
    BudgetState& budget = budgets_[implicit];
    budget.definition.name.assign(implicit == kDefaultBudget ? "default" : "exempt");
    budget.configured = true;
    budget.counters.stats_reset_us = now_us;
  }
  refresh_entitlements();
}

MatchIndex Ledger::live_index() const noexcept {
  return MatchIndex(live_index_header_, index_tables_[static_cast<std::size_t>(header_->live_table)],
                    static_cast<std::int32_t>(match_order_.size()));
}

MatchIndex Ledger::spare_index() const noexcept {
  return MatchIndex(spare_index_header_, index_tables_[static_cast<std::size_t>(1 - header_->live_table)],
                    static_cast<std::int32_t>(match_order_.size()));
}

Ledger::PreparedIndex Ledger::prepare_index(std::span<const BudgetDefinition> definitions,
                                            std::span<MatchIndex::BuildEntry> scratch) noexcept {
  const bool built = spare_index().build(definitions, scratch);
  return PreparedIndex{definitions.data(), definitions.size(), ++header_->index_builds, built};
}

void Ledger::publish_index(const PreparedIndex& prepared, std::span<const BudgetDefinition> definitions) noexcept {
  if (!prepared.built || prepared.definitions != definitions.data() || prepared.count != definitions.size() ||
      prepared.serial != header_->index_builds ||
      prepared.count != static_cast<std::size_t>(header_->configured_count))
    return;
  spare_index().bind(match_order());
  std::memcpy(live_index_header_, spare_index_header_,
              MatchIndex::header_bytes(static_cast<std::int32_t>(match_order_.size())));
  header_->live_table = 1 - header_->live_table;
  header_->index_current = true;
}

MatchIndex::Summary Ledger::index_summary() const noexcept {
  return header_->index_current ? live_index().summary() : MatchIndex::Summary{};
}

bool Ledger::consider(std::int32_t slot, const LoginAttributes& login, Classification& c) const noexcept {
  const BudgetRule& rule = budgets_[slot].definition.rule;
  if (rule.matches(login)) {
    c.budget = slot;
    // Entitled by a later row to a name an earlier row gives another role: no mismatch.
    if (rule.entitles()) c.mismatched = kNoBudget;
    return true;
  }
  if (c.mismatched == kNoBudget && rule.entitles() && rule.claimed_by(login)) c.mismatched = slot;
  return false;
}

Classification Ledger::classify(const LoginAttributes& login, bool exempt) const noexcept {
  if (exempt || !header_->index_current) return classify_by_scan(login, exempt);
  MatchIndex::Candidates candidates = live_index().candidates(login);
  if (!candidates.usable()) return classify_by_scan(login, exempt);
  Classification c;
  for (MatchIndex::Candidate candidate = candidates.next(); candidate.rank >= 0; candidate = candidates.next()) {
    budgets_[candidate.slot].touch();
    if (consider(candidate.slot, login, c)) break;
  }
  return c;
}

Classification Ledger::classify_by_scan(const LoginAttributes& login, bool exempt) const noexcept {
  Classification c;
  if (exempt) {
    c.budget = kExemptBudget;
    return c;
  }
  for (const std::int32_t slot : match_order())
    if (consider(slot, login, c)) break;
  return c;
}

const BudgetLimits& Ledger::limits_of(std::int32_t budget) const noexcept {
  static constexpr BudgetLimits unlimited{};
  return budget == kExemptBudget ? unlimited : budgets_[budget].definition.limits;
}

LogLimiter::Decision Ledger::count_refusal(std::int32_t budget, Verdict verdict, std::int64_t now_us) noexcept {
  BudgetCounters& c = budgets_[budget].counters;
  switch (verdict) {
    case Verdict::Refuse: ++c.rejected_full; break;
    case Verdict::RefuseQueueFull: ++c.rejected_queue_full; break;
    case Verdict::RefusePaused: ++c.rejected_paused; break;
    case Verdict::RefuseServerFull: ++c.rejected_server_full; break;
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
  ++header_->displaced;
}

Admission Ledger::admit(std::int32_t session, const Classification& classification, const LoginAttributes& login,
                        std::int32_t pid, const Policy& policy, const FreeBackends& free,
                        std::int64_t now_us, Wakeups& wakeups) noexcept {
  const std::int32_t budget = classification.budget;
  const std::int32_t mismatched = classification.mismatched;
  const auto in_range = [this](std::int32_t b) { return b >= 0 && static_cast<std::size_t>(b) < budgets_.size(); };
  if (session < 0 || static_cast<std::size_t>(session) >= sessions_.size() || !in_range(budget) ||
      (mismatched != kNoBudget && !in_range(mismatched)))
    return Admission{};
  // Written before they are read: beyond the first window (with many connections the
  // session slots fill it, pushing the implicit budgets' slots out), each maps its page alone.
  sessions_[session].touch();
  budgets_[kDefaultBudget].touch();
  budgets_[budget].touch();
  release(session, now_us, wakeups);  // a slot is never booked twice
  // This login's settings may have raised the default limit or switched enforcement off:
  // waiters that now fit go first, so that the newcomer cannot overtake them.
  adopt(policy);
  grant_waiters(now_us, wakeups);

  LogLimiter::Decision mismatch_log;
  if (mismatched != kNoBudget) {
    ++budgets_[mismatched].counters.mismatched;
    mismatch_log = budgets_[mismatched].log.note(now_us);
    if (policy.refuses_mismatches()) {
      Admission refused = evaluate(mismatched, policy, free);
      refused.verdict = refused.enforced = Verdict::RefuseMismatch;
      refused.mismatched = mismatched;
      refused.log = mismatch_log;
      return refused;
    }
  }

  BudgetState& state = budgets_[budget];
  Admission admission = evaluate(budget, policy, free);
  admission.mismatched = mismatched;
  admission.mismatch_log = mismatch_log;
  if (admission.verdict == Verdict::RefuseReserved || admission.verdict == Verdict::RefuseServerFull) {
    const std::int32_t victim = victim_for(budget, policy, free);
    if (victim != kNoSession) {
      displace(victim, budget, now_us);
      wakeups.add(victim);
      admission = evaluate(budget, policy, free);
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
    slot.grace = admission.grace;
    enqueue(session);
    if (!slot.grace) ++state.counters.queued;
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
    if (!slot.grace) {
      ++state.counters.waits;
      state.counters.wait_total_us += slot.waited_us;
      state.counters.wait_max_us = std::max(state.counters.wait_max_us, slot.waited_us);
      ++state.counters.wait_histogram[wait_bucket(slot.waited_us)];
    }
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
    --header_->displaced;
    slot = SessionState();
    return;
  }
  if (slot.phase == SessionPhase::Waiting) {
    unlink(session);
    count_departure(budgets_[budget].counters, slot.grace, Departure::Abandoned, now_us);
  } else {
    occupy(budget, -1, 0);
    if (slot.reclaimed && slot.reclaimed_for != kNoBudget) --budgets_[slot.reclaimed_for].reclaiming;
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
  count_departure(budgets_[budget].counters, slot.grace, why, now_us);
  const bool refused = slot.grace && why == Departure::TimedOut;
  slot = SessionState();
  grant_waiters(now_us, wakeups);
  return {Departed::Outcome::Left, budget, budgets_[budget].log.note(now_us), refused};
}

void Ledger::count_departure(BudgetCounters& counters, bool grace, Departure why, std::int64_t now_us) noexcept {
  if (grace) {  // never queued: refused as the budget was full, however it left
    ++counters.rejected_full;
    counters.last_refusal_us = now_us;
    return;
  }
  switch (why) {
    case Departure::TimedOut:
      ++counters.timed_out;
      counters.last_refusal_us = now_us;
      break;
    case Departure::Abandoned: ++counters.abandoned; break;
    case Departure::Terminated:
    case Departure::Canceled: ++counters.terminated; break;
  }
}

Departed Ledger::forgo_grant(std::int32_t session, Departure why, std::int64_t now_us, Wakeups& wakeups) noexcept {
  if (session < 0 || static_cast<std::size_t>(session) >= sessions_.size()) return {};
  SessionState& slot = sessions_[session];
  if (slot.phase != SessionPhase::Active) return leave_queue(session, why, now_us, wakeups);
  const std::int32_t budget = slot.budget;
  if (slot.granted_us == 0) return {Departed::Outcome::Granted, budget, {}};
  // Undo what the grant counted (the longest wait stays: it did wait that long).
  BudgetCounters& counters = budgets_[budget].counters;
  --counters.admitted;
  if (!slot.grace) {
    --counters.waits;
    counters.wait_total_us -= slot.waited_us;
    --counters.wait_histogram[wait_bucket(slot.waited_us)];
  }
  count_departure(counters, slot.grace, why, now_us);
  release(session, now_us, wakeups);
  return {Departed::Outcome::Left, budget, budgets_[budget].log.note(now_us)};
}

std::int32_t queue_position(std::span<const SessionState> sessions, std::int32_t session) noexcept {
  if (sessions[session].phase != SessionPhase::Waiting) return 0;
  std::int32_t position = 1;
  for (std::int32_t s = sessions[session].prev; s != kNoSession; s = sessions[s].prev) ++position;
  return position;
}

bool Ledger::mark_reclaimed(const Reclaim& reclaim, std::int64_t now_us) noexcept {
  if (reclaim.slot < 0 || static_cast<std::size_t>(reclaim.slot) >= sessions_.size() || reclaim.for_budget < 0 ||
      static_cast<std::size_t>(reclaim.for_budget) >= budgets_.size())
    return false;
  SessionState& slot = sessions_[reclaim.slot];
  if (slot.phase != SessionPhase::Active || slot.pid != reclaim.pid || slot.budget != reclaim.victim_budget ||
      slot.reclaimed)
    return false;
  if (reclaim_demand(*this, reclaim.for_budget) == 0 || !may_reclaim_for(*this, reclaim.for_budget, slot.budget))
    return false;
  slot.reclaimed = true;
  slot.reclaimed_for = reclaim.for_budget;
  slot.reclaimed_idle_us = reclaim.idle_us;
  ReclaimNames& names = reclaim_names_[static_cast<std::size_t>(reclaim.slot)];
  names.for_budget = budgets_[reclaim.for_budget].definition.name;
  ++budgets_[reclaim.for_budget].reclaiming;
  BudgetState& victim = budgets_[slot.budget];
  slot.reclaimed_after_ms = limits_of(slot.budget).idle_reclaim_ms;
  names.own_budget = victim.definition.name;
  ++victim.counters.reclaimed;
  slot.reclaimed_log = victim.log.note(now_us);
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
