// Budget rules, limits and the validation of a connbudget.budgets row (see budget.hpp).
#include "core/budget.hpp"

#include <cstdarg>
#include <cstdio>
#include <limits>

#include "core/like_pattern.hpp"
#include "core/core_only.hpp"

namespace connbudget {
namespace {

DefinitionError error(const char* format, ...) noexcept __attribute__((format(printf, 1, 2)));

DefinitionError error(const char* format, ...) noexcept {
  DefinitionError e;
  va_list args;
  va_start(args, format);
  std::vsnprintf(e.message, sizeof e.message, format, args);
  va_end(args);
  return e;
}

// printf argument for a string_view: "%.*s", width(sv), sv.data()
int width(std::string_view s) noexcept { return static_cast<int>(s.size()); }

}  // namespace

std::optional<OnFull> parse_on_full(std::string_view text) noexcept {
  if (text == "reject") return OnFull::Reject;
  if (text == "queue") return OnFull::Queue;
  return std::nullopt;
}

std::optional<Mode> parse_mode(std::string_view text) noexcept {
  if (text == "enforce") return Mode::Enforce;
  if (text == "monitor") return Mode::Monitor;
  return std::nullopt;
}

const char* to_string(OnFull value) noexcept { return value == OnFull::Queue ? "queue" : "reject"; }

const char* to_string(Mode value) noexcept { return value == Mode::Monitor ? "monitor" : "enforce"; }

bool is_reserved_budget_name(std::string_view name) noexcept {
  return name == "default" || name == "exempt";
}

bool BudgetRule::claimed_by(const LoginAttributes& login) const noexcept {
  if (has_application_name && !like_match(login.application_name, application_name.view()))
    return false;
  if (has_database && login.database_name != database_name.view()) return false;
  if (has_client_addr && !client_addr.contains(login.client_addr)) return false;
  return true;
}

bool BudgetRule::matches(const LoginAttributes& login) const noexcept {
  if (!claimed_by(login)) return false;
  if (has_role && login.role_name != role_name.view()) {
    if (!role_is_group) return false;
    bool member = false;
    for (std::string_view group : login.member_of) member = member || group == role_name.view();
    if (!member) return false;
  }
  return true;
}

std::optional<DefinitionError> build_definition(const BudgetRow& row, BudgetDefinition& out) noexcept {
  out = BudgetDefinition{};
  const std::string_view name = row.name;
  if (name.empty()) return error("budget name must not be empty");
  if (is_reserved_budget_name(name))
    return error("budget name \"%.*s\" is reserved for the implicit budget", width(name), name.data());
  if (!out.name.assign(name))
    return error("budget name \"%.*s\" is longer than %zu bytes", width(name), name.data(), kNameMax);
  out.position = row.position;

  BudgetRule& rule = out.rule;
  if (row.application_name) {
    const std::string_view pattern = *row.application_name;
    if (const char* why = like_pattern_error(pattern))
      return error("application_name pattern \"%.*s\" of budget \"%.*s\" is invalid: %s",
                   width(pattern), pattern.data(), width(name), name.data(), why);
    if (!is_clean_application_name(pattern)) {
      char suggestion[kPatternMax * 5 + 1];
      pattern_for_cleaned_names(pattern, row.application_name_cleaning, suggestion);
      return error("application_name pattern \"%.*s\" of budget \"%.*s\" can never match: the server writes "
                   "bytes outside printable ASCII in a login's application_name as %s; write \"%s\"",
                   width(pattern), pattern.data(), width(name), name.data(),
                   row.application_name_cleaning == NameCleaning::QuestionMark ? "\"?\"" : "\\xNN", suggestion);
    }
    if (like_min_length(pattern) > kApplicationNameMax)
      return error("application_name pattern of budget \"%.*s\" can never match: it matches only names longer than "
                   "the %zu bytes of a login's application_name that count",
                   width(name), name.data(), kApplicationNameMax);
    if (!rule.application_name.assign(pattern))
      return error("application_name pattern of budget \"%.*s\" is longer than %zu bytes",
                   width(name), name.data(), kPatternMax);
    rule.has_application_name = true;
  }
  if (row.role_name) {
    std::string_view role = *row.role_name;
    rule.role_is_group = !role.empty() && role.front() == '+';
    if (rule.role_is_group) role.remove_prefix(1);
    if (role.empty())
      return error("role_name of budget \"%.*s\" must name a role, or \"+role\" for its members",
                   width(name), name.data());
    if (!rule.role_name.assign(role))
      return error("role_name of budget \"%.*s\" is longer than %zu bytes", width(name), name.data(),
                   kNameMax);
    rule.has_role = true;
  }
  if (row.database_name) {
    if (row.database_name->empty())
      return error("database_name of budget \"%.*s\" must not be empty", width(name), name.data());
    if (!rule.database_name.assign(*row.database_name))
      return error("database_name of budget \"%.*s\" is longer than %zu bytes", width(name),
                   name.data(), kNameMax);
    rule.has_database = true;
  }
  if (row.client_addr) {
    rule.client_addr = *row.client_addr;
    rule.has_client_addr = true;
  }

  BudgetLimits& limits = out.limits;
  if (row.max_connections < 0)
    return error("max_connections of budget \"%.*s\" must be 0 or more, not %d", width(name),
                 name.data(), row.max_connections);
  limits.max_connections = row.max_connections;
  if (row.reserved < 0 || row.reserved > row.max_connections)
    return error("reserved of budget \"%.*s\" must be between 0 and its max_connections (%d), not %d",
                 width(name), name.data(), row.max_connections, row.reserved);
  limits.reserved = row.reserved;
  const auto on_full = parse_on_full(row.on_full);
  if (!on_full)
    return error("on_full of budget \"%.*s\" must be \"reject\" or \"queue\", not \"%.*s\"",
                 width(name), name.data(), width(row.on_full), row.on_full.data());
  limits.on_full = *on_full;
  if (row.queue_timeout_ms) {
    if (*row.queue_timeout_ms < 0)
      return error("queue_timeout of budget \"%.*s\" must not be negative", width(name), name.data());
    if (*row.queue_timeout_ms > std::numeric_limits<std::int32_t>::max())
      return error("queue_timeout of budget \"%.*s\" must be at most %d ms (about 24 days)",
                   width(name), name.data(), std::numeric_limits<std::int32_t>::max());
    limits.queue_timeout_ms = static_cast<std::int32_t>(*row.queue_timeout_ms);
  }
  if (row.max_queue) {
    if (*row.max_queue < 0)
      return error("max_queue of budget \"%.*s\" must be 0 or more, not %d", width(name),
                   name.data(), *row.max_queue);
    limits.max_queue = *row.max_queue;
  }
  limits.priority = row.priority;
  const auto mode = parse_mode(row.mode);
  if (!mode)
    return error("mode of budget \"%.*s\" must be \"enforce\" or \"monitor\", not \"%.*s\"",
                 width(name), name.data(), width(row.mode), row.mode.data());
  limits.mode = *mode;
  if (row.idle_reclaim_ms) {
    if (*row.idle_reclaim_ms < 0)
      return error("idle_reclaim of budget \"%.*s\" must not be negative", width(name), name.data());
    if (*row.idle_reclaim_ms > std::numeric_limits<std::int32_t>::max())
      return error("idle_reclaim of budget \"%.*s\" must be at most %d ms (about 24 days)", width(name),
                   name.data(), std::numeric_limits<std::int32_t>::max());
    limits.idle_reclaim_ms = static_cast<std::int32_t>(*row.idle_reclaim_ms);
  }
  return std::nullopt;
}

}  // namespace connbudget
