// TableService: PushRows and PullRows on this shard's sparse tables.
//
// Wire format (docs/protocol.md): a PushRows request carries two payload
// frames, the row ids (n little-endian uint64) and the gradients (n x dim
// elements of the header's dtype, row-major); a PullRows request carries the
// ids only and is answered with one frame of n x dim float32 rows, in the
// order of the ids. Every id must belong to this shard (JumpHash(id,
// shards)); a missing row is created with the table's init. Duplicate ids in
// one push are summed before the optimizer runs, so each row gets one step
// per push whatever the optimizer.
//
// Rows are updated by the frontend thread alone (tables are asynchronous in
// every consistency mode), with each table's optimizer and its state kept in
// the segment beside the rows.
//
// Thread-safety: frontend thread only.
#ifndef SHARDPS_SERVER_TABLE_SERVICE_H_
#define SHARDPS_SERVER_TABLE_SERVICE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/optimizer_config.h"
#include "common/segment.h"
#include "common/table_index.h"
#include "protocol_generated.h"
#include "server/row_journal.h"
#include "shardps/model_spec.h"
#include "shardps/status.h"

namespace shardps {

// Upper bound on ids in one PushRows/PullRows request.
inline constexpr uint64_t kMaxRowsPerRequest = 1 << 20;

class TableService {
 public:
  // `segment` must outlive the service; `spec` is the segment's.
  TableService(Segment& segment, const ModelSpec& spec);

  // An exactly-once row push: the client's number for it and its slot,
  // whose row window (ClientSlot::rows) says which pushes were applied.
  struct Once {
    uint64_t client = 0;
    uint64_t seq = 0;  // >= 1
    uint32_t slot = 0;
    RowJournal* journal = nullptr;  // saves the rows first; not null
  };

  // Applies a PushRows. `frames` are [identity, header, ids, grads]. On an
  // error nothing has changed: no row was created or updated. With `once`
  // (nullptr: at-least-once), a push whose seq the window already has is
  // checked but not applied (*duplicate = true), and an applied one is
  // journaled and recorded in the window with its rows.
  Status PushRows(const wire::Request& req,
                  const std::vector<zmq::message_t>& frames,
                  const Once* once = nullptr, bool* duplicate = nullptr);

  // Makes a reply frame of `bytes` into *out, or refuses (then the request
  // fails with its Status and changes nothing).
  using ReplyAllocator =
      std::function<Status(size_t bytes, zmq::message_t* out)>;

  // Answers a PullRows: `frames` are [identity, header, ids]; `out` becomes
  // the reply's rows frame, made by `allocate` once the ids are checked and
  // before any missing row is created (all or none).
  Status PullRows(const wire::Request& req,
                  const std::vector<zmq::message_t>& frames,
                  const ReplyAllocator& allocate, zmq::message_t* out);

 private:
  struct Table {
    const TableEntry* entry;
    const TableSpec* spec;
    TableIndex index;
    OptimizerKind kind;
    OptimizerParams params;
    uint32_t segment_index;
  };

  // Checks the table name and the ids frame; on success sets *table and
  // *n (ids in the request).
  Status Check(const wire::Request& req,
               const std::vector<zmq::message_t>& frames, size_t want_frames,
               Table** table, uint64_t* n);
  // A request is all or none: LookUpRows checks every id and that the new
  // rows all fit before CreateRows creates any.
  // Finds the row of every id (into slots_, nullptr where missing, and the
  // missing ids into missing_), checking that each id belongs to this shard
  // and that the distinct missing ones fit (kResourceExhausted). Changes
  // nothing.
  Status LookUpRows(Table& table, const zmq::message_t& ids, uint64_t n);
  // Creates the rows LookUpRows found missing, completing slots_.
  // REQUIRES: LookUpRows succeeded for the same ids.
  Status CreateRows(Table& table, const zmq::message_t& ids, uint64_t n);
  float* Row(const Table& table, uint32_t row) const;
  void ApplyRow(Table& table, RowSlot& slot, const float* grad);
  // The `floats` gradients of `frame` (of `dtype`) as aligned float32: the
  // frame itself, or a copy in widened_ (valid until the next request).
  const float* Float32Grads(wire::DType dtype, const zmq::message_t& frame,
                            uint64_t floats);
  // Folds repeated rows of slots_[0, n) into their first position: each
  // repeat's gradient is added to a sum in summed_ (sum_of_ says which), and
  // its slots_ entry becomes nullptr.
  void FoldDuplicates(uint64_t n, uint64_t dim, const float* grads);

  Segment& segment_;
  std::vector<Table> tables_;
  // Per-request scratch, reused so a request allocates nothing per row.
  std::vector<RowSlot*> slots_;
  std::vector<uint64_t> missing_;  // ids with no row yet, sorted once
  std::vector<float> widened_;     // 16-bit gradients as float32
  std::vector<float> summed_;      // duplicates' summed gradients
  std::vector<uint64_t> seen_;     // open-addressing set: row + 1, or 0
  std::vector<uint32_t> leader_;   // per seen_ slot: first position
  std::vector<int32_t> sum_of_;    // per position: row of summed_, or -1
};

}  // namespace shardps

#endif  // SHARDPS_SERVER_TABLE_SERVICE_H_
