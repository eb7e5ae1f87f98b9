#include "common/spec_diff.h"

#include <algorithm>
#include <cstring>

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

}  // namespace

std::vector<std::string> SpecDifferences(const Segment& seg,
                                         const ModelSpec& spec) {
  std::vector<std::string> diffs;
  const SegmentHeader& h = seg.header();
  auto differ = [&](const std::string& what, const std::string& in_segment,
                    const std::string& in_spec) {
    diffs.push_back(what + " " + in_segment + " in the segment, " + in_spec +
                    " in the spec");
  };
  if (FieldText(h.model) != spec.name)
    differ("model name", Quoted(FieldText(h.model)), Quoted(spec.name));
  if (h.block_floats != spec.block_floats)
    differ("block_floats is", std::to_string(h.block_floats),
           std::to_string(spec.block_floats));
  if (FieldText(h.optimizer) != spec.optimizer.kind)
    differ("the default optimizer is", Quoted(FieldText(h.optimizer)),
           Quoted(spec.optimizer.kind));
  // A tensor or table that follows the default optimizer on both sides is
  // covered by the default's difference.
  auto optimizer = [&](const std::string& what, const std::string& in_segment,
                       const std::string& in_spec) {
    const bool both_default =
        in_segment == FieldText(h.optimizer) && in_spec == spec.optimizer.kind;
    if (in_segment != in_spec && !both_default)
      differ(what + " is updated by", Quoted(in_segment), Quoted(in_spec));
  };
  // Only tensors record bsp (their accumulator slot); SpecHash covers just
  // bsp-or-not, not async vs ssp.
  const bool spec_bsp = spec.consistency.mode == ConsistencySpec::Mode::kBsp;
  if (seg.num_tensors() > 0 && (seg.tensor(0).accum_slots == 1) != spec_bsp)
    differ("consistency is", spec_bsp ? "not bsp" : "bsp",
           spec_bsp ? "bsp" : spec.consistency.ModeName());

  std::vector<std::string> seg_order, spec_order;
  for (uint32_t i = 0; i < seg.num_tensors(); ++i) {
    const TensorEntry& e = seg.tensor(i);
    const std::string name = FieldText(e.name);
    const std::string what = "tensor " + Quoted(name);
    const TensorSpec* t = spec.FindTensor(name);
    if (t == nullptr) {
      diffs.push_back(what + " is in the segment, not the spec");
      continue;
    }
    seg_order.push_back(name);
    const bool same_shape =
        e.rank == t->shape.size() &&
        std::equal(t->shape.begin(), t->shape.end(), e.shape);
    if (!same_shape)
      differ(what + " has shape", ShapeText(e.shape, e.rank),
             ShapeText(t->shape.data(), t->shape.size()));
    optimizer(what, FieldText(e.optimizer), spec.OptimizerFor(*t).kind);
  }
  for (const TensorSpec& t : spec.tensors) {
    bool found = false;
    for (uint32_t i = 0; i < seg.num_tensors() && !found; ++i)
      found = FieldText(seg.tensor(i).name) == t.name;
    if (found)
      spec_order.push_back(t.name);
    else
      diffs.push_back("tensor " + Quoted(t.name) +
                      " is in the spec, not the segment");
  }
  if (seg_order != spec_order)
    differ("the tensors are in the order", NameList(seg_order),
           NameList(spec_order));

  seg_order.clear();
  spec_order.clear();
  for (uint32_t i = 0; i < seg.num_tables(); ++i) {
    const TableEntry& e = seg.table(i);
    const std::string name = FieldText(e.name);
    const std::string what = "table " + Quoted(name);
    const TableSpec* t = spec.FindTable(name);
    if (t == nullptr) {
      diffs.push_back(what + " is in the segment, not the spec");
      continue;
    }
    seg_order.push_back(name);
    if (e.dim != t->dim)
      differ(what + " has dim", std::to_string(e.dim), std::to_string(t->dim));
    const uint64_t rows = t->RowsPerShard(h.shard_count);
    if (e.capacity != rows)
      differ(what + " holds", std::to_string(e.capacity) + " rows per shard",
             std::to_string(rows) + " (capacity " +
                 std::to_string(t->capacity) + ")");
    optimizer(what, FieldText(e.optimizer), spec.OptimizerFor(*t).kind);
  }
  for (const TableSpec& t : spec.tables) {
    if (seg.FindTable(t.name) >= 0)
      spec_order.push_back(t.name);
    else
      diffs.push_back("table " + Quoted(t.name) +
                      " is in the spec, not the segment");
  }
  if (seg_order != spec_order)
    differ("the tables are in the order", NameList(seg_order),
           NameList(spec_order));
  return diffs;
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
