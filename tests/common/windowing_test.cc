// Windowing against windows computed by hand.
#include "shardps/windowing.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>
#include <vector>

namespace shardps {
namespace {

using Catch::Matchers::Contains;

TEST_CASE("csv reader reads a header and numeric rows", "[windowing]") {
  std::istringstream in("t, value ,label\r\n1,2.5,3\n\n4,-5e-1,6\n");
  CsvReader csv(in, /*has_header=*/true, /*skip_bad_rows=*/false);
  std::vector<float> row;
  REQUIRE(*csv.Next(&row));
  CHECK(row == std::vector<float>{1, 2.5f, 3});
  CHECK(csv.header() == std::vector<std::string>{"t", "value", "label"});
  REQUIRE(*csv.Next(&row));
  CHECK(row == std::vector<float>{4, -0.5f, 6});
  CHECK_FALSE(*csv.Next(&row));
  CHECK(*csv.Column("label") == 2);
  CHECK(*csv.Column("1") == 1);
  CHECK_THAT(csv.Column("nope").status().ToString(), Contains("columns: t"));
}

TEST_CASE("csv reader names the line and column of a bad row", "[windowing]") {
  std::vector<float> row;
  {
    std::istringstream in("a,b\n1,2\n3,x\n");
    CsvReader csv(in, true, false);
    REQUIRE(*csv.Next(&row));
    auto bad = csv.Next(&row);
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.status().ToString(),
               Contains("line 3, column 2: 'x' is not a finite number"));
  }
  {
    std::istringstream in("1,2\n3\n4,5\n6,nan\n7,8\n");
    CsvReader csv(in, false, /*skip_bad_rows=*/true);
    std::vector<float> seen;
    while (*csv.Next(&row)) seen.push_back(row[0]);
    CHECK(seen == std::vector<float>{1, 4, 7});
    CHECK(csv.skipped() == 2);
  }
  {
    std::istringstream in("1,2\n3\n");
    CsvReader csv(in, false, false);
    REQUIRE(*csv.Next(&row));
    CHECK_THAT(csv.Next(&row).status().ToString(),
               Contains("line 2: 1 columns, expected 2"));
  }
}

TEST_CASE("windower emits hand-computed windows and labels", "[windowing]") {
  // 10 rows of two columns: x = t, y = 100 + t.
  WindowOptions o;
  o.window = 3;
  o.horizon = 2;
  o.stride = 2;
  o.features = {0, 1};
  o.target = 1;
  REQUIRE(ValidateWindowOptions(o, 2).ok());
  Windower w(o, 2);
  std::vector<std::vector<float>> windows, labels;
  for (int t = 0; t < 10; ++t) {
    const float row[2] = {float(t), float(100 + t)};
    w.Add(row, [&](const float* win, const float* lab) {
      windows.emplace_back(win, win + 6);
      labels.emplace_back(lab, lab + 2);
    });
  }
  // Starts 0, 2, 4 fit (start + 5 <= 10); start 6 would need row 10.
  REQUIRE(windows.size() == 3);
  CHECK(windows[0] == std::vector<float>{0, 100, 1, 101, 2, 102});
  CHECK(labels[0] == std::vector<float>{103, 104});
  CHECK(windows[1] == std::vector<float>{2, 102, 3, 103, 4, 104});
  CHECK(labels[1] == std::vector<float>{105, 106});
  CHECK(windows[2] == std::vector<float>{4, 104, 5, 105, 6, 106});
  CHECK(labels[2] == std::vector<float>{107, 108});
  CHECK(w.windows() == 3);
}

TEST_CASE("window options are checked against the columns", "[windowing]") {
  WindowOptions o;
  o.window = 2;
  o.features = {0};
  o.target = 3;
  CHECK_THAT(ValidateWindowOptions(o, 2).ToString(),
             Contains("target column 3"));
  o.target = 0;
  o.stride = 0;
  CHECK(ValidateWindowOptions(o, 2).code() == Code::kInvalidArgument);
}

TEST_CASE("normaliser z-scores columns and round-trips through stream metadata",
          "[windowing]") {
  const std::vector<float> rows = {1, 10, 3, 10, 5, 10};  // col 1 constant
  const Normalizer n = Normalizer::Fit(rows, 2);
  CHECK(n.mean(0) == Approx(3));
  CHECK(n.std(0) == Approx(std::sqrt(8.0 / 3)));
  float row[2] = {5, 10};
  n.Apply(row);
  CHECK(row[0] == Approx(2 / std::sqrt(8.0 / 3)));
  CHECK(row[1] == 0.0f);  // a constant column does not divide by zero
  CHECK(n.Undo(0, row[0]) == Approx(5));
  StreamMeta meta;
  meta.normalizer = n;
  meta.target = 1;
  meta.columns = {0, 1};
  meta.window = 52;
  meta.horizon = 4;
  auto back = ParseStreamMeta(FormatStreamMeta(meta));
  REQUIRE(back.ok());
  CHECK(back->normalizer.mean(0) == n.mean(0));  // exact: 17 digits
  CHECK(back->normalizer.std(0) == n.std(0));
  CHECK(back->normalizer.mean(1) == n.mean(1));
  CHECK(back->target == 1);
  CHECK(back->columns == std::vector<uint32_t>{0, 1});
  CHECK(back->window == 52);
  CHECK(back->horizon == 4);
}

TEST_CASE("stream metadata parses what feed writes and ignores unknown keys",
          "[windowing]") {
  // The exact text `shardps feed` records for a two-column CSV.
  auto meta = ParseStreamMeta(
      "mean=315.5,2 std=12.25,0.5 target=0 columns=0,1 window=52 horizon=4 "
      "future=x");
  REQUIRE(meta.ok());
  CHECK(meta->normalizer.columns() == 2);
  CHECK(meta->normalizer.Undo(0, 1.0f) == Approx(327.75));
  CHECK(meta->target == 0);
  // Without normalisation only the target (and shapes) are recorded.
  auto plain = ParseStreamMeta("target=3");
  REQUIRE(plain.ok());
  CHECK(plain->normalizer.columns() == 0);
  CHECK(plain->target == 3);
}

TEST_CASE("stream metadata errors name the bad key", "[windowing]") {
  CHECK(ParseStreamMeta("").status().code() == Code::kNotFound);
  const auto error = [](const char* text) {
    auto m = ParseStreamMeta(text);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == Code::kInvalidArgument);
    return m.status().message();
  };
  CHECK_THAT(error("mean=1 std="), Contains("'std='"));
  CHECK_THAT(error("mean=1,x std=1,1 target=0"), Contains("'mean=1,x'"));
  CHECK_THAT(error("mean=1 std=1 target=-1"), Contains("'target=-1'"));
  CHECK_THAT(error("mean=1 std=1"), Contains("no 'target'"));
  CHECK_THAT(error("mean=1,2 std=1 target=0"), Contains("2 means but 1 std"));
  CHECK_THAT(error("mean=1 target=0"), Contains("'mean' without 'std'"));
  CHECK_THAT(error("mean=1 std=0 target=0"), Contains("> 0"));
  CHECK_THAT(error("mean=1 std=1 target=1"), Contains("'target=1'"));
  CHECK_THAT(error("mean=1 std=1 target=0 columns=0,4"), Contains("column 4"));
  CHECK_THAT(error("target=0 window=ten"), Contains("'window=ten'"));
  CHECK_THAT(error("target"), Contains("not key=value"));
}

TEST_CASE("batch builder packs, shuffles without loss and flushes the rest",
          "[windowing]") {
  const uint32_t kShuffle = GENERATE(0u, 5u);
  BatchBuilder b(/*batch=*/4, /*window=*/1, /*features=*/2, /*horizon=*/1,
                 kShuffle, /*seed=*/7);
  std::vector<float> labels_seen;
  std::vector<uint32_t> sizes;
  auto on_batch = [&](const float* f, const float* l, uint32_t rows) {
    for (uint32_t r = 0; r < rows; ++r) {
      CHECK(f[r * 2] == l[r]);  // each window stays with its label
      CHECK(f[r * 2 + 1] == -l[r]);
      labels_seen.push_back(l[r]);
    }
    sizes.push_back(rows);
    return true;
  };
  for (int i = 0; i < 10; ++i) {
    const float window[2] = {float(i), float(-i)};
    const float label = float(i);
    REQUIRE(b.Add(window, &label, on_batch));
  }
  REQUIRE(b.Flush(on_batch));
  CHECK(sizes == std::vector<uint32_t>{4, 4, 2});
  std::vector<float> sorted = labels_seen;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted == std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  if (kShuffle == 0) CHECK(labels_seen == sorted);  // no buffer: arrival order
}

}  // namespace
}  // namespace shardps
