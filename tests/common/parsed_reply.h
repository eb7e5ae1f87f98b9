// ParsedReply(): a reply a codec test built, read back as a client reads it.
#ifndef SHARDPS_TESTS_COMMON_PARSED_REPLY_H_
#define SHARDPS_TESTS_COMMON_PARSED_REPLY_H_

#include "common/wire.h"
#include "tests/test_util.h"

namespace shardps::test {

// The Reply in `builder`, verified as a client verifies every reply
// (ParseReply); throws, failing the test with the reason, when it does not
// verify. The reply points into `builder` and `scratch`: both must outlive it.
inline const wire::Reply& ParsedReply(flatbuffers::FlatBufferBuilder& builder,
                                      HeaderScratch& scratch) {
  return *ValueOrThrow(
      ParseReply(builder.GetBufferPointer(), builder.GetSize(), scratch));
}

}  // namespace shardps::test

#endif  // SHARDPS_TESTS_COMMON_PARSED_REPLY_H_
