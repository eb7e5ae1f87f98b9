// What differs between an existing segment and a model spec, in words a user
// can act on: the start-up refusal of a segment made from another spec names
// them instead of only two spec hashes.
#ifndef SHARDPS_COMMON_SPEC_DIFF_H_
#define SHARDPS_COMMON_SPEC_DIFF_H_

#include <string>
#include <vector>

#include "common/segment.h"
#include "shardps/model_spec.h"

namespace shardps {

// Every difference, segment side first, between what `seg` records (its
// header and directory) and `spec`, over exactly what SpecHash covers: model
// name, block size, default optimizer kind, bsp or not, and per tensor and
// table its presence, shape (dim, capacity per shard at the segment's shard
// count) and optimizer kind, and their order. E.g.
//   "tensor 'w' has shape [3, 4] in the segment, [3, 5] in the spec".
// Empty when nothing the segment records differs (the hash may still differ,
// e.g. the bsp flag of a model without tensors). Safe on any validated
// segment; reads only its immutable part.
std::vector<std::string> SpecDifferences(const Segment& seg,
                                         const ModelSpec& spec);

// The first `max` of `differences` joined with "; ", then "; and N more"
// when some were left out.
std::string JoinDifferences(const std::vector<std::string>& differences,
                            size_t max);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SPEC_DIFF_H_
