// The match index: which configured budgets a login can match, so that classification
// looks at a login's candidates only, not at every rule. Compiled from the configuration
// (in match order) outside the ledger's lock, into a block of shared memory no one reads
// until the ledger publishes it; immutable once published. Plain data, no pointers.
//
// Each rule is filed under one key, a condition every login it matches must meet (for an
// entitlement, every login that claims it): its application_name pattern's head (the part
// before the first '%': literal bytes and '_' wildcards, filed by shape, i.e. length and
// wildcard positions, and the literal bytes), else its role, its database, its "+group",
// its client address range (by family and prefix length); rules none of those index are
// candidates of every login. A login looks up one key per shape present, its role and
// groups, its database and one key per address shape, and visits the rules found in
// match order. Keys are 64-bit hashes: a collision only adds candidates, which are then
// checked in full, so the index is exact. A new backend pays a page fault for each shared
// page it first touches, so a login's lookups touch few: a filter of the keys in the
// header (up to three bits of one word per key) answers most lookups of absent keys
// without touching the table, and a candidate carries its budget's slot, so that a key
// with one rule is answered by its bucket alone, and a lookup's first access to the table
// is a write (FirstTouch), which maps that page alone. An index of few rules (up to 32 in
// the smallest header, 128 in the largest) keeps its lists in the header itself, in the
// filter's place (compact): its logins touch no page of the table. It answers only for a
// login whose application_name is ASCII (as every name a real login carries is: PostgreSQL
// cleans them), where '_' is one byte; for any other, classification scans.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/budget.hpp"
#include "core/first_touch.hpp"
#include "core/login_attributes.hpp"

namespace connbudget {

class MatchIndex {
 public:
  // At most this many application_name shapes and address shapes are indexed (the most
  // common ones); rules of the others are filed under another key, or not indexed.
  static constexpr std::size_t kMaxNameShapes = 32;
  static constexpr std::size_t kMaxAddressShapes = 16;
  // A login visits at most this many lists of candidates; with more it is scanned.
  static constexpr std::size_t kMaxLists = 64;

  // A rule to consider: its match order position and its budget's slot in the ledger.
  struct Candidate {
    std::int32_t rank = -1;
    std::int32_t slot = -1;
  };

  struct BuildEntry {
    std::uint64_t key = 0;
    std::uint64_t shape = 0;
    std::int32_t rank = 0;
    std::uint8_t kind = 0;
  };

  // What connbudget.worker shows about the live index.
  struct Summary {
    std::int32_t rules = 0;
    std::int32_t name_shapes = 0;
    std::int32_t address_shapes = 0;
    std::int32_t unindexed = 0;  // rules that are candidates of every login
    bool compact = false;  // the lists are in the header (no filter), not in the table
  };

  // The candidates of one login, visited in increasing rank (match order position).
  class Candidates {
   public:
    // False if the index cannot answer for this login: the caller scans.
    bool usable() const noexcept { return usable_; }
    // The next candidate, or one with rank -1 when there are no more.
    Candidate next() noexcept;

   private:
    friend class MatchIndex;
    void add(std::span<const Candidate> list) noexcept;
    std::array<std::span<const Candidate>, kMaxLists> lists_{};
    std::size_t count_ = 0;
    std::int32_t last_ = -1;
    bool usable_ = true;
  };

  // An index is two blocks: a small header (its shapes and key filter: every login reads
  // it, so the ledger keeps the live one beside its own header) and the table with the
  // lists. The header is plain bytes: a copy of it views the same table.
  static std::size_t header_bytes(std::int32_t max_budgets) noexcept;
  static std::size_t table_bytes(std::int32_t max_budgets) noexcept;

  // Views the two blocks (aligned for std::max_align_t).
  MatchIndex(void* header, void* table, std::int32_t max_budgets) noexcept;

  // Compiles the rules of definitions (in match order) into the blocks, using scratch
  // (one entry per definition). False, and an empty index, if they do not fit. The
  // candidates know their ranks only until bind().
  bool build(std::span<const BudgetDefinition> definitions, std::span<BuildEntry> scratch) noexcept;

  // Gives every candidate the slot of its rank (slot_of_rank: the ledger's match order).
  void bind(std::span<const std::int32_t> slot_of_rank) noexcept;

  // Marks the block as holding no index.
  void clear() noexcept;

  // How many rules it was built from; -1 if it holds no index.
  std::int32_t rules() const noexcept;

  Candidates candidates(const LoginAttributes& login) const noexcept;

  Summary summary() const noexcept;

 private:
  struct NameShape {
    std::uint64_t wildcards = 0;  // bit i: position i of the head is '_'
    std::uint8_t length = 0;      // bytes of the head
    bool exact = false;           // no '%': a matching name has exactly `length` bytes
  };
  struct AddressShape {
    std::uint8_t family = 0;
    std::uint8_t prefix_bits = 0;
  };
  struct Header {
    std::int32_t rules = -1;
    std::int32_t indexed = 0;  // postings[0, indexed) are filed under keys; the rest unindexed
    std::array<std::int32_t, 6> of_kind{};  // rules filed under each kind of key
    std::uint64_t mask = 0;  // the table in use: the first mask + 1 buckets (twice the keys at least)
    std::int32_t filter_hashes = 1;  // bits set per key: 3 while the filter has 3 bits per key or more
    std::int32_t name_shapes = 0;
    std::int32_t address_shapes = 0;
    std::array<NameShape, kMaxNameShapes> name_shape{};
    std::array<AddressShape, kMaxAddressShapes> address_shape{};
    // Compact: the postings and the buckets are in the header, where the filter would be
    // (an index of few rules: a login's lookups then touch no page of the table).
    bool compact = false;
    // Followed by the filter: filter_bits(max_budgets) bits; each key sets filter_hashes
    // bits of one 64-bit word (filter_word(), filter_mask()). Or, compact, by the postings
    // (aligned) and the buckets.
  };
  struct Bucket {
    std::uint64_t key = 0;
    std::int32_t count = 0;  // rules filed under the key; 0: empty
    std::int32_t first = 0;  // count > 1: where its postings start
    Candidate only;          // count 1: the rule itself
    FirstTouch touch;        // a lookup's first access to its table (32 bytes in all)
  };

  static std::size_t table_capacity(std::int32_t max_budgets) noexcept;
  static std::size_t filter_bits(std::int32_t max_budgets) noexcept;
  // The word of the filter a key's bits are in (from bits 40 up; the table's bucket comes
  // from the lowest), and those bits (from bits 20-37).
  std::size_t filter_word(std::uint64_t key) const noexcept { return (key >> 40) & (filter_.size() - 1); }
  std::uint64_t filter_mask(std::uint64_t key) const noexcept;
  std::span<const Candidate> lookup(std::uint64_t key) const noexcept;
  // Points postings_ and table_ at the table block, or (compact) at the header's own room
  // for its rules' postings and then the buckets.
  void view_lists() noexcept;
  // Picks the most common shapes of entries [0, n) whose kind is `kind` into out; returns how many.
  template <typename Shape, std::size_t N>
  static std::int32_t pick_shapes(std::span<BuildEntry> entries, std::uint8_t kind, std::array<Shape, N>& out,
                                  Shape (*decode)(std::uint64_t)) noexcept;

  Header* header_;
  void* table_block_;
  std::int32_t max_budgets_;
  std::span<std::uint64_t> filter_;
  std::span<Bucket> table_;
  std::span<Candidate> postings_;
};

}  // namespace connbudget
