#include "common/slurm_hostlist.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace shardps {
namespace {

using Names = std::vector<std::string>;

Names Expand(const std::string& list) {
  auto names = ExpandHostlist(list);
  INFO(list << ": " << names.status().ToString());
  REQUIRE(names.ok());
  return *names;
}

std::string Error(const std::string& list) {
  auto names = ExpandHostlist(list);
  INFO(list);
  REQUIRE_FALSE(names.ok());
  CHECK(names.status().code() == Code::kInvalidArgument);
  return names.status().message();
}

bool Has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST_CASE("ExpandHostlist expands ranges, lists and plain names in order",
          "[slurm_hostlist]") {
  CHECK(Expand("node1") == Names{"node1"});
  CHECK(Expand("a,b,c") == Names{"a", "b", "c"});
  CHECK(Expand("node[1-3,7]") == Names{"node1", "node2", "node3", "node7"});
  CHECK(Expand("n[5]") == Names{"n5"});
  CHECK(Expand("n[7-7]") == Names{"n7"});
  CHECK(Expand("n[9-11]") == Names{"n9", "n10", "n11"});
  CHECK(Expand("[1-2]") == Names{"1", "2"});
  CHECK(Expand("n-[1-2]") == Names{"n-1", "n-2"});
  CHECK(Expand("login,gpu[1-2],cpu[10-11]") ==
        Names{"login", "gpu1", "gpu2", "cpu10", "cpu11"});
}

TEST_CASE("ExpandHostlist keeps each range's zero padding",
          "[slurm_hostlist]") {
  const Names ten = Expand("n[01-10]");
  REQUIRE(ten.size() == 10);
  CHECK(ten.front() == "n01");
  CHECK(ten[8] == "n09");
  CHECK(ten.back() == "n10");
  // The width is the first number's, as in Slurm.
  CHECK(Expand("n[1-010]").back() == "n10");
  CHECK(Expand("n[001-3]") == Names{"n001", "n002", "n003"});
  CHECK(Expand("n[01,3]") == Names{"n01", "n3"});
}

TEST_CASE("ExpandHostlist multiplies several bracket groups, leftmost slowest",
          "[slurm_hostlist]") {
  CHECK(Expand("rack[1-2]-n[1-2]") ==
        Names{"rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"});
  CHECK(Expand("a[1-3]x[1,5]") ==
        Names{"a1x1", "a1x5", "a2x1", "a2x5", "a3x1", "a3x5"});
}

TEST_CASE("ExpandHostlist keeps duplicates in order", "[slurm_hostlist]") {
  CHECK(Expand("n[1-2],n1") == Names{"n1", "n2", "n1"});
  CHECK(Expand("n[1,1]") == Names{"n1", "n1"});
}

TEST_CASE("ExpandHostlist refuses bad lists, naming the problem",
          "[slurm_hostlist]") {
  CHECK(Has(Error(""), "empty"));
  CHECK(Has(Error("a,,b"), "empty item"));
  CHECK(Has(Error("a,"), "empty item"));
  CHECK(Has(Error(",a"), "empty item"));
  CHECK(Has(Error("n[1-3"), "'[' without its ']'"));
  CHECK(Has(Error("n[1-3,x"), "'[' without its ']'"));
  CHECK(Has(Error("n1-3]"), "']' without its '['"));
  CHECK(Has(Error("n[[1]]"), "nested"));
  CHECK(Has(Error("n[]"), "empty bracket group"));
  CHECK(Has(Error("n[1-2,]"), "empty range"));
  CHECK(Has(Error("n[1,,2]"), "empty range"));
  CHECK(Has(Error("n[3-1]"), "3-1 is reversed"));
  CHECK(Has(Error("n[1-]"), "bound is empty"));
  CHECK(Has(Error("n[-2]"), "bound is empty"));
  CHECK(Has(Error("n[a-b]"), "not a number"));
  CHECK(Has(Error("n[1-2-3]"), "not a number"));
  CHECK(Has(Error("n[+1-2]"), "not a number"));
  CHECK(Has(Error("n[1234567890123456789]"), "too long"));
  CHECK(Has(Error("a b"), "whitespace"));
  CHECK(Has(Error("n[1-2]"
                  "\n"),
            "whitespace"));
  // The item is named, so a long list's bad part can be found.
  CHECK(Has(Error("ok[1-2],bad[2-1]"), "'bad[2-1]'"));
}

TEST_CASE("ExpandHostlist refuses lists of more than 65536 hosts",
          "[slurm_hostlist]") {
  CHECK(Expand("x[0-65535]").size() == kMaxHostlistHosts);
  CHECK(Has(Error("x[0-65536]"), "more than 65536 hosts"));
  CHECK(Has(Error("n[1-99999999999]"), "more than 65536 hosts"));
  // Products and sums over items count too, before anything is built.
  CHECK(Has(Error("r[1-1000]-n[1-1000]"), "more than 65536 hosts"));
  CHECK(Has(Error("a[0-65535],b"), "more than 65536 hosts"));
  CHECK(Has(Error("a[0-40000],b[0-40000]"), "more than 65536 hosts"));
}

// `scontrol show hostnames` is Slurm's own expansion. It needs a Slurm
// config but no controller, so the test gives it a minimal one.
std::optional<Names> ScontrolHostnames(const std::string& conf,
                                       const std::string& list) {
  const std::string command = "SLURM_CONF='" + conf +
                              "' scontrol show hostnames '" + list +
                              "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  Names names;
  char line[512];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::string name(line);
    if (!name.empty() && name.back() == '\n') name.pop_back();
    names.push_back(name);
  }
  if (::pclose(pipe) != 0) return std::nullopt;
  return names;
}

TEST_CASE("ExpandHostlist agrees with scontrol show hostnames",
          "[slurm_hostlist]") {
  if (std::system("command -v scontrol >/dev/null 2>&1") != 0) {
    WARN("SKIPPED: scontrol is not installed (apt-get install slurm-client)");
    return;
  }
  test::TempDir dir;
  const std::string conf = dir.File("slurm.conf");
  std::ofstream(conf) << "ClusterName=shardps-test\nSlurmctldHost=localhost\n";
  if (!ScontrolHostnames(conf, "probe").has_value()) {
    WARN("SKIPPED: scontrol show hostnames does not run here");
    return;
  }
  for (const std::string list :
       {"node[1-3,7]", "n[01-10]", "n[1-010]", "n[001-3],x", "n[01,3]",
        "rack[1-2]-n[01-02]", "a[1-3]x[1-2]", "n[1-2],n1", "[1-2]",
        "login1,gpu[08-11],cpu[1-2,5-6]", "n-[9-12]", "x[0-999]"}) {
    INFO(list);
    const auto want = ScontrolHostnames(conf, list);
    REQUIRE(want.has_value());
    CHECK(Expand(list) == *want);
  }
}

}  // namespace
}  // namespace shardps
