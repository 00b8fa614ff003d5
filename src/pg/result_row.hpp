// ResultRow: one row of a set-returning function's result, built column by column and
// added to the tuplestore that InitMaterializedSRF set up.
#pragma once

extern "C" {
#include "postgres.h"

#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

#include <array>
#include <cstdint>
#include <string_view>

namespace connbudget::pg {

template <std::size_t Columns>
class ResultRow {
 public:
  void null() { nulls_[next_++] = true; }
  void value(Datum datum) { values_[next_++] = datum; }
  void text(std::string_view s) {
    value(PointerGetDatum(cstring_to_text_with_len(s.data(), static_cast<int>(s.size()))));
  }
  // Bytes from a startup packet (names of a role or a database that another database's
  // encoding created): valid in this database's encoding, each byte of a sequence that is
  // not replaced by '?', so that clients can read the row.
  void text_from_outside(std::string_view s) {
    const int encoding = GetDatabaseEncoding();
    StringInfoData clean;
    initStringInfo(&clean);
    for (std::size_t at = 0; at < s.size();) {
      const int n = pg_encoding_verifymbchar(encoding, s.data() + at, static_cast<int>(s.size() - at));
      if (n > 0) {
        appendBinaryStringInfo(&clean, s.data() + at, n);
        at += static_cast<std::size_t>(n);
      } else {
        appendStringInfoChar(&clean, '?');
        ++at;
      }
    }
    text({clean.data, static_cast<std::size_t>(clean.len)});
  }
  void integer(std::int32_t v) { value(Int32GetDatum(v)); }
  void bigint(std::int64_t v) { value(Int64GetDatum(v)); }
  void number(double v) { value(Float8GetDatum(v)); }
  void boolean(bool v) { value(BoolGetDatum(v)); }
  void timestamp(TimestampTz t) { t ? value(TimestampTzGetDatum(t)) : null(); }  // 0: never
  void emit(FunctionCallInfo fcinfo) {
    Assert(next_ == Columns);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values_.data(), nulls_.data());
  }

 private:
  std::array<Datum, Columns> values_{};
  std::array<bool, Columns> nulls_{};
  std::size_t next_ = 0;
};

}  // namespace connbudget::pg
