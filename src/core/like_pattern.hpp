// SQL LIKE matching for application_name patterns: '%' any run of characters, '_' one
// character (a whole UTF-8 sequence), '\' makes the next character literal. Case-sensitive,
// like PostgreSQL's LIKE. Pure functions; no allocation.
#pragma once

#include <string_view>

namespace connbudget {

// True if text matches pattern. A pattern that ends in a lone '\' matches nothing.
bool like_match(std::string_view text, std::string_view pattern) noexcept;

// Null if pattern is a valid LIKE pattern, else why it is not (PostgreSQL's wording).
const char* like_pattern_error(std::string_view pattern) noexcept;

// The fewest bytes a text matching the (valid) pattern can have.
std::size_t like_min_length(std::string_view pattern) noexcept;

}  // namespace connbudget
