// Compiling and reading the match index (see match_index.hpp).
#include "core/match_index.hpp"

#include <algorithm>
#include <string_view>

#include "core/core_only.hpp"

namespace connbudget {
namespace {

enum Kind : std::uint8_t { kUnindexed = 0, kName, kRole, kDatabase, kGroup, kAddress };

constexpr std::size_t kAlign = alignof(std::max_align_t);
constexpr std::size_t aligned(std::size_t n) noexcept { return (n + kAlign - 1) / kAlign * kAlign; }

// FNV-1a over the key's parts, then a final mix so that the low bits spread.
class KeyHash {
 public:
  explicit KeyHash(std::uint8_t kind, std::uint32_t shape = 0) noexcept {
    add(kind);
    for (int i = 0; i < 4; ++i) add(static_cast<std::uint8_t>(shape >> (8 * i)));
  }
  void add(std::uint8_t byte) noexcept { h_ = (h_ ^ byte) * 0x100000001b3ull; }
  void add(std::string_view text) noexcept {
    for (const char c : text) add(static_cast<std::uint8_t>(c));
  }
  std::uint64_t value() const noexcept {
    std::uint64_t z = h_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ull;
};

std::uint64_t name_key(std::uint8_t kind, std::string_view name) noexcept {
  KeyHash h(kind);
  h.add(name);
  return h.value();
}

// Heads longer than this are not indexed by name (a shape packs into 64 bits).
constexpr std::size_t kMaxHead = 56;

// The head of an application_name pattern: up to the first unescaped '%'.
struct Head {
  bool indexable = false;  // at most kMaxHead positions, at least one literal byte
  std::uint64_t wildcards = 0;  // bit i: position i is '_'
  std::uint8_t length = 0;
  bool exact = false;  // no '%'
  std::array<char, kMaxHead> bytes{};  // at the literal positions

  // The shape: wildcards in bits 0-55, length in bits 56-62, exact in bit 63.
  std::uint64_t shape() const noexcept {
    return wildcards | std::uint64_t{length} << 56 | (exact ? std::uint64_t{1} << 63 : 0);
  }
};

Head head_of(std::string_view pattern) noexcept {
  Head head;
  std::size_t at = 0, length = 0;
  bool literal = false;
  for (; at < pattern.size() && pattern[at] != '%'; ++at, ++length) {
    if (length == kMaxHead) return head;
    char c = pattern[at];
    if (c == '\\') {
      if (++at == pattern.size()) return head;  // a lone '\' at the end: matches nothing
      c = pattern[at];
    } else if (c == '_') {
      head.wildcards |= std::uint64_t{1} << length;
      continue;
    }
    head.bytes[length] = c;
    literal = true;
  }
  head.length = static_cast<std::uint8_t>(length);
  head.exact = at == pattern.size();
  head.indexable = literal;
  return head;
}

// The key of a name that fits shape number `index`: its bytes at the shape's literal positions.
std::uint64_t name_shape_key(std::uint32_t index, std::uint64_t wildcards, std::uint8_t length,
                             const char* bytes) noexcept {
  KeyHash h(kName, index);
  for (std::uint8_t i = 0; i < length; ++i)
    if (!(wildcards >> i & 1)) h.add(static_cast<std::uint8_t>(bytes[i]));
  return h.value();
}

std::uint64_t address_key(std::uint32_t index, const ClientAddress& address, std::uint8_t prefix_bits) noexcept {
  KeyHash h(kAddress, index);
  const int max_bits = 8 * ClientAddress::byte_length(address.family);
  const int bits = prefix_bits < max_bits ? prefix_bits : max_bits;
  for (int i = 0; i < bits / 8; ++i) h.add(address.bytes[i]);
  if (const int rest = bits % 8) h.add(static_cast<std::uint8_t>(address.bytes[bits / 8] & (0xFF << (8 - rest))));
  return h.value();
}

bool is_ascii(std::string_view text) noexcept {
  return std::ranges::all_of(text, [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

MatchIndex::Candidate MatchIndex::Candidates::next() noexcept {
  for (;;) {
    std::size_t best = count_;
    for (std::size_t i = 0; i < count_; ++i)
      if (!lists_[i].empty() && (best == count_ || lists_[i].front().rank < lists_[best].front().rank)) best = i;
    if (best == count_) return Candidate{};
    const Candidate candidate = lists_[best].front();
    lists_[best] = lists_[best].subspan(1);
    if (candidate.rank == last_) continue;  // the same list found twice (a role listed twice, a collision)
    last_ = candidate.rank;
    return candidate;
  }
}

void MatchIndex::Candidates::add(std::span<const Candidate> list) noexcept {
  if (list.empty()) return;
  for (std::size_t i = 0; i < count_; ++i)
    if (lists_[i].data() == list.data()) return;
  if (count_ == lists_.size()) {
    usable_ = false;
    return;
  }
  lists_[count_++] = list;
}

std::size_t MatchIndex::table_capacity(std::int32_t max_budgets) noexcept {
  std::size_t size = 16;
  while (size < 2 * static_cast<std::size_t>(max_budgets)) size *= 2;
  return size;
}

// About 8 bits per budget, from 4 KB to 16 KB, so that the live index header shares the
// window of shared memory that one fault maps in with the ledger's header and the first
// session slots (see ledger.cpp). With 16 KB and 3 bits per key, a lookup of an absent key
// among 10,000 others passes about one time in 80 (with 1 bit, one in 14).
std::size_t MatchIndex::filter_bits(std::int32_t max_budgets) noexcept {
  std::size_t bits = 4096 * 8;
  while (bits < 8 * static_cast<std::size_t>(max_budgets) && bits < 16384 * 8) bits *= 2;
  return bits;
}

std::size_t MatchIndex::header_bytes(std::int32_t max_budgets) noexcept {
  return aligned(sizeof(Header)) + aligned(filter_bits(max_budgets) / 8);
}

std::size_t MatchIndex::table_bytes(std::int32_t max_budgets) noexcept {
  return aligned(table_capacity(max_budgets) * sizeof(Bucket)) +
         aligned(static_cast<std::size_t>(max_budgets) * sizeof(Candidate));
}

MatchIndex::MatchIndex(void* header, void* table, std::int32_t max_budgets) noexcept
    : header_(static_cast<Header*>(header)), table_block_(table), max_budgets_(max_budgets) {
  filter_ = {reinterpret_cast<std::uint64_t*>(static_cast<unsigned char*>(header) + aligned(sizeof(Header))),
             filter_bits(max_budgets) / 64};
  view_lists();
}

void MatchIndex::view_lists() noexcept {
  if (header_->compact) {
    auto* bytes = reinterpret_cast<unsigned char*>(filter_.data());
    postings_ = {reinterpret_cast<Candidate*>(bytes), static_cast<std::size_t>(header_->rules)};
    bytes += aligned(postings_.size_bytes());
    table_ = {reinterpret_cast<Bucket*>(bytes), (filter_.size_bytes() - aligned(postings_.size_bytes())) / sizeof(Bucket)};
    return;
  }
  auto* bytes = static_cast<unsigned char*>(table_block_);
  postings_ = {reinterpret_cast<Candidate*>(bytes), static_cast<std::size_t>(max_budgets_)};
  bytes += aligned(postings_.size_bytes());
  table_ = {reinterpret_cast<Bucket*>(bytes), table_capacity(max_budgets_)};
}

void MatchIndex::clear() noexcept {
  *header_ = Header();
  header_->rules = -1;
  std::ranges::fill(filter_, 0);
  view_lists();
}

std::int32_t MatchIndex::rules() const noexcept { return header_->rules; }

std::uint64_t MatchIndex::filter_mask(std::uint64_t key) const noexcept {
  std::uint64_t mask = std::uint64_t{1} << (key >> 20 & 63);
  if (header_->filter_hashes == 3) mask |= std::uint64_t{1} << (key >> 26 & 63) | std::uint64_t{1} << (key >> 32 & 63);
  return mask;
}

template <typename Shape, std::size_t N>
std::int32_t MatchIndex::pick_shapes(std::span<BuildEntry> entries, std::uint8_t kind, std::array<Shape, N>& out,
                                     Shape (*decode)(std::uint64_t)) noexcept {
  // Entries of that kind carry their shape in `shape`; count each shape's rules.
  std::ranges::sort(entries, [kind](const BuildEntry& a, const BuildEntry& b) {
    if ((a.kind == kind) != (b.kind == kind)) return a.kind == kind;
    return a.shape < b.shape;
  });
  std::array<std::pair<std::size_t, std::uint64_t>, N> best{};  // (rules, shape), most first
  std::size_t picked = 0;
  for (std::size_t i = 0; i < entries.size() && entries[i].kind == kind;) {
    std::size_t j = i;
    while (j < entries.size() && entries[j].kind == kind && entries[j].shape == entries[i].shape) ++j;
    const std::pair<std::size_t, std::uint64_t> run{j - i, entries[i].shape};
    std::size_t at = picked < N ? picked++ : N;
    while (at > 0 && best[at - 1].first < run.first) {
      if (at < N) best[at] = best[at - 1];
      --at;
    }
    if (at < N) best[at] = run;
    i = j;
  }
  for (std::size_t i = 0; i < picked; ++i) out[i] = decode(best[i].second);
  std::ranges::sort(entries, {}, &BuildEntry::rank);
  return static_cast<std::int32_t>(picked);
}

bool MatchIndex::build(std::span<const BudgetDefinition> definitions, std::span<BuildEntry> scratch) noexcept {
  clear();
  const std::size_t n = definitions.size();
  if (n > postings_.size() || scratch.size() < n) return false;
  const std::span<BuildEntry> entries = scratch.first(n);
  Header& header = *header_;

  // The most common application_name head shapes.
  for (std::size_t i = 0; i < n; ++i) {
    const BudgetRule& rule = definitions[i].rule;
    entries[i] = BuildEntry{.rank = static_cast<std::int32_t>(i)};
    if (!rule.has_application_name) continue;
    const Head head = head_of(rule.application_name.view());
    if (!head.indexable) continue;
    entries[i].kind = kName;
    entries[i].shape = head.shape();
  }
  header.name_shapes = pick_shapes<NameShape>(entries, kName, header.name_shape, [](std::uint64_t shape) {
    return NameShape{.wildcards = shape & ((std::uint64_t{1} << 56) - 1),
                     .length = static_cast<std::uint8_t>(shape >> 56 & 0x7F),
                     .exact = (shape >> 63) != 0};
  });

  // Each rule's key: its head if its shape is indexed, else its role, database, group or
  // (the role never counts for an entitlement) its address.
  for (std::size_t i = 0; i < n; ++i) {
    const BudgetRule& rule = definitions[i].rule;
    BuildEntry& entry = entries[i];
    entry.kind = kUnindexed;
    if (rule.has_application_name) {
      const Head head = head_of(rule.application_name.view());
      for (std::int32_t s = 0; head.indexable && s < header.name_shapes; ++s) {
        const NameShape& shape = header.name_shape[s];
        if (shape.length != head.length || shape.exact != head.exact || shape.wildcards != head.wildcards) continue;
        entry.kind = kName;
        entry.key = name_shape_key(static_cast<std::uint32_t>(s), head.wildcards, head.length, head.bytes.data());
        break;
      }
      if (entry.kind == kName) continue;
    }
    if (rule.has_role && !rule.role_is_group && !rule.entitles()) {
      entry.kind = kRole;
      entry.key = name_key(kRole, rule.role_name.view());
    } else if (rule.has_database) {
      entry.kind = kDatabase;
      entry.key = name_key(kDatabase, rule.database_name.view());
    } else if (rule.has_role && !rule.entitles()) {
      entry.kind = kGroup;
      entry.key = name_key(kGroup, rule.role_name.view());
    } else if (rule.has_client_addr && rule.client_addr.network.family != AddressFamily::None) {
      entry.kind = kAddress;
      entry.shape = static_cast<std::uint64_t>(rule.client_addr.network.family) << 8 | rule.client_addr.prefix_bits;
    }
  }
  header.address_shapes = pick_shapes<AddressShape>(entries, kAddress, header.address_shape, [](std::uint64_t shape) {
    return AddressShape{.family = static_cast<std::uint8_t>(shape >> 8), .prefix_bits = static_cast<std::uint8_t>(shape)};
  });
  for (BuildEntry& entry : entries) {
    if (entry.kind != kAddress) continue;
    const AddressRange& range = definitions[static_cast<std::size_t>(entry.rank)].rule.client_addr;
    entry.kind = kUnindexed;
    for (std::int32_t s = 0; s < header.address_shapes; ++s) {
      const AddressShape& shape = header.address_shape[s];
      if (shape.family != static_cast<std::uint8_t>(range.network.family) || shape.prefix_bits != range.prefix_bits)
        continue;
      entry.kind = kAddress;
      entry.key = address_key(static_cast<std::uint32_t>(s), range.network, range.prefix_bits);
    }
  }

  // Postings: the indexed rules by key, each key's in match order; then the unindexed ones.
  std::ranges::sort(entries, [](const BuildEntry& a, const BuildEntry& b) {
    if ((a.kind == kUnindexed) != (b.kind == kUnindexed)) return b.kind == kUnindexed;
    if (a.kind != kUnindexed && a.key != b.key) return a.key < b.key;
    return a.rank < b.rank;
  });
  // A table as small as the rules allow, so that a login's lookups touch few pages; in the
  // header, if it fits there.
  std::size_t used = 16;
  while (used < 2 * n) used *= 2;
  header.rules = static_cast<std::int32_t>(n);
  header.compact = aligned(n * sizeof(Candidate)) + used * sizeof(Bucket) <= filter_.size_bytes();
  view_lists();
  const std::size_t mask = used - 1;
  header.mask = mask;
  std::ranges::fill(table_.first(used), Bucket{});
  std::size_t keys = 0;
  for (std::size_t i = 0; i < n && entries[i].kind != kUnindexed; ++i)
    keys += i == 0 || entries[i].key != entries[i - 1].key;
  header.filter_hashes = filter_.size() * 64 >= 3 * keys ? 3 : 1;
  std::size_t i = 0;
  for (; i < n && entries[i].kind != kUnindexed;) {
    std::size_t j = i;
    for (; j < n && entries[j].kind != kUnindexed && entries[j].key == entries[i].key; ++j)
      postings_[j] = Candidate{.rank = entries[j].rank};
    const std::uint64_t key = entries[i].key;
    std::size_t pos = key & mask;
    while (table_[pos].count != 0) pos = (pos + 1) & mask;  // at most half full: a free bucket exists
    table_[pos] = Bucket{.key = key,
                         .count = static_cast<std::int32_t>(j - i),
                         .first = static_cast<std::int32_t>(i),
                         .only = Candidate{.rank = entries[i].rank},
                         .touch = {}};
    if (!header.compact) filter_[filter_word(key)] |= filter_mask(key);
    i = j;
  }
  header.indexed = static_cast<std::int32_t>(i);
  for (; i < n; ++i) postings_[i] = Candidate{.rank = entries[i].rank};
  for (const BuildEntry& entry : entries) ++header.of_kind[entry.kind];
  return true;
}

void MatchIndex::bind(std::span<const std::int32_t> slot_of_rank) noexcept {
  if (header_->rules < 0) return;
  for (Bucket& bucket : table_.first(header_->mask + 1))
    if (bucket.count == 1) bucket.only.slot = slot_of_rank[static_cast<std::size_t>(bucket.only.rank)];
  for (Candidate& posting : postings_.first(static_cast<std::size_t>(header_->rules)))
    posting.slot = slot_of_rank[static_cast<std::size_t>(posting.rank)];
}

std::span<const MatchIndex::Candidate> MatchIndex::lookup(std::uint64_t key) const noexcept {
  const std::size_t mask = header_->mask;
  if (!header_->compact) {
    const std::uint64_t bits = filter_mask(key);
    if ((filter_[filter_word(key)] & bits) != bits) return {};
    table_[key & mask].touch.touch();  // a compact index's buckets are in the mapped header
  }
  for (std::size_t pos = key & mask; table_[pos].count != 0; pos = (pos + 1) & mask) {
    const Bucket& bucket = table_[pos];
    if (bucket.key != key) continue;
    if (bucket.count == 1) return {&bucket.only, 1};
    return std::span<const Candidate>(postings_).subspan(static_cast<std::size_t>(bucket.first),
                                                        static_cast<std::size_t>(bucket.count));
  }
  return {};
}

MatchIndex::Candidates MatchIndex::candidates(const LoginAttributes& login) const noexcept {
  Candidates found;
  const Header& header = *header_;
  if (header.rules < 0 || !is_ascii(login.application_name)) {
    found.usable_ = false;
    return found;
  }
  const std::string_view name = login.application_name;
  for (std::int32_t s = 0; s < header.name_shapes; ++s) {
    const NameShape& shape = header.name_shape[s];
    if (shape.exact ? name.size() != shape.length : name.size() < shape.length) continue;
    found.add(lookup(name_shape_key(static_cast<std::uint32_t>(s), shape.wildcards, shape.length, name.data())));
  }
  // Only kinds some rule is filed under: each lookup may touch another page of the table.
  if (header.of_kind[kRole] > 0) found.add(lookup(name_key(kRole, login.role_name)));
  if (header.of_kind[kDatabase] > 0) found.add(lookup(name_key(kDatabase, login.database_name)));
  if (header.of_kind[kGroup] > 0) {
    found.add(lookup(name_key(kGroup, login.role_name)));
    for (const std::string_view group : login.member_of) found.add(lookup(name_key(kGroup, group)));
  }
  for (std::int32_t s = 0; s < header.address_shapes; ++s) {
    const AddressShape& shape = header.address_shape[s];
    if (shape.family != static_cast<std::uint8_t>(login.client_addr.family)) continue;
    found.add(lookup(address_key(static_cast<std::uint32_t>(s), login.client_addr, shape.prefix_bits)));
  }
  found.add(std::span<const Candidate>(postings_).subspan(static_cast<std::size_t>(header.indexed),
                                                         static_cast<std::size_t>(header.rules - header.indexed)));
  return found;
}

MatchIndex::Summary MatchIndex::summary() const noexcept {
  const Header& header = *header_;
  if (header.rules < 0) return {};
  return Summary{header.rules, header.name_shapes, header.address_shapes, header.rules - header.indexed,
                 header.compact};
}

}  // namespace connbudget
