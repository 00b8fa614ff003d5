// A budget as configured: which logins it matches (BudgetRule) and what it allows
// (BudgetLimits), built and validated from one row of connbudget.budgets (BudgetRow).
// The same validation serves the table's trigger and the worker's loader.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/application_name.hpp"
#include "core/client_address.hpp"
#include "core/fixed_string.hpp"
#include "core/login_attributes.hpp"

namespace connbudget {

inline constexpr std::size_t kNameMax = 63;      // NAMEDATALEN - 1: names of budgets, roles, databases
inline constexpr std::size_t kPatternMax = 255;  // application_name LIKE patterns

enum class OnFull : std::uint8_t { Reject, Queue };
enum class Mode : std::uint8_t { Enforce, Monitor };

std::optional<OnFull> parse_on_full(std::string_view text) noexcept;
std::optional<Mode> parse_mode(std::string_view text) noexcept;
const char* to_string(OnFull value) noexcept;
const char* to_string(Mode value) noexcept;

// Names no configured budget may take: they are the implicit budgets.
bool is_reserved_budget_name(std::string_view name) noexcept;

struct BudgetRule {
  bool has_application_name = false;
  bool has_role = false;
  bool role_is_group = false;  // "+role": members of role_name (and the role itself)
  bool has_database = false;
  bool has_client_addr = false;
  FixedString<kPatternMax> application_name;
  FixedString<kNameMax> role_name;
  FixedString<kNameMax> database_name;
  AddressRange client_addr;

  // True if every condition that is set holds for the login.
  bool matches(const LoginAttributes& login) const noexcept;

  // An entitlement: the row names both an application_name and a role, so the name is
  // the role's. A login claims it if every condition but the role's holds.
  bool entitles() const noexcept { return has_application_name && has_role; }
  bool claimed_by(const LoginAttributes& login) const noexcept;

  friend bool operator==(const BudgetRule&, const BudgetRule&) noexcept = default;
};

struct BudgetLimits {
  static constexpr std::int32_t kUnlimited = -1;
  static constexpr std::int32_t kFromSetting = -1;  // queue_timeout / max_queue: use the GUC
  static constexpr std::int32_t kNeverReclaim = -1;  // idle_reclaim: sessions are never reclaimed

  std::int32_t max_connections = kUnlimited;
  std::int32_t reserved = 0;
  OnFull on_full = OnFull::Reject;
  std::int32_t queue_timeout_ms = kFromSetting;
  std::int32_t max_queue = kFromSetting;
  std::int32_t priority = 0;
  Mode mode = Mode::Enforce;
  // A session of this budget idle (outside a transaction) this long may be ended for a
  // waiting login (see core/reclaim.hpp).
  std::int32_t idle_reclaim_ms = kNeverReclaim;

  friend bool operator==(const BudgetLimits&, const BudgetLimits&) noexcept = default;
};

struct BudgetDefinition {
  FixedString<kNameMax> name;
  std::int32_t position = 0;
  BudgetRule rule;
  BudgetLimits limits;

  friend bool operator==(const BudgetDefinition&, const BudgetDefinition&) noexcept = default;
};

// One row of connbudget.budgets as SQL gives it (nullopt = SQL NULL).
struct BudgetRow {
  std::string_view name;
  std::int32_t position = 0;
  std::optional<std::string_view> application_name;
  std::optional<std::string_view> role_name;
  std::optional<std::string_view> database_name;
  std::optional<AddressRange> client_addr;
  std::int32_t max_connections = 0;
  std::int32_t reserved = 0;
  std::string_view on_full = "reject";
  std::optional<std::int64_t> queue_timeout_ms;
  std::optional<std::int32_t> max_queue;
  std::int32_t priority = 0;
  std::string_view mode = "enforce";
  std::optional<std::int64_t> idle_reclaim_ms;
  // Not a column: how this server cleans the application_name of a startup packet, which
  // decides what an application_name pattern can match.
  NameCleaning application_name_cleaning = NameCleaning::HexEscape;
};

struct DefinitionError {
  char message[320];
};

// Builds out from row, or says why the row is not a valid budget.
std::optional<DefinitionError> build_definition(const BudgetRow& row, BudgetDefinition& out) noexcept;

}  // namespace connbudget
