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
// On a host that lacks some shards, Open(client) maps those shards' copies
// kept by this host's replica (`shardps replica`, ClientOptions::
// replica_storage) beside the local segments: the tensor stays one array
// whatever the mix; Freshness says per block how current each copy is.
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

class Client;

class ModelView {
 public:
  using RowMatrix =
      Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  // How current the view of one block is (Freshness). Versions count the
  // updates the owning shard has applied to the block.
  struct BlockFreshness {
    uint32_t block = 0;  // index within the tensor
    uint32_t shard = 0;  // the shard that owns it
    // Mapped from the shard's own segment: always current (held == latest,
    // the segment's count). Else read through this host's replica copy.
    bool local = false;
    uint64_t held = 0;    // version the view shows (0: nothing received yet)
    uint64_t latest = 0;  // newest version the shard announced (>= held)
    // How long the copy has been behind `latest`; 0 when current.
    std::chrono::nanoseconds age{0};
    // Replica blocks: whether the replica process writing the copy runs now
    // (a stopped one leaves the copy as it was). false for local blocks.
    bool replica_running = false;
  };
  // Freshness of a whole tensor: its blocks and a summary of them.
  struct TensorFreshness {
    std::vector<BlockFreshness> blocks;      // by block index
    uint32_t blocks_behind = 0;              // blocks with held < latest
    uint64_t most_versions_behind = 0;       // max of latest - held
    std::chrono::nanoseconds oldest_age{0};  // max of age
    // Every replica that the tensor's replica blocks come from is running
    // (true when all blocks are local).
    bool replicas_running = true;
  };

  // Maps one segment per shard, all of the same model. Errors: kNotFound for
  // a missing file, kCorrupt for a damaged one, kSpecMismatch when the
  // segments belong to different models or shard counts, kInvalidArgument
  // when a shard is missing or listed twice.
  static Result<std::unique_ptr<ModelView>> Open(
      const std::vector<std::string>& segment_paths);
  // Uses the `segment` entries of a cluster file (kInvalidArgument if any
  // shard has none, i.e. is not on this host).
  static Result<std::unique_ptr<ModelView>> Open(const ClusterInfo& cluster);
  // The view for a connected client's model: per shard, its own segment
  // where Client::local_segments() names one (checked to be still the
  // segment the shard served at Connect, else kUnavailable: reconnect),
  // else the copy this host's replica keeps under
  // ClientOptions::replica_storage (<storage>/<model>/shard-<i>-of-<n>.seg
  // and its .fresh state). Errors: kNotFound naming the shard and the path
  // looked at when a shard is neither local nor replicated here (run
  // `shardps replica --cluster C --spec S --storage DIR` on this host, or
  // set replica_storage to its DIR); kSpecMismatch for a copy of another
  // model, spec or shard; kCorrupt for a damaged file. The view does not
  // keep `client`: it may be destroyed first.
  static Result<std::unique_ptr<ModelView>> Open(const Client& client);

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

  // Block updates applied to the tensor so far, summed over its blocks (for
  // a block read through a replica: the version its copy holds).
  Result<uint64_t> Updates(std::string_view name) const;

  // How current each block of the tensor is, and the summary. Each field is
  // read on its own (lock-free) while replicas write: a snapshot of a
  // moving target. kNotFound for an unknown tensor.
  Result<TensorFreshness> Freshness(std::string_view name) const;

  // Row `id` of sparse table `table`, live (dim floats), found through the
  // row index in the segment of the shard that owns it. kNotFound for an
  // unknown table or a row nobody has pushed or pulled yet: such a row has
  // no memory in the segment to view, and this read-only view never creates
  // one. Its value would be the table's init, a pure function of (init,
  // seed, table name, id): FillInitialRow(spec.tables[i], id, out) with the
  // servers' model spec gives exactly what PullRows would create (the
  // segment does not record the init, which may change between restarts).
  // A row being updated may be read half-old, half-new: copy it through
  // PullRows when that matters. A replica copies dense tensors only: a row
  // of a shard read through one is kUnimplemented (use PullRows).
  Result<Eigen::Map<const Eigen::VectorXf>> Row(std::string_view table,
                                                uint64_t id) const;

 private:
  class Impl;
  explicit ModelView(std::unique_ptr<Impl> impl);
  // Maps the tensors of the segments `impl` opened, one per shard.
  static Result<std::unique_ptr<ModelView>> Finish(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardps

#endif  // SHARDPS_MODEL_VIEW_H_
