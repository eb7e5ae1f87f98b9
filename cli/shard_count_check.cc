#include "cli/shard_count_check.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

namespace shardps::cli {

namespace {

// M from "shard-I-of-M.seg" (digits only, I < M), or 0 for any other name
// (journals, a creator's ".creating.<pid>" file, queues).
uint32_t ShardCountOf(const std::string& name) {
  unsigned index = 0, count = 0;
  int end = 0;
  if (std::sscanf(name.c_str(), "shard-%u-of-%u.seg%n", &index, &count, &end) !=
          2 ||
      static_cast<size_t>(end) != name.size() || index >= count)
    return 0;
  // Exactly the name Segment::PathFor writes, so no "+1" or leading zeros.
  if (name != "shard-" + std::to_string(index) + "-of-" +
                  std::to_string(count) + ".seg")
    return 0;
  return count;
}

}  // namespace

Status CheckShardCount(const char* command, const std::string& storage,
                       const std::string& model, uint32_t shards,
                       bool allow_new) {
  const std::string dir = storage + "/" + model;
  std::map<uint32_t, std::set<std::string>> others;  // sorted, for messages
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const uint32_t count = ShardCountOf(name);
    if (count != 0 && count != shards) others[count].insert(name);
  }
  // An unreadable directory is left to the segment open to report.
  if (others.empty()) return Status::Ok();

  std::string held, counts;
  for (const auto& [count, names] : others) {
    const bool first = held.empty();
    std::string files;
    size_t listed = 0;
    for (const std::string& n : names) {
      if (listed++ == 3) {
        files += ", ...";
        break;
      }
      files += (listed == 1 ? "" : ", ") + n;
    }
    held += (first ? "" : " and at ") + std::to_string(count) + " shards (" +
            files + ")";
    counts += (first ? "" : " or ") + std::string("--shards ") +
              std::to_string(count);
  }
  const std::string n = std::to_string(shards);
  if (allow_new) {
    std::fprintf(stderr,
                 "shardps %s: WARNING: --new: starting a new %s-shard model "
                 "'%s' from scratch beside the same model trained at %s in "
                 "%s; those segments are untouched, and this model does not "
                 "see their training\n",
                 command, n.c_str(), model.c_str(), held.c_str(), dir.c_str());
    return Status::Ok();
  }
  return Status(
      Code::kInvalidArgument,
      "storage " + dir + " already holds model '" + model + "' trained at " +
          held + ": those segments are untouched. Serve them with " + counts +
          " (shardps does not reshard a trained model), or restore a "
          "checkpoint into new storage (`shardps restore --from CKPT --spec "
          "SPEC --storage NEW_DIR`), or pass --new to start a fresh " +
          n + "-shard model beside them");
}

}  // namespace shardps::cli
