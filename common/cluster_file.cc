#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/curve_keys.h"
#include "common/file_writer.h"
#include "common/hex.h"
#include "common/posix_file.h"
#include "common/quoted_string.h"
#include "shardps/cluster.h"

namespace shardps {
namespace {

// inproc:// is not accepted: it connects only sockets of one ZeroMQ context,
// and a client and a server never share one (each owns its own, and they
// usually run in different processes), so such a shard could never answer.
constexpr const char* kEndpointSchemes[] = {"tcp://", "ipc://"};
constexpr size_t kSpecHashDigits = 16;
// The most shards a pattern may name: the same bound as `serve --shards`.
constexpr int64_t kMaxPatternShards = 4096;
constexpr std::string_view kIndexPlaceholder = "{i}";

Status Invalid(const std::string& key, const std::string& what) {
  return Status::InvalidArgument(key + ": " + what);
}

std::string ShardKey(size_t position) {
  return "shard[" + std::to_string(position) + "]";
}

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Hand-edited files may drop leading zeros or use upper case, so reading
// accepts 1..16 digits of either case; writing is always canonical.
Result<uint64_t> ParseSpecHash(const toml::node& node) {
  const std::string want = "must be a string \"0x\" + 16 hex digits";
  const std::optional<std::string> text = node.value_exact<std::string>();
  if (!text) return Invalid("spec_hash", want);
  if (text->size() < 3 || text->size() > 2 + kSpecHashDigits ||
      text->compare(0, 2, "0x") != 0) {
    return Invalid("spec_hash", want + " (got '" + *text + "')");
  }
  uint64_t hash = 0;
  for (size_t i = 2; i < text->size(); ++i) {
    const int digit = HexDigitValue((*text)[i]);
    if (digit < 0) return Invalid("spec_hash", want + " (got '" + *text + "')");
    hash = (hash << 4) | static_cast<uint64_t>(digit);
  }
  return hash;
}

Result<std::string> RequireString(const toml::node* node,
                                  const std::string& key) {
  if (node == nullptr) return Invalid(key, "missing");
  const std::optional<std::string> text = node->value_exact<std::string>();
  if (!text) return Invalid(key, "must be a string");
  return *text;
}

Status CheckEndpoint(const std::string& endpoint, const std::string& key) {
  Status s = CheckShardEndpoint(endpoint);
  if (!s.ok()) return Invalid(key, s.message());
  return s;
}

Result<uint32_t> ParseIndex(const toml::node* node, const std::string& key) {
  if (node == nullptr) return Invalid(key, "missing");
  const toml::value<int64_t>* value = node->as_integer();
  if (value == nullptr) return Invalid(key, "must be an integer");
  const int64_t index = value->get();
  if (index < 0 || index > static_cast<int64_t>(UINT32_MAX)) {
    return Invalid(key, "must be in 0.." + std::to_string(UINT32_MAX) +
                            " (got " + std::to_string(index) + ")");
  }
  return static_cast<uint32_t>(index);
}

Result<ShardAddress> ParseShard(const toml::node& node, size_t position) {
  const std::string key = ShardKey(position);
  const toml::table* table = node.as_table();
  if (table == nullptr) return Invalid(key, "must be a table ([[shard]])");
  for (const auto& [name, value] : *table) {
    const std::string_view k = name.str();
    if (k != "index" && k != "endpoint" && k != "segment") {
      return Invalid(key + "." + std::string(k), "unknown key");
    }
  }

  ShardAddress shard;
  Result<uint32_t> index = ParseIndex(table->get("index"), key + ".index");
  if (!index.ok()) return index.status();
  shard.index = *index;

  Result<std::string> endpoint =
      RequireString(table->get("endpoint"), key + ".endpoint");
  if (!endpoint.ok()) return endpoint.status();
  SHARDPS_RETURN_IF_ERROR(CheckEndpoint(*endpoint, key + ".endpoint"));
  shard.endpoint = std::move(*endpoint);

  if (const toml::node* segment = table->get("segment")) {
    Result<std::string> path = RequireString(segment, key + ".segment");
    if (!path.ok()) return path.status();
    shard.segment = std::move(*path);
  }
  return shard;
}

// Shards may appear in any order, but each index exactly once, so that a
// client can route by index without holes.
Result<std::vector<ShardAddress>> ParseShards(const toml::node* node) {
  if (node == nullptr) return Invalid("shard", "missing (need [[shard]])");
  const toml::array* array = node->as_array();
  if (array == nullptr) return Invalid("shard", "must be an array of tables");
  if (array->empty()) return Invalid("shard", "need at least one shard");

  std::vector<ShardAddress> shards;
  std::vector<size_t> position_of(array->size(), SIZE_MAX);
  for (size_t i = 0; i < array->size(); ++i) {
    Result<ShardAddress> shard = ParseShard(*array->get(i), i);
    if (!shard.ok()) return shard.status();
    const uint32_t index = shard->index;
    if (index < position_of.size()) {
      if (position_of[index] != SIZE_MAX) {
        return Invalid(ShardKey(i) + ".index",
                       "duplicate index " + std::to_string(index));
      }
      position_of[index] = i;
    }
    shards.push_back(std::move(*shard));
  }
  for (size_t index = 0; index < position_of.size(); ++index) {
    if (position_of[index] == SIZE_MAX) {
      return Invalid("shard", "indices must be 0.." +
                                  std::to_string(shards.size() - 1) +
                                  ", missing " + std::to_string(index));
    }
  }
  std::sort(shards.begin(), shards.end(),
            [](const ShardAddress& a, const ShardAddress& b) {
              return a.index < b.index;
            });
  return shards;
}

// The pattern form: `shards = N` and `endpoint_pattern = "...{i}..."`, each
// {i} replaced by the shard index. What a Kubernetes StatefulSet behind a
// headless Service needs (tcp://shardps-{i}.shardps:7000): a file that is
// the same for every cluster size but N, so nothing has to be generated.
Result<std::vector<ShardAddress>> ExpandPattern(const toml::node* count,
                                                const toml::node* pattern) {
  if (count == nullptr)
    return Invalid("shards", "missing (endpoint_pattern needs shards = N)");
  if (pattern == nullptr)
    return Invalid("endpoint_pattern",
                   "missing (shards = N needs an endpoint_pattern such as "
                   "\"tcp://shardps-{i}.shardps:7000\")");
  const toml::value<int64_t>* n = count->as_integer();
  if (n == nullptr) return Invalid("shards", "must be an integer");
  if (n->get() < 1 || n->get() > kMaxPatternShards)
    return Invalid("shards", "must be in 1.." +
                                 std::to_string(kMaxPatternShards) + " (got " +
                                 std::to_string(n->get()) + ")");
  Result<std::string> text = RequireString(pattern, "endpoint_pattern");
  if (!text.ok()) return text.status();
  if (text->find(kIndexPlaceholder) == std::string::npos)
    return Invalid("endpoint_pattern",
                   "must contain {i} (the shard index), e.g. "
                   "\"tcp://shardps-{i}.shardps:7000\" (got '" +
                       *text + "')");
  std::vector<ShardAddress> shards;
  for (int64_t i = 0; i < n->get(); ++i) {
    ShardAddress shard;
    shard.index = static_cast<uint32_t>(i);
    const std::string index = std::to_string(i);
    for (size_t at = 0; at < text->size();) {
      const size_t hit = text->find(kIndexPlaceholder, at);
      if (hit == std::string::npos) {
        shard.endpoint.append(*text, at, std::string::npos);
        break;
      }
      shard.endpoint.append(*text, at, hit - at);
      shard.endpoint += index;
      at = hit + kIndexPlaceholder.size();
    }
    SHARDPS_RETURN_IF_ERROR(CheckEndpoint(shard.endpoint, "endpoint_pattern"));
    shards.push_back(std::move(shard));
  }
  return shards;
}

Result<ClusterInfo> ParseClusterTable(const toml::table& root) {
  // A model spec has a [model] table (and [[tensor]]s): a common mix-up,
  // since `launch` takes the spec and everything after takes the cluster
  // file it writes.
  if (root.get_as<toml::table>("model") != nullptr ||
      root.get("tensor") != nullptr)
    return Status(Code::kInvalidArgument,
                  "this is a model spec (it has a [model] table), not a "
                  "cluster file: pass the cluster file `shardps launch` wrote "
                  "(its --cluster-file, cluster.toml by default)");
  for (const auto& [name, value] : root) {
    const std::string_view k = name.str();
    if (k != "model" && k != "spec_hash" && k != "server_key" && k != "shard" &&
        k != "shards" && k != "endpoint_pattern") {
      return Invalid(std::string(k), "unknown key");
    }
  }

  ClusterInfo cluster;
  Result<std::string> model = RequireString(root.get("model"), "model");
  if (!model.ok()) return model.status();
  if (model->empty()) return Invalid("model", "must not be empty");
  cluster.model = std::move(*model);

  if (const toml::node* hash = root.get("spec_hash")) {
    Result<uint64_t> parsed = ParseSpecHash(*hash);
    if (!parsed.ok()) return parsed.status();
    cluster.spec_hash = *parsed;
  }

  if (const toml::node* key = root.get("server_key")) {
    Result<std::string> text = RequireString(key, "server_key");
    if (!text.ok()) return text.status();
    if (!IsCurveKey(*text))
      return Invalid("server_key",
                     "must be a 40-character Z85 CURVE public "
                     "key (the servers' .pub file)");
    cluster.server_key = std::move(*text);
  }

  const toml::node* count = root.get("shards");
  const toml::node* pattern = root.get("endpoint_pattern");
  const bool pattern_form = count != nullptr || pattern != nullptr;
  if (pattern_form && root.get("shard") != nullptr)
    return Invalid("shard",
                   "give either [[shard]] tables or shards = N with "
                   "endpoint_pattern, not both");
  Result<std::vector<ShardAddress>> shards =
      pattern_form ? ExpandPattern(count, pattern)
                   : ParseShards(root.get("shard"));
  if (!shards.ok()) return shards.status();
  cluster.shards = std::move(*shards);
  return cluster;
}

}  // namespace

Status CheckShardEndpoint(const std::string& endpoint) {
  for (const char* scheme : kEndpointSchemes) {
    const size_t len = std::strlen(scheme);
    if (endpoint.compare(0, len, scheme) == 0) {
      if (endpoint.size() == len) {
        return Status::InvalidArgument("no address after " +
                                       std::string(scheme));
      }
      return Status::Ok();
    }
  }
  const std::string_view inproc = "inproc://";
  if (endpoint.compare(0, inproc.size(), inproc) == 0) {
    return Status::InvalidArgument(
        "inproc:// endpoints cannot reach a shard server (they connect only "
        "within one ZeroMQ context, and client and server each own theirs); "
        "use tcp://host:port or ipc://path (got '" +
        endpoint + "')");
  }
  return Status::InvalidArgument("must start with tcp:// or ipc:// (got '" +
                                 endpoint + "')");
}

std::string ClusterInfo::ToToml() const {
  std::string out = "model = " + QuoteString(model) + "\n";
  if (spec_hash) {
    out += "spec_hash = " + QuoteString(Hex(*spec_hash)) + "\n";
  }
  if (!server_key.empty())
    out += "server_key = " + QuoteString(server_key) + "\n";
  for (const ShardAddress& shard : shards) {
    out += "\n[[shard]]\n";
    out += "index = " + std::to_string(shard.index) + "\n";
    out += "endpoint = " + QuoteString(shard.endpoint) + "\n";
    // An empty segment reads back as empty whether written or not; leaving
    // it out keeps remote-host entries short.
    if (!shard.segment.empty()) {
      out += "segment = " + QuoteString(shard.segment) + "\n";
    }
  }
  return out;
}

Result<ClusterInfo> ParseCluster(std::string_view toml_text) {
  try {
    const toml::table root = toml::parse(toml_text);
    return ParseClusterTable(root);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    const std::string where =
        std::to_string(at.line) + ":" + std::to_string(at.column);
    return Status(Code::kInvalidArgument,
                  where + ": " + std::string(e.description()));
  }
}

Result<ClusterInfo> LoadCluster(const std::string& path) {
  Result<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) {
      return Status(Code::kNotFound,
                    path +
                        ": no such file: is `shardps launch` still starting? "
                        "it writes this file when every shard is up (or pass "
                        "the path you gave launch --cluster-file)");
    }
    return text.status();  // already names the path
  }
  Result<ClusterInfo> cluster = ParseCluster(*text);
  if (!cluster.ok()) return cluster.status().WithContext(path);
  return cluster;
}

Status SaveCluster(const ClusterInfo& cluster, const std::string& path) {
  // Validating the rendered text first guarantees every file we write can be
  // loaded again, and that a bad value never replaces a good file.
  const std::string text = cluster.ToToml();
  Result<ClusterInfo> check = ParseCluster(text);
  if (!check.ok()) return check.status().WithContext(path);

  return WriteFileAtomically(path, text);
}

}  // namespace shardps
