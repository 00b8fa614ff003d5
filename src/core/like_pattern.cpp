// SQL LIKE matching (see like_pattern.hpp). Iterative with one backtrack point per '%',
// which is exact for LIKE and linear in practice.
#include "core/like_pattern.hpp"

#include <cstddef>
#include <cstring>

#include "core/core_only.hpp"

namespace connbudget {
namespace {

// Length of the character that starts at s[i]: a whole UTF-8 sequence, or one byte when the
// lead byte is not followed by its continuation bytes (so a malformed lead never swallows
// a backslash, '%' or '_', and matching agrees with like_pattern_error on where escapes are).
std::size_t char_length(std::string_view s, std::size_t i) noexcept {
  const auto lead = static_cast<unsigned char>(s[i]);
  const std::size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (n > s.size() - i) return 1;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  return n;
}

}  // namespace

bool like_match(std::string_view text, std::string_view pattern) noexcept {
  constexpr std::size_t none = std::string_view::npos;
  std::size_t t = 0, p = 0;
  std::size_t resume_p = none, resume_t = 0;  // where to retry after the last '%'

  while (t < text.size()) {
    if (p < pattern.size()) {
      const char c = pattern[p];
      if (c == '%') {
        resume_p = ++p;
        resume_t = t;
        continue;
      }
      if (c == '_') {
        t += char_length(text, t);
        ++p;
        continue;
      }
      std::size_t lp = p + (c == '\\' ? 1 : 0);
      if (lp < pattern.size()) {
        // A literal matches a whole character of the text, never the first bytes of a longer
        // one: so t stays on the text's character boundaries, which every '%' steps along.
        const std::size_t n = char_length(pattern, lp);
        if (n <= text.size() - t && char_length(text, t) == n &&
            std::memcmp(text.data() + t, pattern.data() + lp, n) == 0) {
          t += n;
          p = lp + n;
          continue;
        }
      }
    }
    if (resume_p == none) return false;
    resume_t += char_length(text, resume_t);
    t = resume_t;
    p = resume_p;
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

std::size_t like_min_length(std::string_view pattern) noexcept {
  std::size_t length = 0;
  for (std::size_t p = 0; p < pattern.size(); ++p) {
    if (pattern[p] == '%') continue;
    if (pattern[p] == '\\' && p + 1 < pattern.size()) ++p;
    ++length;  // '_' or a literal byte
  }
  return length;
}

const char* like_pattern_error(std::string_view pattern) noexcept {
  for (std::size_t p = 0; p < pattern.size(); ++p) {
    if (pattern[p] != '\\') continue;
    if (p + 1 == pattern.size()) return "LIKE pattern must not end with escape character";
    ++p;
  }
  return nullptr;
}

}  // namespace connbudget
