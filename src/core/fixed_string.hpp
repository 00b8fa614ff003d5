// FixedString: a bounded, NUL-terminated string stored inline (no heap pointer), so it
// can live in shared memory and be copied with the struct that holds it. Never allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace connbudget {

template <std::size_t Capacity>
class FixedString {
  static_assert(Capacity > 0 && Capacity < 65535);

 public:
  static constexpr std::size_t capacity = Capacity;

  // Stores text if it fits; returns false and leaves the string empty if it does not.
  bool assign(std::string_view text) noexcept {
    if (text.size() > Capacity) {
      clear();
      return false;
    }
    store(text);
    return true;
  }

  // Stores the longest prefix of text that fits, never splitting a UTF-8 sequence.
  void assign_truncated(std::string_view text) noexcept {
    std::size_t n = text.size() <= Capacity ? text.size() : Capacity;
    if (n < text.size())
      while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    store(text.substr(0, n));
  }

  void clear() noexcept { store({}); }

  std::string_view view() const noexcept { return {data_, length_}; }
  const char* c_str() const noexcept { return data_; }
  bool empty() const noexcept { return length_ == 0; }

  friend bool operator==(const FixedString& a, const FixedString& b) noexcept {
    return a.view() == b.view();
  }

 private:
  void store(std::string_view text) noexcept {
    if (!text.empty()) std::memcpy(data_, text.data(), text.size());  // an empty view may hold nullptr
    std::memset(data_ + text.size(), 0, Capacity + 1 - text.size());
    length_ = static_cast<std::uint16_t>(text.size());
  }

  std::uint16_t length_ = 0;
  char data_[Capacity + 1] = {};
};

}  // namespace connbudget
