// Time-series windowing: turns a raw series (CSV rows or float32 rows) into
// (window, label) training pairs and packs them into batch tensors, as a
// stream: rows go in one at a time, batches come out as soon as they fill.
//
//   row t of the series = values of every column at time t
//   window i  = feature columns of rows [s, s + window)      s = i * stride
//   label i   = target column of rows [s + window, s + window + horizon)
//
// Features [batch, window, features] and labels [batch, horizon], float32,
// row-major: the BatchQueue's layout. Normalisation is a per-column z-score
// whose mean and deviation come from the first rows of the series (the
// consumer gets them, and the target column, through StreamMeta: the text a
// producer records in the queue's metadata).
//
// Thread-safety: values and single-threaded objects; use one per thread.
#ifndef SHARDPS_WINDOWING_H_
#define SHARDPS_WINDOWING_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <istream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "shardps/status.h"

namespace shardps {

// Reads numeric CSV: comma-separated, optional header line, blank lines
// ignored. A row with a wrong column count or a non-number is an error
// naming the line and column, or, with skip_bad_rows, counted and skipped.
class CsvReader {
 public:
  CsvReader(std::istream& in, bool has_header, bool skip_bad_rows);

  // Column names from the header (empty without one). Valid after the
  // first Next.
  const std::vector<std::string>& header() const { return header_; }
  // The next row's values; false at end of input.
  Result<bool> Next(std::vector<float>* values);
  uint64_t line() const { return line_; }
  uint64_t skipped() const { return skipped_; }

  // Index of column `name` (or a 0-based number given as text).
  // kInvalidArgument naming the known columns when there is none.
  Result<uint32_t> Column(const std::string& name) const;

 private:
  std::istream& in_;
  const bool has_header_;
  const bool skip_bad_rows_;
  bool header_read_ = false;
  std::vector<std::string> header_;
  size_t columns_ = 0;  // fixed by the first row
  uint64_t line_ = 0;
  uint64_t skipped_ = 0;
  std::string text_;
};

// Per-column z-score: (x - mean) / std, with std floored so constant
// columns do not divide by zero.
class Normalizer {
 public:
  Normalizer() = default;  // identity
  // Fits mean and std of each column over `rows` (row-major, `columns` per
  // row). REQUIRES: rows.size() is a multiple of columns.
  static Normalizer Fit(const std::vector<float>& rows, size_t columns);

  void Apply(float* row) const;
  float Undo(size_t column, float value) const;
  size_t columns() const { return mean_.size(); }
  double mean(size_t column) const { return mean_[column]; }
  double std(size_t column) const { return std_[column]; }
  // A normaliser with these per-column moments (as a consumer rebuilds it
  // from StreamMeta). kInvalidArgument when the lists differ in length or a
  // std is not a positive finite number.
  static Result<Normalizer> FromMoments(std::vector<double> mean,
                                        std::vector<double> std);

 private:
  std::vector<double> mean_, std_;
};

// What a producer tells the consumer about a stream, recorded as the queue's
// metadata (BatchQueue::SetMeta / Meta). The one format (docs/stream.md):
// space-separated key=value pairs, lists comma-separated, e.g.
//
//   mean=315.2,0.5 std=12.1,0.3 target=0 columns=0,1 window=52 horizon=4
//
//   mean, std  the z-score of every CSV column (absent: no normalisation)
//   target     the label column, an index into those columns
//   columns    the feature columns, in the order they appear in a window
//   window, horizon  rows per window, label rows per window
//
// Unknown keys are ignored (a newer producer may add some); a known key with
// a bad value is an error naming the key.
struct StreamMeta {
  Normalizer normalizer;          // identity when the feed did not normalise
  uint32_t target = 0;            // label column
  std::vector<uint32_t> columns;  // feature columns
  uint32_t window = 0, horizon = 0;
};

// The metadata text of `meta` (at most a few hundred bytes per column).
std::string FormatStreamMeta(const StreamMeta& meta);
// Parses FormatStreamMeta's text. kNotFound for empty text (no producer
// recorded any yet); kInvalidArgument naming the key for a malformed value,
// a missing `target`, mean/std lists of different lengths, or a target or
// column outside the normalised columns.
Result<StreamMeta> ParseStreamMeta(std::string_view text);

struct WindowOptions {
  uint32_t window = 0;             // rows per window, > 0
  uint32_t horizon = 1;            // label rows after each window, > 0
  uint32_t stride = 1;             // rows between window starts, > 0
  std::vector<uint32_t> features;  // feature columns (into each row)
  uint32_t target = 0;             // label column
};

// Checks window/horizon/stride > 0, at least one feature, and every column
// below `columns`.
Status ValidateWindowOptions(const WindowOptions& o, size_t columns);

// Slides over rows as they arrive, emitting each complete (window, label).
class Windower {
 public:
  // emit(window: window * features floats, label: horizon floats).
  using Emit = std::function<void(const float*, const float*)>;
  // REQUIRES: ValidateWindowOptions(options, columns).ok().
  Windower(WindowOptions options, size_t columns);

  void Add(const float* row, const Emit& emit);
  uint64_t windows() const { return windows_; }

 private:
  const WindowOptions o_;
  const size_t columns_;
  std::deque<std::vector<float>> rows_;  // the last window + horizon rows
  uint64_t seen_ = 0;                    // rows added so far
  uint64_t windows_ = 0;
  std::vector<float> window_, label_;  // scratch for one pair
};

// Packs (window, label) pairs into batches, optionally shuffling through a
// bounded buffer (pairs leave it in random order once it is full).
class BatchBuilder {
 public:
  // on_batch(features [batch*window*features], labels [batch*horizon],
  // rows in this batch) returns false to stop (e.g. the queue closed).
  using OnBatch = std::function<bool(const float*, const float*, uint32_t)>;
  BatchBuilder(uint32_t batch, uint32_t window, uint32_t features,
               uint32_t horizon, uint32_t shuffle_buffer, uint64_t seed);

  // False once on_batch has asked to stop.
  bool Add(const float* window, const float* label, const OnBatch& on_batch);
  // Emits what is left: full batches, then a final short one.
  bool Flush(const OnBatch& on_batch);

 private:
  bool Place(const float* window, const float* label, const OnBatch& on_batch);

  const uint32_t batch_, window_floats_, horizon_, shuffle_;
  std::mt19937_64 rng_;
  std::vector<std::vector<float>> pool_;  // shuffle buffer: window + label
  std::vector<float> features_, labels_;
  uint32_t filled_ = 0;
};

}  // namespace shardps

#endif  // SHARDPS_WINDOWING_H_
