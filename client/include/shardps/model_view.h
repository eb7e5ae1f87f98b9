// shardps::ModelView: read a co-located model straight from shared memory.
//
// A trainer on the same host as the shard servers maps their segments
// read-only and gets Eigen views of the live weights: no pull, no copy, no
// round trip. Each tensor is presented as one contiguous array even though
// its blocks live in several segments (the blocks' pages are mapped side by
// side into one reserved address range).
//
//   auto view = shardps::ModelView::Open(cluster);   // or segment paths
//   Eigen::Map<const Eigen::VectorXf> w = *(*view)->Tensor("fc1.bias");
//
// Live views change while servers apply updates, a block at a time; use
// Copy for a snapshot in which no block is torn.
//
// Thread-safety: all methods are const and safe from any thread. Views stay
// valid for the ModelView's lifetime.
#ifndef SHARDPS_MODEL_VIEW_H_
#define SHARDPS_MODEL_VIEW_H_

#include <Eigen/Core>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shardps/cluster.h"
#include "shardps/layout.h"
#include "shardps/status.h"

namespace shardps {

class ModelView {
 public:
  using RowMatrix =
      Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  // Maps one segment per shard, all of the same model. Errors: kNotFound for
  // a missing file, kCorrupt for a damaged one, kSpecMismatch when the
  // segments belong to different models or shard counts, kInvalidArgument
  // when a shard is missing or listed twice.
  static Result<std::unique_ptr<ModelView>> Open(
      const std::vector<std::string>& segment_paths);
  // Uses the `segment` entries of a cluster file (kInvalidArgument if any
  // shard has none, i.e. is not on this host).
  static Result<std::unique_ptr<ModelView>> Open(const ClusterInfo& cluster);

  ~ModelView();
  ModelView(const ModelView&) = delete;
  ModelView& operator=(const ModelView&) = delete;

  const ModelLayout& layout() const;
  uint64_t spec_hash() const;

  // The whole tensor, live, flattened in row-major order. kNotFound if the
  // model has no such tensor.
  Result<Eigen::Map<const Eigen::VectorXf>> Tensor(std::string_view name) const;
  // A tensor as a matrix: rows = shape[0], cols = the product of the rest.
  Result<Eigen::Map<const RowMatrix>> Matrix(std::string_view name) const;

  // Copies the tensor into `out` (`count` floats), each block a consistent
  // snapshot. `timeout` bounds the whole copy (default 5 s); past it, with
  // `out` partly written: kTimeout if a block kept being rewritten,
  // kCorrupt if a block stayed mid-update (its server died inside an
  // update; the next server on the segment repairs it). The message names
  // the block and the segment.
  Status Copy(
      std::string_view name, float* out, size_t count,
      std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

  // Block updates applied to the tensor so far, summed over its blocks.
  Result<uint64_t> Updates(std::string_view name) const;

  // Row `id` of sparse table `table`, live (dim floats), found through the
  // row index in the segment of the shard that owns it. kNotFound for an
  // unknown table or a row nobody has pushed or pulled yet: such a row has
  // no memory in the segment to view, and this read-only view never creates
  // one. Its value would be the table's init, a pure function of (init,
  // seed, table name, id): FillInitialRow(spec.tables[i], id, out) with the
  // servers' model spec gives exactly what PullRows would create (the
  // segment does not record the init, which may change between restarts).
  // A row being updated may be read half-old, half-new: copy it through
  // PullRows when that matters.
  Result<Eigen::Map<const Eigen::VectorXf>> Row(std::string_view table,
                                                uint64_t id) const;

 private:
  class Impl;
  explicit ModelView(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardps

#endif  // SHARDPS_MODEL_VIEW_H_
