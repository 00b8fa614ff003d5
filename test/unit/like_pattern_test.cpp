// LIKE semantics of application_name patterns, checked against what PostgreSQL's LIKE says.
#include "core/like_pattern.hpp"

#include <gtest/gtest.h>

using connbudget::like_match;
using connbudget::like_pattern_error;

TEST(LikePattern, LiteralMatchesOnlyItself) {
  EXPECT_TRUE(like_match("backend", "backend"));
  EXPECT_FALSE(like_match("backend2", "backend"));
  EXPECT_FALSE(like_match("Backend", "backend"));  // case-sensitive, like LIKE
  EXPECT_TRUE(like_match("", ""));
  EXPECT_FALSE(like_match("", "a"));
}

TEST(LikePattern, PercentMatchesAnyRun) {
  EXPECT_TRUE(like_match("extraction_worker", "extraction%"));
  EXPECT_TRUE(like_match("extraction", "extraction%"));
  EXPECT_TRUE(like_match("", "%"));
  EXPECT_TRUE(like_match("semantic_worker_7", "%worker%"));
  EXPECT_TRUE(like_match("abcabcabd", "%abd"));
  EXPECT_FALSE(like_match("abcabcabx", "%abd"));
  EXPECT_TRUE(like_match("aXbXc", "a%b%c"));
  EXPECT_FALSE(like_match("aXbX", "a%b%c"));
  EXPECT_TRUE(like_match("abc", "%%%"));
}

TEST(LikePattern, UnderscoreMatchesOneCharacter) {
  EXPECT_TRUE(like_match("worker_1", "worker__"));
  EXPECT_FALSE(like_match("worker_10", "worker__"));
  EXPECT_FALSE(like_match("worker", "worker_"));
  EXPECT_TRUE(like_match("caf\xc3\xa9", "caf_"));  // é is one character, two bytes
  EXPECT_FALSE(like_match("caf\xc3\xa9", "caf__"));
}

TEST(LikePattern, BackslashMakesNextCharacterLiteral) {
  EXPECT_TRUE(like_match("100%", "100\\%"));
  EXPECT_FALSE(like_match("1000", "100\\%"));
  EXPECT_TRUE(like_match("a_b", "a\\_b"));
  EXPECT_FALSE(like_match("axb", "a\\_b"));
  EXPECT_TRUE(like_match("a\\b", "a\\\\b"));
  EXPECT_TRUE(like_match("xa_b", "%a\\_b"));
}

TEST(LikePattern, TrailingEscapeIsInvalidAndMatchesNothing) {
  EXPECT_STREQ(like_pattern_error("abc\\"), "LIKE pattern must not end with escape character");
  EXPECT_EQ(like_pattern_error("abc\\\\"), nullptr);
  EXPECT_EQ(like_pattern_error("a%b_c\\%"), nullptr);
  EXPECT_FALSE(like_match("abc", "abc\\"));
}

// Found by fuzz_matching: a lead byte without its continuation bytes is one byte, so it
// never swallows the escape after it.
TEST(LikePattern, MalformedLeadByteIsOneCharacter) {
  EXPECT_EQ(like_pattern_error("%\xdc\\\\"), nullptr);  // %, 0xdc, escaped backslash
  EXPECT_TRUE(like_match("\xdc\\\xdc\\", "%\xdc\\\\"));
  EXPECT_TRUE(like_match("\xdc%", "_\\%"));
  EXPECT_FALSE(like_match("\xdc", "__"));
}

TEST(LikePattern, ALiteralMatchesAWholeCharacterNeverPartOfOne) {
  // The text's first character is the 4-byte sequence ff 9c 9c 9c; the pattern's \xff is a
  // character of its own (no continuation bytes follow it there). Found by fuzz_matching:
  // matching inside a character put '%' off the text's character boundaries.
  EXPECT_FALSE(like_match("\xff\x9c\x9c\x9c", "\xff%"));
  EXPECT_TRUE(like_match("\xff\x9c\x9c\x9c", "\xff\x9c\x9c\x9c%"));
  EXPECT_TRUE(like_match("\xff\x9c\x9c\x9c", "_"));
  EXPECT_TRUE(like_match("a\xc3\xa9" "b", "a%b"));
  EXPECT_FALSE(like_match("\xc3\xa9", "\xc3%"));
}

TEST(LikePattern, MinLengthCountsLiteralsAndUnderscoresNotPercents) {
  EXPECT_EQ(connbudget::like_min_length(""), 0u);
  EXPECT_EQ(connbudget::like_min_length("%"), 0u);
  EXPECT_EQ(connbudget::like_min_length("a%b_c"), 4u);
  EXPECT_EQ(connbudget::like_min_length("100\\%"), 4u);  // an escaped % is a literal
}
