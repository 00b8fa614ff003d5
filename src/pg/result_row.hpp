// ResultRow: one row of a set-returning function's result, built column by column and
// added to the tuplestore that InitMaterializedSRF set up.
#pragma once

extern "C" {
#include "postgres.h"

#include "funcapi.h"
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
