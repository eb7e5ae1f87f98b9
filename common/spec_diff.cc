#include "common/spec_diff.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace shardps {

namespace {

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

std::string ShapeText(const uint64_t* dims, size_t rank) {
  std::string out = "[";
  for (size_t d = 0; d < rank; ++d)
    out += (d == 0 ? "" : ", ") + std::to_string(dims[d]);
  return out + "]";
}

// The NUL-padded fixed-size name fields of the format, as strings.
template <size_t N>
std::string FieldText(const char (&field)[N]) {
  return std::string(field, strnlen(field, N));
}

std::string NameList(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Collects the differences of one segment against one spec, part by part.
class SpecComparison {
 public:
  SpecComparison(const Segment& seg, const ModelSpec& spec)
      : seg_(seg), spec_(spec), h_(seg.header()) {}

  std::vector<std::string> Run() && {
    CompareHeader();
    CompareTensors();
    CompareTables();
    return std::move(diffs_);
  }

 private:
  void Differ(const std::string& what, const std::string& in_segment,
              const std::string& in_spec) {
    diffs_.push_back(what + " " + in_segment + " in the segment, " + in_spec +
                     " in the spec");
  }

  // A tensor or table that follows the default optimizer on both sides is
  // covered by the default's difference.
  void Optimizer(const std::string& what, const std::string& in_segment,
                 const std::string& in_spec) {
    const bool both_default = in_segment == FieldText(h_.optimizer) &&
                              in_spec == spec_.optimizer.kind;
    if (in_segment != in_spec && !both_default)
      Differ(what + " is updated by", Quoted(in_segment), Quoted(in_spec));
  }

  void CompareHeader() {
    if (FieldText(h_.model) != spec_.name)
      Differ("model name", Quoted(FieldText(h_.model)), Quoted(spec_.name));
    if (h_.block_floats != spec_.block_floats)
      Differ("block_floats is", std::to_string(h_.block_floats),
             std::to_string(spec_.block_floats));
    if (FieldText(h_.optimizer) != spec_.optimizer.kind)
      Differ("the default optimizer is", Quoted(FieldText(h_.optimizer)),
             Quoted(spec_.optimizer.kind));
    // Only tensors record bsp (their accumulator slot); SpecHash covers just
    // bsp-or-not, not async vs ssp.
    const bool spec_bsp = spec_.consistency.mode == ConsistencySpec::Mode::kBsp;
    if (seg_.num_tensors() > 0 && (seg_.tensor(0).accum_slots == 1) != spec_bsp)
      Differ("consistency is", spec_bsp ? "not bsp" : "bsp",
             spec_bsp ? "bsp" : spec_.consistency.ModeName());
  }

  void CompareTensors() {
    std::vector<std::string> seg_order, spec_order;
    for (uint32_t i = 0; i < seg_.num_tensors(); ++i) {
      const TensorEntry& e = seg_.tensor(i);
      const std::string name = FieldText(e.name);
      const std::string what = "tensor " + Quoted(name);
      const TensorSpec* t = spec_.FindTensor(name);
      if (t == nullptr) {
        diffs_.push_back(what + " is in the segment, not the spec");
        continue;
      }
      seg_order.push_back(name);
      const bool same_shape =
          e.rank == t->shape.size() &&
          std::equal(t->shape.begin(), t->shape.end(), e.shape);
      if (!same_shape)
        Differ(what + " has shape", ShapeText(e.shape, e.rank),
               ShapeText(t->shape.data(), t->shape.size()));
      Optimizer(what, FieldText(e.optimizer), spec_.OptimizerFor(*t).kind);
    }
    for (const TensorSpec& t : spec_.tensors) {
      bool found = false;
      for (uint32_t i = 0; i < seg_.num_tensors() && !found; ++i)
        found = FieldText(seg_.tensor(i).name) == t.name;
      if (found)
        spec_order.push_back(t.name);
      else
        diffs_.push_back("tensor " + Quoted(t.name) +
                         " is in the spec, not the segment");
    }
    if (seg_order != spec_order)
      Differ("the tensors are in the order", NameList(seg_order),
             NameList(spec_order));
  }

  void CompareTables() {
    std::vector<std::string> seg_order, spec_order;
    for (uint32_t i = 0; i < seg_.num_tables(); ++i) {
      const TableEntry& e = seg_.table(i);
      const std::string name = FieldText(e.name);
      const std::string what = "table " + Quoted(name);
      const TableSpec* t = spec_.FindTable(name);
      if (t == nullptr) {
        diffs_.push_back(what + " is in the segment, not the spec");
        continue;
      }
      seg_order.push_back(name);
      if (e.dim != t->dim)
        Differ(what + " has dim", std::to_string(e.dim),
               std::to_string(t->dim));
      const uint64_t rows = t->RowsPerShard(h_.shard_count);
      if (e.capacity != rows)
        Differ(what + " holds", std::to_string(e.capacity) + " rows per shard",
               std::to_string(rows) + " (capacity " +
                   std::to_string(t->capacity) + ")");
      Optimizer(what, FieldText(e.optimizer), spec_.OptimizerFor(*t).kind);
    }
    for (const TableSpec& t : spec_.tables) {
      if (seg_.FindTable(t.name) >= 0)
        spec_order.push_back(t.name);
      else
        diffs_.push_back("table " + Quoted(t.name) +
                         " is in the spec, not the segment");
    }
    if (seg_order != spec_order)
      Differ("the tables are in the order", NameList(seg_order),
             NameList(spec_order));
  }

  const Segment& seg_;
  const ModelSpec& spec_;
  const SegmentHeader& h_;
  std::vector<std::string> diffs_;
};

}  // namespace

std::vector<std::string> SpecDifferences(const Segment& seg,
                                         const ModelSpec& spec) {
  return SpecComparison(seg, spec).Run();
}

std::string JoinDifferences(const std::vector<std::string>& differences,
                            size_t max) {
  std::string out;
  for (size_t i = 0; i < differences.size() && i < max; ++i)
    out += (i == 0 ? "" : "; ") + differences[i];
  if (differences.size() > max)
    out += "; and " + std::to_string(differences.size() - max) + " more";
  return out;
}

}  // namespace shardps
