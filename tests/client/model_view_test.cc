#include "shardps/model_view.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/segment.h"
#include "shardps/client.h"
#include "tests/in_process_cluster.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

constexpr float kLr = 0.5f;
constexpr size_t kW = 6000;  // floats of "w"

// "w" is 6000 floats: 6 blocks dealt to shards 0,1,2,0,1,2, the last one
// short (880 floats). "b" is one small block on shard 0.
ModelSpec ViewSpec(const std::string& storage,
                   const std::string& name = "mview",
                   std::vector<uint64_t> w_shape = {4, 1500}) {
  return test::MakeSpec(name, storage,
                        {{"w", std::move(w_shape), "uniform:-2,2", 5},
                         {"b", {10}, "constant:0.75"}},
                        kLr);
}

ModelSpec DefaultViewSpec(const std::string& storage) {
  return ViewSpec(storage);
}

std::unique_ptr<ModelView> MustOpen(const std::vector<std::string>& paths) {
  auto view = ModelView::Open(paths);
  INFO(view.status().ToString());
  REQUIRE(view.ok());
  return std::move(view).value();
}

std::unique_ptr<Client> MustConnect(const ClusterInfo& info) {
  auto client = Client::Connect(info);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

std::vector<float> MustPull(Client& client, const std::string& tensor,
                            size_t n) {
  std::vector<float> out(n);
  Status s = client.Pull(tensor, out.data(), n).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

// Index of the first element where the map and the vector differ, or -1.
int64_t FirstMismatch(const Eigen::Map<const Eigen::VectorXf>& map,
                      const std::vector<float>& want) {
  if (static_cast<size_t>(map.size()) != want.size()) return 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (map[static_cast<Eigen::Index>(i)] != want[i])
      return static_cast<int64_t>(i);
  return -1;
}

// Creates (and releases) one segment of `spec` without a server.
std::string MakeSegment(const ModelSpec& spec, uint32_t shard, uint32_t shards,
                        const std::string& path) {
  SegmentOpenReport report;
  auto seg = Segment::OpenForServing(spec, shard, shards, path, &report);
  INFO(seg.status().ToString());
  REQUIRE(seg.ok());
  return path;
}

TEST_CASE("model view shows a tensor spread over shards as one array",
          "[model_view]") {
  test::InProcessCluster cluster(3, 1, DefaultViewSpec);
  auto view = ModelView::Open(cluster.info());
  INFO(view.status().ToString());
  REQUIRE(view.ok());
  auto client = MustConnect(cluster.info());

  auto w = (*view)->Tensor("w");
  REQUIRE(w.ok());
  CHECK(w->size() == static_cast<Eigen::Index>(kW));
  CHECK(FirstMismatch(*w, MustPull(*client, "w", kW)) == -1);
  // Not a vacuous match: these are the spec's random initial values.
  CHECK(FirstMismatch(*w, test::InitialTensor(cluster.spec().tensors[0])) ==
        -1);
  CHECK(w->maxCoeff() - w->minCoeff() > 3.0f);

  auto b = (*view)->Tensor("b");
  REQUIRE(b.ok());
  CHECK(FirstMismatch(*b, std::vector<float>(10, 0.75f)) == -1);
}

TEST_CASE("model view Matrix has the tensor's shape", "[model_view]") {
  test::InProcessCluster cluster(3, 1, DefaultViewSpec);
  auto view = MustOpen(cluster.segment_paths());
  const std::vector<float> w = test::InitialTensor(cluster.spec().tensors[0]);
  auto m = view->Matrix("w");
  REQUIRE(m.ok());
  REQUIRE(m->rows() == 4);
  REQUIRE(m->cols() == 1500);
  for (Eigen::Index r = 0; r < 4; ++r)
    for (Eigen::Index c = 0; c < 1500; ++c) {
      INFO("row " << r << " col " << c);
      REQUIRE((*m)(r, c) == w[static_cast<size_t>(r * 1500 + c)]);
    }
  auto b = view->Matrix("b");
  REQUIRE(b.ok());
  CHECK(b->rows() == 10);
  CHECK(b->cols() == 1);
}

TEST_CASE("model view shows pushed updates without reopening",
          "[model_view][concurrency]") {
  test::InProcessCluster cluster(3, 2, DefaultViewSpec);
  auto view = MustOpen(cluster.segment_paths());
  auto client = MustConnect(cluster.info());
  auto w = view->Tensor("w");  // taken once, before any update
  REQUIRE(w.ok());
  CHECK(*view->Updates("w") == 0);

  std::vector<float> expected = test::InitialTensor(cluster.spec().tensors[0]);
  for (int step = 1; step <= 3; ++step) {
    std::vector<float> g(kW);
    for (size_t i = 0; i < kW; ++i)
      g[i] = static_cast<float>(static_cast<int>((i + step) % 5) - 2);
    REQUIRE(client->Push("w", g.data(), kW).Wait().ok());
    for (size_t i = 0; i < kW; ++i) expected[i] -= kLr * g[i];
    INFO("after push " << step);
    CHECK(FirstMismatch(*w, expected) == -1);
    CHECK(FirstMismatch(*w, MustPull(*client, "w", kW)) == -1);
    // Every push updates each of the six blocks once.
    CHECK(*view->Updates("w") == 6u * step);
  }
  CHECK(*view->Updates("b") == 0);
}

TEST_CASE("model view Copy equals the live tensor", "[model_view]") {
  test::InProcessCluster cluster(3, 1, DefaultViewSpec);
  auto view = MustOpen(cluster.segment_paths());
  auto client = MustConnect(cluster.info());
  const std::vector<float> g(kW, 1.0f);
  REQUIRE(client->Push("w", g.data(), kW).Wait().ok());

  std::vector<float> copy(kW, -999.0f);
  Status s = view->Copy("w", copy.data(), copy.size());
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(FirstMismatch(*view->Tensor("w"), copy) == -1);
  CHECK(FirstMismatch(*view->Tensor("w"), MustPull(*client, "w", kW)) == -1);

  CHECK(view->Copy("w", copy.data(), kW - 1).code() == Code::kSizeMismatch);
  CHECK(view->Copy("w", copy.data(), kW + 1).code() == Code::kSizeMismatch);
}

TEST_CASE("model view reports an unknown tensor", "[model_view]") {
  test::InProcessCluster cluster(3, 1, DefaultViewSpec);
  auto view = MustOpen(cluster.segment_paths());
  std::vector<float> out(10);
  CHECK(view->Tensor("nope").status().code() == Code::kNotFound);
  CHECK_THAT(view->Tensor("nope").status().message(), Contains("nope"));
  CHECK(view->Matrix("nope").status().code() == Code::kNotFound);
  CHECK(view->Copy("nope", out.data(), out.size()).code() == Code::kNotFound);
  CHECK(view->Updates("nope").status().code() == Code::kNotFound);
}

TEST_CASE("model view knows the layout and spec hash", "[model_view]") {
  test::InProcessCluster cluster(3, 1, DefaultViewSpec);
  // Listed in reverse order: each segment says which shard it is.
  std::vector<std::string> paths = cluster.segment_paths();
  std::swap(paths[0], paths[2]);
  auto view = MustOpen(paths);
  CHECK(view->spec_hash() == SpecHash(cluster.spec()));
  CHECK(view->layout().shards() == 3);
  REQUIRE(view->layout().Find("w") != nullptr);
  CHECK(view->layout().Find("w")->num_blocks == 6);
  auto w = view->Tensor("w");
  REQUIRE(w.ok());
  CHECK(FirstMismatch(*w, test::InitialTensor(cluster.spec().tensors[0])) ==
        -1);
}

TEST_CASE("model view refuses segments of different models", "[model_view]") {
  test::TempDir dir;
  const ModelSpec a = ViewSpec(dir.path());
  std::vector<std::string> paths;
  for (uint32_t s = 0; s < 3; ++s)
    paths.push_back(MakeSegment(a, s, 3, dir.File("a" + std::to_string(s))));
  // Sanity: the untouched set opens.
  MustOpen(paths);

  std::string odd;
  SECTION("another model name") {
    odd = MakeSegment(ViewSpec(dir.path(), "other"), 1, 3, dir.File("x"));
  }
  SECTION("same name, another shape") {
    odd = MakeSegment(ViewSpec(dir.path(), "mview", {4, 1400}), 1, 3,
                      dir.File("x"));
  }
  SECTION("same model, another shard count") {
    odd = MakeSegment(a, 1, 2, dir.File("x"));
  }
  paths[1] = odd;
  auto view = ModelView::Open(paths);
  REQUIRE_FALSE(view.ok());
  CHECK(view.status().code() == Code::kSpecMismatch);
}

TEST_CASE("model view refuses the same shard twice", "[model_view]") {
  test::TempDir dir;
  const ModelSpec spec = ViewSpec(dir.path());
  const std::string s0 = MakeSegment(spec, 0, 3, dir.File("s0"));
  MakeSegment(spec, 1, 3, dir.File("s1"));
  const std::string s2 = MakeSegment(spec, 2, 3, dir.File("s2"));
  auto view = ModelView::Open({s0, s0, s2});
  REQUIRE_FALSE(view.ok());
  CHECK(view.status().code() == Code::kInvalidArgument);
  CHECK_THAT(view.status().message(), Contains("twice"));
}

TEST_CASE("model view reports missing, damaged and unlisted segments",
          "[model_view]") {
  test::TempDir dir;
  const ModelSpec spec = ViewSpec(dir.path());
  const std::string s0 = MakeSegment(spec, 0, 2, dir.File("s0"));
  const std::string s1 = MakeSegment(spec, 1, 2, dir.File("s1"));

  CHECK(ModelView::Open({s0, dir.File("missing")}).status().code() ==
        Code::kNotFound);
  CHECK(ModelView::Open(std::vector<std::string>{}).status().code() ==
        Code::kInvalidArgument);

  test::WriteBytes(dir.File("junk"), std::vector<char>(8192, 'x'));
  CHECK(ModelView::Open({s0, dir.File("junk")}).status().code() ==
        Code::kCorrupt);

  ClusterInfo cluster;
  cluster.model = spec.name;
  cluster.shards = {{0, "tcp://127.0.0.1:1", s0}, {1, "tcp://127.0.0.1:2", ""}};
  auto view = ModelView::Open(cluster);
  REQUIRE_FALSE(view.ok());
  CHECK(view.status().code() == Code::kInvalidArgument);

  cluster.shards[1].segment = s1;
  CHECK(ModelView::Open(cluster).ok());
}

}  // namespace
}  // namespace shardps
