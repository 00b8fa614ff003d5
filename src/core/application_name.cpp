// The application_name a login carries (see application_name.hpp).
#include "core/application_name.hpp"

#include <algorithm>

#include "core/core_only.hpp"

namespace connbudget {

bool is_clean_application_name(std::string_view text) noexcept {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return is_clean_application_name_byte(static_cast<unsigned char>(c)); });
}

std::size_t pattern_for_cleaned_names(std::string_view pattern, NameCleaning cleaning,
                                      std::span<char> out) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t needed = 0;
  auto put = [&](char c) {
    if (needed + 1 < out.size()) out[needed] = c;
    ++needed;
  };
  for (const char c : pattern) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_clean_application_name_byte(byte)) {
      put(c);
    } else if (cleaning == NameCleaning::QuestionMark) {
      put('?');
    } else {
      put('\\');  // the server's backslash, escaped for LIKE
      put('\\');
      put('x');
      put(kHex[byte >> 4]);
      put(kHex[byte & 0xF]);
    }
  }
  if (!out.empty()) out[std::min(needed, out.size() - 1)] = '\0';
  return needed;
}

}  // namespace connbudget
