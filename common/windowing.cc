#include "shardps/windowing.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>

namespace shardps {

namespace {

// Trims spaces, tabs and a trailing '\r' (Windows line ends).
std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> SplitCommas(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    out.push_back(Trim(line.substr(start, comma - start)));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

bool ParseFloat(std::string_view field, float* out) {
  if (field.empty()) return false;
  const std::string text(field);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v))
    return false;
  *out = static_cast<float>(v);
  return true;
}

// Floor for a column's deviation: a constant column normalises to 0.
constexpr double kMinStd = 1e-12;

}  // namespace

CsvReader::CsvReader(std::istream& in, bool has_header, bool skip_bad_rows)
    : in_(in), has_header_(has_header), skip_bad_rows_(skip_bad_rows) {}

Result<bool> CsvReader::Next(std::vector<float>* values) {
  while (std::getline(in_, text_)) {
    ++line_;
    if (Trim(text_).empty()) continue;
    const auto fields = SplitCommas(text_);
    if (has_header_ && !header_read_) {
      header_read_ = true;
      for (std::string_view f : fields) header_.emplace_back(f);
      columns_ = header_.size();
      continue;
    }
    if (columns_ == 0) columns_ = fields.size();
    Status bad;
    if (fields.size() != columns_) {
      bad = Status(Code::kInvalidArgument,
                   "line " + std::to_string(line_) + ": " +
                       std::to_string(fields.size()) + " columns, expected " +
                       std::to_string(columns_));
    } else {
      values->resize(columns_);
      for (size_t c = 0; c < columns_ && bad.ok(); ++c)
        if (!ParseFloat(fields[c], &(*values)[c]))
          bad = Status(Code::kInvalidArgument,
                       "line " + std::to_string(line_) + ", column " +
                           std::to_string(c + 1) + ": '" +
                           std::string(fields[c]) + "' is not a finite number");
    }
    if (bad.ok()) return true;
    if (!skip_bad_rows_) return bad;
    ++skipped_;
  }
  if (in_.bad())
    return Status(Code::kIoError,
                  "read error after line " + std::to_string(line_));
  return false;
}

Result<uint32_t> CsvReader::Column(const std::string& name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return static_cast<uint32_t>(i);
  char* end = nullptr;
  const unsigned long index = std::strtoul(name.c_str(), &end, 10);
  if (!name.empty() && *end == '\0' && (columns_ == 0 || index < columns_))
    return static_cast<uint32_t>(index);
  std::string known;
  for (const std::string& h : header_) known += (known.empty() ? "" : ", ") + h;
  return Status(Code::kInvalidArgument,
                "no column '" + name + "'" +
                    (known.empty() ? " (give a 0-based index)"
                                   : " (columns: " + known + ")"));
}

Normalizer Normalizer::Fit(const std::vector<float>& rows, size_t columns) {
  Normalizer n;
  n.mean_.assign(columns, 0);
  n.std_.assign(columns, 1);
  const size_t count = columns == 0 ? 0 : rows.size() / columns;
  if (count == 0) return n;
  for (size_t r = 0; r < count; ++r)
    for (size_t c = 0; c < columns; ++c) n.mean_[c] += rows[r * columns + c];
  for (double& m : n.mean_) m /= static_cast<double>(count);
  std::vector<double> var(columns, 0);
  for (size_t r = 0; r < count; ++r)
    for (size_t c = 0; c < columns; ++c) {
      const double d = rows[r * columns + c] - n.mean_[c];
      var[c] += d * d;
    }
  for (size_t c = 0; c < columns; ++c)
    n.std_[c] =
        std::max(std::sqrt(var[c] / static_cast<double>(count)), kMinStd);
  return n;
}

void Normalizer::Apply(float* row) const {
  for (size_t c = 0; c < mean_.size(); ++c)
    row[c] = static_cast<float>((row[c] - mean_[c]) / std_[c]);
}

float Normalizer::Undo(size_t column, float value) const {
  if (column >= mean_.size()) return value;
  return static_cast<float>(value * std_[column] + mean_[column]);
}

Result<Normalizer> Normalizer::FromMoments(std::vector<double> mean,
                                           std::vector<double> std) {
  if (mean.size() != std.size())
    return Status(Code::kInvalidArgument,
                  "normaliser has " + std::to_string(mean.size()) +
                      " means but " + std::to_string(std.size()) + " stds");
  for (size_t c = 0; c < std.size(); ++c)
    if (!std::isfinite(mean[c]) || !std::isfinite(std[c]) || !(std[c] > 0))
      return Status(Code::kInvalidArgument,
                    "normaliser column " + std::to_string(c) +
                        ": mean must be finite and std finite and > 0");
  Normalizer n;
  n.mean_ = std::move(mean);
  n.std_ = std::move(std);
  return n;
}

namespace {

template <typename T>
void AppendList(std::ostringstream& out, const char* key,
                const std::vector<T>& values) {
  if (values.empty()) return;
  out << (out.tellp() > 0 ? " " : "") << key << "=";
  for (size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
}

Status BadMetaKey(std::string_view key, std::string_view value,
                  const char* want) {
  return Status(Code::kInvalidArgument,
                "stream metadata: '" + std::string(key) + "=" +
                    std::string(value) + "': expected " + want);
}

bool ParseDoubles(std::string_view list, std::vector<double>* out) {
  for (std::string_view f : SplitCommas(list)) {
    const std::string s(f);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || errno == ERANGE) return false;
    out->push_back(v);
  }
  return true;
}

bool ParseIndex(std::string_view field, uint32_t* out) {
  if (field.empty() || field.size() > 10) return false;
  uint64_t v = 0;
  for (char c : field) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

std::string FormatStreamMeta(const StreamMeta& meta) {
  std::ostringstream out;
  out.precision(17);
  const Normalizer& n = meta.normalizer;
  std::vector<double> mean(n.columns()), stdev(n.columns());
  for (size_t c = 0; c < n.columns(); ++c) {
    mean[c] = n.mean(c);
    stdev[c] = n.std(c);
  }
  AppendList(out, "mean", mean);
  AppendList(out, "std", stdev);
  out << (out.tellp() > 0 ? " " : "") << "target=" << meta.target;
  AppendList(out, "columns", meta.columns);
  if (meta.window > 0) out << " window=" << meta.window;
  if (meta.horizon > 0) out << " horizon=" << meta.horizon;
  return out.str();
}

Result<StreamMeta> ParseStreamMeta(std::string_view text) {
  if (Trim(text).empty())
    return Status(Code::kNotFound,
                  "the queue has no stream metadata (no producer recorded "
                  "any yet: `shardps feed` writes it before its first batch)");
  StreamMeta meta;
  std::vector<double> mean, stdev;
  bool have_target = false, have_mean = false, have_std = false;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    const size_t end = std::min(text.find(' ', pos), text.size());
    const std::string_view pair = text.substr(pos, end - pos);
    pos = end;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Status(
          Code::kInvalidArgument,
          "stream metadata: '" + std::string(pair) + "' is not key=value");
    const std::string_view key = pair.substr(0, eq),
                           value = pair.substr(eq + 1);
    if (key == "mean" || key == "std") {
      std::vector<double>& list = key == "mean" ? mean : stdev;
      list.clear();
      if (!ParseDoubles(value, &list))
        return BadMetaKey(key, value, "comma-separated numbers");
      (key == "mean" ? have_mean : have_std) = true;
    } else if (key == "target") {
      if (!ParseIndex(value, &meta.target))
        return BadMetaKey(key, value, "a column index");
      have_target = true;
    } else if (key == "columns") {
      meta.columns.clear();
      for (std::string_view f : SplitCommas(value)) {
        uint32_t c = 0;
        if (!ParseIndex(f, &c))
          return BadMetaKey(key, value, "comma-separated column indices");
        meta.columns.push_back(c);
      }
    } else if (key == "window" || key == "horizon") {
      if (!ParseIndex(value, key == "window" ? &meta.window : &meta.horizon))
        return BadMetaKey(key, value, "a count");
    }
    // Any other key: written by a newer producer; ignored.
  }
  if (!have_target)
    return Status(Code::kInvalidArgument, "stream metadata: no 'target' key");
  if (have_mean != have_std)
    return Status(Code::kInvalidArgument,
                  std::string("stream metadata: '") +
                      (have_mean ? "mean" : "std") + "' without '" +
                      (have_mean ? "std" : "mean") + "'");
  if (have_mean) {
    auto n = Normalizer::FromMoments(std::move(mean), std::move(stdev));
    if (!n.ok()) return n.status().WithContext("stream metadata: mean/std");
    meta.normalizer = std::move(n).value();
    const size_t columns = meta.normalizer.columns();
    if (meta.target >= columns)
      return Status(Code::kInvalidArgument,
                    "stream metadata: 'target=" + std::to_string(meta.target) +
                        "' is outside the " + std::to_string(columns) +
                        " normalised columns");
    for (uint32_t c : meta.columns)
      if (c >= columns)
        return Status(Code::kInvalidArgument,
                      "stream metadata: 'columns' names column " +
                          std::to_string(c) + " of " + std::to_string(columns));
  }
  return meta;
}

Status ValidateWindowOptions(const WindowOptions& o, size_t columns) {
  if (o.window == 0 || o.horizon == 0 || o.stride == 0)
    return Status(Code::kInvalidArgument,
                  "window, horizon and stride must be > 0");
  if (o.features.empty())
    return Status(Code::kInvalidArgument, "at least one feature column");
  for (uint32_t c : o.features)
    if (c >= columns)
      return Status(Code::kInvalidArgument,
                    "feature column " + std::to_string(c) + " is beyond the " +
                        std::to_string(columns) + " columns");
  if (o.target >= columns)
    return Status(Code::kInvalidArgument,
                  "target column " + std::to_string(o.target) +
                      " is beyond the " + std::to_string(columns) + " columns");
  return Status::Ok();
}

Windower::Windower(WindowOptions options, size_t columns)
    : o_(std::move(options)),
      columns_(columns),
      window_(size_t{o_.window} * o_.features.size()),
      label_(o_.horizon) {}

void Windower::Add(const float* row, const Emit& emit) {
  rows_.emplace_back(row, row + columns_);
  ++seen_;
  const uint64_t span = uint64_t{o_.window} + o_.horizon;
  if (rows_.size() > span) rows_.pop_front();
  if (rows_.size() < span) return;
  // rows_ now holds rows [seen - span, seen); the window starting there is
  // emitted when its start is a multiple of the stride.
  const uint64_t start = seen_ - span;
  if (start % o_.stride != 0) return;
  const size_t f = o_.features.size();
  for (uint32_t t = 0; t < o_.window; ++t)
    for (size_t k = 0; k < f; ++k)
      window_[t * f + k] = rows_[t][o_.features[k]];
  for (uint32_t h = 0; h < o_.horizon; ++h)
    label_[h] = rows_[o_.window + h][o_.target];
  ++windows_;
  emit(window_.data(), label_.data());
}

BatchBuilder::BatchBuilder(uint32_t batch, uint32_t window, uint32_t features,
                           uint32_t horizon, uint32_t shuffle_buffer,
                           uint64_t seed)
    : batch_(batch),
      window_floats_(window * features),
      horizon_(horizon),
      shuffle_(shuffle_buffer),
      rng_(seed),
      features_(size_t{batch} * window * features),
      labels_(size_t{batch} * horizon) {}

bool BatchBuilder::Place(const float* window, const float* label,
                         const OnBatch& on_batch) {
  std::copy(window, window + window_floats_,
            features_.begin() + size_t{filled_} * window_floats_);
  std::copy(label, label + horizon_,
            labels_.begin() + size_t{filled_} * horizon_);
  if (++filled_ < batch_) return true;
  filled_ = 0;
  return on_batch(features_.data(), labels_.data(), batch_);
}

bool BatchBuilder::Add(const float* window, const float* label,
                       const OnBatch& on_batch) {
  if (shuffle_ == 0) return Place(window, label, on_batch);
  std::vector<float> pair(window, window + window_floats_);
  pair.insert(pair.end(), label, label + horizon_);
  if (pool_.size() < shuffle_) {
    pool_.push_back(std::move(pair));
    return true;
  }
  // Full: a random resident leaves for the batch; the newcomer takes its
  // place.
  const size_t pick =
      std::uniform_int_distribution<size_t>(0, pool_.size() - 1)(rng_);
  std::swap(pool_[pick], pair);
  return Place(pair.data(), pair.data() + window_floats_, on_batch);
}

bool BatchBuilder::Flush(const OnBatch& on_batch) {
  std::shuffle(pool_.begin(), pool_.end(), rng_);
  for (const auto& pair : pool_)
    if (!Place(pair.data(), pair.data() + window_floats_, on_batch))
      return false;
  pool_.clear();
  if (filled_ == 0) return true;
  const uint32_t rows = filled_;
  filled_ = 0;
  return on_batch(features_.data(), labels_.data(), rows);
}

}  // namespace shardps
