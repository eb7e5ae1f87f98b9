// Fuzzes CsvReader: `shardps feed` and the CO2 example stream rows from CSV
// files a user supplies.
//
// Input: byte 0 picks the reader's flags (header row, skip bad rows); the
// rest is the CSV text.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "shardps/windowing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool has_header = (data[0] & 1) != 0;
  const bool skip_bad_rows = (data[0] & 2) != 0;
  std::istringstream in(
      std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  shardps::CsvReader reader(in, has_header, skip_bad_rows);
  std::vector<float> values;
  size_t columns = 0;
  for (;;) {
    auto more = reader.Next(&values);
    if (!more.ok() || !*more) break;
    // Every row has the first row's width (or was refused or skipped).
    if (columns == 0) columns = values.size();
    if (values.size() != columns) __builtin_trap();
  }
  if (!reader.header().empty()) (void)reader.Column(reader.header().back());
  (void)reader.Column("1");
  return 0;
}
