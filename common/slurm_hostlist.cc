#include "common/slurm_hostlist.h"

#include <cstdint>
#include <string>
#include <utility>

namespace shardps {

namespace {

// Numbers in a range have at most this many digits: enough for any node
// name Slurm accepts, and no uint64 overflow while parsing.
constexpr size_t kMaxDigits = 18;

Status Bad(std::string_view item, const std::string& problem) {
  return Status::InvalidArgument("host list item '" + std::string(item) +
                                 "': " + problem);
}

// One bracket group's numbers, each already formatted with its width.
using Group = std::vector<std::string>;

Result<uint64_t> ParseNumber(std::string_view item, std::string_view digits) {
  if (digits.empty()) return Bad(item, "a range bound is empty");
  if (digits.size() > kMaxDigits)
    return Bad(item, "the number '" + std::string(digits) + "' is too long");
  uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9')
      return Bad(item, "'" + std::string(digits) +
                           "' is not a number (a range is digits, e.g. 1-8)");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

// Zero-pads `value` to `width` digits.
std::string Padded(uint64_t value, size_t width) {
  std::string text = std::to_string(value);
  if (text.size() < width) text.insert(0, width - text.size(), '0');
  return text;
}

// Parses the inside of one "[...]" (without the brackets) into `group`,
// refusing more than `budget` numbers.
Status ParseGroup(std::string_view item, std::string_view inside, size_t budget,
                  Group* group) {
  if (inside.empty()) return Bad(item, "an empty bracket group []");
  size_t start = 0;
  for (;;) {
    const size_t comma = inside.find(',', start);
    const std::string_view range = inside.substr(
        start, comma == std::string_view::npos ? inside.npos : comma - start);
    if (range.empty())
      return Bad(item, "an empty range in [" + std::string(inside) +
                           "] (a stray comma?)");
    const size_t dash = range.find('-');
    const std::string_view lo_text = range.substr(0, dash);
    auto lo = ParseNumber(item, lo_text);
    if (!lo.ok()) return lo.status();
    uint64_t hi = *lo;
    if (dash != std::string_view::npos) {
      auto parsed = ParseNumber(item, range.substr(dash + 1));
      if (!parsed.ok()) return parsed.status();
      hi = *parsed;
    }
    if (hi < *lo)
      return Bad(item, "the range " + std::string(range) +
                           " is reversed (write low-high)");
    if (hi - *lo >= budget - group->size())
      return Bad(item, "stands for more than " +
                           std::to_string(kMaxHostlistHosts) + " hosts");
    for (uint64_t n = *lo; n <= hi; ++n)
      group->push_back(Padded(n, lo_text.size()));
    if (comma == std::string_view::npos) return Status::Ok();
    start = comma + 1;
  }
}

// Appends the names one item stands for to `out`, keeping out's size at
// most kMaxHostlistHosts.
Status ExpandItem(std::string_view item, std::vector<std::string>* out) {
  if (item.empty())
    return Status::InvalidArgument("host list: an empty item (a stray comma?)");
  // Split into literal text and groups: texts[0] g[0] texts[1] g[1] ...
  std::vector<std::string> texts(1);
  std::vector<Group> groups;
  const size_t budget = kMaxHostlistHosts - out->size();
  for (size_t i = 0; i < item.size(); ++i) {
    const char c = item[i];
    if (c == ']') return Bad(item, "a ']' without its '['");
    if (c != '[') {
      texts.back() += c;
      continue;
    }
    const size_t close = item.find(']', i + 1);
    if (close == std::string_view::npos)
      return Bad(item, "a '[' without its ']'");
    const std::string_view inside = item.substr(i + 1, close - i - 1);
    if (inside.find('[') != std::string_view::npos)
      return Bad(item, "nested brackets");
    groups.emplace_back();
    SHARDPS_RETURN_IF_ERROR(ParseGroup(item, inside, budget, &groups.back()));
    texts.emplace_back();
    i = close;
  }
  size_t count = 1;
  for (const Group& g : groups) {
    if (count > budget / g.size())
      return Bad(item, "stands for more than " +
                           std::to_string(kMaxHostlistHosts) + " hosts");
    count *= g.size();
  }
  if (count > budget)
    return Bad(item, "the list stands for more than " +
                         std::to_string(kMaxHostlistHosts) + " hosts");
  // Odometer over the groups, the last one turning fastest.
  std::vector<size_t> digit(groups.size(), 0);
  for (size_t n = 0; n < count; ++n) {
    std::string name = texts[0];
    for (size_t g = 0; g < groups.size(); ++g)
      name += groups[g][digit[g]] + texts[g + 1];
    out->push_back(std::move(name));
    for (size_t g = groups.size(); g-- > 0;) {
      if (++digit[g] < groups[g].size()) break;
      digit[g] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> ExpandHostlist(std::string_view hostlist) {
  if (hostlist.empty())
    return Status::InvalidArgument("host list: empty (no hosts)");
  for (char c : hostlist)
    if (static_cast<unsigned char>(c) <= ' ')
      return Status::InvalidArgument(
          "host list '" + std::string(hostlist) +
          "': contains whitespace or a control character; separate hosts "
          "with commas");
  std::vector<std::string> hosts;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= hostlist.size(); ++i) {
    if (i < hostlist.size()) {
      const char c = hostlist[i];
      if (c == '[') ++depth;
      if (c == ']') --depth;
      // A comma inside brackets separates ranges, not items; unbalanced
      // brackets are reported by ExpandItem with the item they are in.
      if (c != ',' || depth > 0) continue;
    }
    SHARDPS_RETURN_IF_ERROR(
        ExpandItem(hostlist.substr(start, i - start), &hosts));
    start = i + 1;
    depth = 0;
  }
  return hosts;
}

}  // namespace shardps
