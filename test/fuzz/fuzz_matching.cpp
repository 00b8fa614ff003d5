// libFuzzer target: budget matching. For any valid LIKE pattern and any text, like_match()
// agrees with a plain recursive definition of LIKE (memoised), a text that matches is at
// least like_min_length() long, and a pattern rewritten for cleaned names
// (pattern_for_cleaned_names) is valid and matches the cleaned form of the pattern's own
// literal text. Input: pattern, a NUL byte, text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/application_name.hpp"
#include "core/like_pattern.hpp"

namespace {

using connbudget::like_match;

// One character: a lead byte and the continuation bytes it announces, or a lone byte.
std::size_t char_length(std::string_view s, std::size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const std::size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  std::size_t continuation = 0;
  while (continuation + 1 < n && i + continuation + 1 < s.size() &&
         (static_cast<unsigned char>(s[i + continuation + 1]) >> 6) == 2)
    ++continuation;
  return continuation + 1 == n ? n : 1;
}

// LIKE by its definition: % any run of characters (whole UTF-8 sequences), _ one, \ quotes.
struct Reference {
  std::string_view text, pattern;
  std::vector<signed char> memo;  // (t, p) -> -1 unknown, 0, 1

  bool match(std::size_t t, std::size_t p) {
    signed char& known = memo[t * (pattern.size() + 1) + p];
    if (known >= 0) return known;
    bool result;
    if (p == pattern.size()) {
      result = t == text.size();
    } else if (pattern[p] == '%') {
      result = false;
      for (std::size_t at = t;; at += char_length(text, at)) {
        if (match(at, p + 1)) {
          result = true;
          break;
        }
        if (at >= text.size()) break;
      }
    } else if (pattern[p] == '_') {
      result = t < text.size() && match(t + char_length(text, t), p + 1);
    } else {
      const std::size_t lp = pattern[p] == '\\' ? p + 1 : p;
      const std::size_t n = char_length(pattern, lp);
      // Characters are equal, not byte prefixes: the text's character there has the same bytes.
      result = t < text.size() && char_length(text, t) == n && text.compare(t, n, pattern.substr(lp, n)) == 0 &&
               match(t + n, lp + n);
    }
    known = result;
    return result;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  if (split == std::string_view::npos || size > 256) return 0;
  const std::string_view pattern = input.substr(0, split), text = input.substr(split + 1);
  if (connbudget::like_pattern_error(pattern)) return 0;

  Reference reference{text, pattern, std::vector<signed char>((text.size() + 1) * (pattern.size() + 1), -1)};
  const bool matched = like_match(text, pattern);
  if (matched != reference.match(0, 0)) std::abort();
  if (matched && text.size() < connbudget::like_min_length(pattern)) std::abort();

  // A pattern with bytes no login carries, rewritten, matches what the server makes of a
  // name holding those bytes (here: the pattern's literal characters, if it has no
  // wildcard).
  if (pattern.find_first_of("%_\\") == std::string_view::npos) {
    for (const auto cleaning : {connbudget::NameCleaning::QuestionMark, connbudget::NameCleaning::HexEscape}) {
      std::string rewritten(pattern.size() * 5 + 1, '\0');
      rewritten.resize(connbudget::pattern_for_cleaned_names(pattern, cleaning, rewritten));
      std::string cleaned;
      for (const char c : pattern) {
        const auto b = static_cast<unsigned char>(c);
        if (connbudget::is_clean_application_name_byte(b)) {
          cleaned += c;
        } else if (cleaning == connbudget::NameCleaning::QuestionMark) {
          cleaned += '?';
        } else {
          static constexpr char kHex[] = "0123456789abcdef";
          cleaned += "\\x";
          cleaned += kHex[b >> 4];
          cleaned += kHex[b & 0xF];
        }
      }
      if (connbudget::like_pattern_error(rewritten) || !like_match(cleaned, rewritten)) std::abort();
    }
  }
  return 0;
}
