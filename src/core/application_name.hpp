// The application_name a login carries: PostgreSQL cleans the startup packet's value before
// anyone sees it, replacing every byte outside printable ASCII (version-dependent: see
// NameCleaning). So a budget pattern with such a byte can never match a real login; this
// says so and writes the pattern that matches what the server makes of such names. Pure.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace connbudget {

enum class NameCleaning : unsigned char {
  QuestionMark,  // PostgreSQL 15: each such byte becomes '?'
  HexEscape,     // PostgreSQL 16 and later: each such byte becomes the four characters \xNN
};

// The most of a login's application_name that counts: as pg_stat_activity shows it
// (NAMEDATALEN - 1 bytes), and so as much as a budget pattern is matched against.
inline constexpr std::size_t kApplicationNameMax = 63;

// The part of a (cleaned, so ASCII) application_name that counts.
constexpr std::string_view counted_application_name(std::string_view name) noexcept {
  return name.substr(0, kApplicationNameMax);
}

// True if PostgreSQL passes this byte of an application_name on unchanged.
constexpr bool is_clean_application_name_byte(unsigned char c) noexcept { return c >= 32 && c <= 126; }

// True if every byte of text is passed on unchanged.
bool is_clean_application_name(std::string_view text) noexcept;

// Writes into out (NUL-terminated, truncated to fit) the LIKE pattern that matches, in a
// real login, what `pattern` means to match: each byte outside printable ASCII written as
// the server writes it, a backslash escaped for LIKE. Returns the length it needed.
std::size_t pattern_for_cleaned_names(std::string_view pattern, NameCleaning cleaning,
                                      std::span<char> out) noexcept;

}  // namespace connbudget
