// What a login's application_name can be after the server cleaned it, and the budget
// patterns that can match it, on PostgreSQL 15 ('?') and 16+ ("\xNN").
#include "core/application_name.hpp"

#include <gtest/gtest.h>

#include <string>

#include "core/budget.hpp"
#include "core/like_pattern.hpp"

using namespace connbudget;

namespace {

std::string rewritten(std::string_view pattern, NameCleaning cleaning) {
  char out[64];
  const std::size_t needed = pattern_for_cleaned_names(pattern, cleaning, out);
  EXPECT_LT(needed, sizeof out);
  return out;
}

std::string problem_with_pattern(std::string_view pattern, NameCleaning cleaning) {
  BudgetRow row;
  row.name = "cafe";
  row.max_connections = 1;
  row.application_name = pattern;
  row.application_name_cleaning = cleaning;
  BudgetDefinition def;
  const auto error = build_definition(row, def);
  return error ? error->message : "";
}

}  // namespace

TEST(ApplicationName, OnlyPrintableAsciiIsClean) {
  EXPECT_TRUE(is_clean_application_name("worker-1 (batch) ~%_\\"));
  EXPECT_TRUE(is_clean_application_name(""));
  EXPECT_FALSE(is_clean_application_name("caf\xc3\xa9"));
  EXPECT_FALSE(is_clean_application_name("tab\there"));
  EXPECT_FALSE(is_clean_application_name("del\x7f"));
}

TEST(ApplicationName, PatternForPostgres15ReplacesEachByteWithQuestionMark) {
  EXPECT_EQ(rewritten("caf\xc3\xa9%", NameCleaning::QuestionMark), "caf??%");
}

TEST(ApplicationName, PatternForPostgres16EscapesEachByteForLike) {
  const std::string pattern = rewritten("caf\xc3\xa9%", NameCleaning::HexEscape);
  EXPECT_EQ(pattern, "caf\\\\xc3\\\\xa9%");
  // What a PostgreSQL 16 login named "café-7" carries, and the rewritten pattern matches it.
  EXPECT_TRUE(like_match("caf\\xc3\\xa9-7", pattern));
  EXPECT_FALSE(like_match("caf?" "?-7", pattern));
}

TEST(ApplicationName, PatternKeepsItsOwnEscapesAndWildcards) {
  EXPECT_EQ(rewritten("a\\_b\x01", NameCleaning::HexEscape), "a\\_b\\\\x01");
}

TEST(ApplicationName, RewriteTruncatesButReportsWhatItNeeded) {
  char out[4];
  EXPECT_EQ(pattern_for_cleaned_names("\xff\xff", NameCleaning::HexEscape, out), 10u);
  EXPECT_STREQ(out, "\\\\x");
}

TEST(ApplicationName, BudgetRefusesAPatternNoLoginCanCarryAndSaysWhatToWrite) {
  EXPECT_EQ(problem_with_pattern("caf\xc3\xa9", NameCleaning::QuestionMark),
            "application_name pattern \"caf\xc3\xa9\" of budget \"cafe\" can never match: the server writes bytes "
            "outside printable ASCII in a login's application_name as \"?\"; write \"caf??\"");
  EXPECT_EQ(problem_with_pattern("caf\xc3\xa9", NameCleaning::HexEscape),
            "application_name pattern \"caf\xc3\xa9\" of budget \"cafe\" can never match: the server writes bytes "
            "outside printable ASCII in a login's application_name as \\xNN; write \"caf\\\\xc3\\\\xa9\"");
  EXPECT_EQ(problem_with_pattern("caf??", NameCleaning::QuestionMark), "");
  EXPECT_EQ(problem_with_pattern("caf\\\\xc3\\\\xa9", NameCleaning::HexEscape), "");
}

TEST(ApplicationName, OnlyItsFirst63BytesCount) {
  const std::string long_name = std::string(100, 'a') + "tail";
  EXPECT_EQ(counted_application_name(long_name), std::string(63, 'a'));
  EXPECT_EQ(counted_application_name("short"), "short");
}

TEST(ApplicationName, APatternOnlyLongerNamesMatchIsRefused) {
  const std::string pattern = "%" + std::string(64, 'a');
  EXPECT_EQ(problem_with_pattern(pattern, NameCleaning::HexEscape),
            "application_name pattern of budget \"cafe\" can never match: it matches only names longer than the 63 "
            "bytes of a login's application_name that count");
  EXPECT_EQ(problem_with_pattern("%" + std::string(63, 'a'), NameCleaning::HexEscape), "");
}
