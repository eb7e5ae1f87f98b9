// Sparse tables through the client against in-process shard servers: exact
// sums with duplicate ids across shards, per-row optimizer steps, capacity,
// concurrent clients and ModelView row lookups.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/segment.h"
#include "shardps/client.h"
#include "shardps/model_spec.h"
#include "shardps/model_view.h"
#include "tests/in_process_cluster.h"
#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

constexpr uint64_t kDim = 4;

// Table "emb" (dim 4, sgd lr 1, init constant 0.5) beside a dense tensor,
// so tables and tensors share segments.
ModelSpec TableModel(const std::string& storage, uint64_t capacity,
                     const std::string& kind) {
  ModelSpec spec = test::MakeSpec("tables", storage, {{"dense", {10}, "zeros"}},
                                  /*lr=*/1.0);
  TableSpec t;
  t.name = "emb";
  t.dim = kDim;
  t.capacity = capacity;
  t.init = *InitSpec::Parse("constant:0.5");
  if (kind != "sgd") {
    t.optimizer = spec.optimizer;
    t.optimizer->kind = kind;
    t.optimizer->lr = 0.1;
  }
  spec.tables.push_back(t);
  REQUIRE(ValidateModelSpec(spec).ok());
  return spec;
}

std::unique_ptr<Client> MustConnect(const ClusterInfo& cluster) {
  auto client = Client::Connect(cluster);
  INFO(client.status().ToString());
  REQUIRE(client.ok());
  return std::move(client).value();
}

std::vector<float> MustPullRows(Client& client,
                                const std::vector<uint64_t>& ids) {
  std::vector<float> out(ids.size() * kDim, -99.0f);
  Status s = client.PullRows("emb", ids.data(), ids.size(), out.data()).Wait();
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

TEST_CASE("push rows sums duplicate ids exactly across shards", "[table]") {
  const uint32_t shards = GENERATE(1u, 3u);
  INFO(shards << " shards");
  test::InProcessCluster cluster(shards, 1, [](const std::string& storage) {
    return TableModel(storage, 1000, "sgd");
  });
  auto client = MustConnect(cluster.info());
  REQUIRE(client->tables().size() == 1);
  CHECK(client->tables()[0].dim == kDim);

  // Ids spread over the id space, with repeats inside one push.
  const std::vector<uint64_t> ids = {7, 1ull << 40, 7,          123456789,
                                     7, UINT64_MAX, 1ull << 40, 0};
  std::vector<float> grads(ids.size() * kDim);
  for (size_t i = 0; i < grads.size(); ++i)
    grads[i] = static_cast<float>(i % 5) - 1.0f;
  std::map<uint64_t, std::vector<float>> want;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto& row =
        want.try_emplace(ids[i], std::vector<float>(kDim, 0.5f)).first->second;
    for (uint64_t j = 0; j < kDim; ++j) row[j] -= grads[i * kDim + j];
  }
  for (int round = 0; round < 2; ++round) {
    Status s =
        client->PushRows("emb", ids.data(), ids.size(), grads.data()).Wait();
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  const std::vector<uint64_t> asked = {0,          7,         UINT64_MAX,
                                       1ull << 40, 123456789, 42};
  const std::vector<float> got = MustPullRows(*client, asked);
  for (size_t k = 0; k < asked.size(); ++k) {
    for (uint64_t j = 0; j < kDim; ++j) {
      INFO("id " << asked[k] << " element " << j);
      // Two rounds of the same push: init - 2 * sum; an untouched id: init.
      const float expected =
          want.count(asked[k]) ? 0.5f + 2 * (want[asked[k]][j] - 0.5f) : 0.5f;
      CHECK(got[k * kDim + j] == expected);
    }
  }
}

TEST_CASE("a duplicated id gets one optimizer step with the summed gradient",
          "[table]") {
  test::InProcessCluster cluster(2, 1, [](const std::string& storage) {
    return TableModel(storage, 100, "adam");
  });
  auto client = MustConnect(cluster.info());
  const std::vector<uint64_t> ids = {5, 5, 5};
  const std::vector<float> grads = {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4};
  REQUIRE(client->PushRows("emb", ids.data(), ids.size(), grads.data())
              .Wait()
              .ok());
  // Adam's first step moves every coordinate by lr * g/|g| = 0.1 (minus
  // eps), whatever g: three separate steps would have moved it ~0.3.
  const std::vector<float> row = MustPullRows(*client, {5});
  for (uint64_t j = 0; j < kDim; ++j)
    CHECK(row[j] == Approx(0.4).epsilon(1e-5));
}

TEST_CASE("a full table refuses new rows and keeps the old ones", "[table]") {
  test::InProcessCluster cluster(1, 1, [](const std::string& storage) {
    return TableModel(storage, 8, "sgd");
  });
  auto client = MustConnect(cluster.info());
  std::vector<uint64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> grads(ids.size() * kDim, 1.0f);
  REQUIRE(client->PushRows("emb", ids.data(), ids.size(), grads.data())
              .Wait()
              .ok());
  ids.push_back(9);
  grads.resize(ids.size() * kDim, 1.0f);
  Status s =
      client->PushRows("emb", ids.data(), ids.size(), grads.data()).Wait();
  CHECK(s.code() == Code::kResourceExhausted);
  CHECK_THAT(s.ToString(), Contains("is full"));
  CHECK(
      client->PullRows("emb", ids.data() + 8, 1, grads.data()).Wait().code() ==
      Code::kResourceExhausted);
  // Nothing of the refused push was applied.
  const std::vector<float> rows = MustPullRows(*client, {1, 8});
  for (float v : rows) CHECK(v == -0.5f);
}

// Rows in use on each shard, read from the shards' segments.
std::vector<uint64_t> RowsInUse(const test::InProcessCluster& cluster) {
  std::vector<uint64_t> rows;
  for (const std::string& path : cluster.segment_paths()) {
    auto segment = Segment::OpenReadOnly(path);
    INFO(segment.status().ToString());
    REQUIRE(segment.ok());
    REQUIRE((*segment)->num_tables() == 1);
    rows.push_back((*segment)->table_counters(0).rows.load());
  }
  return rows;
}

uint64_t CapacityOfShard(const test::InProcessCluster& cluster,
                         uint32_t shard) {
  auto segment = Segment::OpenReadOnly(cluster.segment_paths().at(shard));
  REQUIRE(segment.ok());
  return (*segment)->table(0).capacity;
}

// The first `count` ids, counting up from `from`, that live on `shard`.
std::vector<uint64_t> IdsOnShard(uint32_t shard, uint32_t shards, uint64_t from,
                                 size_t count) {
  std::vector<uint64_t> ids;
  for (uint64_t id = from; ids.size() < count; ++id)
    if (JumpHash(id, shards) == shard) ids.push_back(id);
  return ids;
}

TEST_CASE("a refused row request creates no rows on the full shard",
          "[table]") {
  const uint32_t shards = GENERATE(1u, 3u);
  INFO(shards << " shards");
  test::InProcessCluster cluster(shards, 1, [](const std::string& storage) {
    return TableModel(storage, 1000, "sgd");
  });
  auto client = MustConnect(cluster.info());
  // Shard 0 one row short of full.
  const uint64_t capacity = CapacityOfShard(cluster, 0);
  std::vector<uint64_t> ids = IdsOnShard(0, shards, 0, capacity + 1);
  const uint64_t new1 = ids[capacity - 1], new2 = ids[capacity];
  ids.resize(capacity - 1);
  std::vector<float> grads(ids.size() * kDim, 1.0f);
  REQUIRE(client->PushRows("emb", ids.data(), ids.size(), grads.data())
              .Wait()
              .ok());
  const std::vector<uint64_t> rows_before = RowsInUse(cluster);
  REQUIRE(rows_before[0] == capacity - 1);
  auto stats_before = client->Stats();
  REQUIRE(stats_before.ok());

  // One existing row and two new ones: only one of them fits. With more
  // shards, a new id of shard 1 too: that shard's part is applied (it has
  // room), shard 0's is not.
  std::vector<uint64_t> refused = {ids[16], new1, new2};
  if (shards > 1) refused.push_back(IdsOnShard(1, shards, 0, 1)[0]);
  std::vector<float> g(refused.size() * kDim, 1.0f);
  Status push =
      client->PushRows("emb", refused.data(), refused.size(), g.data()).Wait();
  CHECK(push.code() == Code::kResourceExhausted);
  CHECK_THAT(push.ToString(), Contains("is full"));
  std::vector<uint64_t> rows_now = RowsInUse(cluster);
  CHECK(rows_now[0] == rows_before[0]);
  if (shards > 1) CHECK(rows_now[1] == rows_before[1] + 1);
  Status pull =
      client->PullRows("emb", refused.data(), refused.size(), g.data()).Wait();
  CHECK(pull.code() == Code::kResourceExhausted);
  CHECK(RowsInUse(cluster) == rows_now);

  // Refused row requests count as neither pushes nor pulls (like dense
  // ones); errors do count them.
  auto stats_after = client->Stats();
  REQUIRE(stats_after.ok());
  CHECK((*stats_after)[0].pushes == (*stats_before)[0].pushes);
  CHECK((*stats_after)[0].pulls == (*stats_before)[0].pulls);
  CHECK((*stats_after)[0].errors == (*stats_before)[0].errors + 2);

  // The existing row was not stepped; the one row that fits still does.
  CHECK(MustPullRows(*client, {ids[16]}) == std::vector<float>(kDim, -0.5f));
  REQUIRE(client->PushRows("emb", &new1, 1, g.data()).Wait().ok());
  CHECK(RowsInUse(cluster)[0] == capacity);
}

TEST_CASE("a row pull creates the rows it names, the repeated ones once",
          "[table]") {
  test::InProcessCluster cluster(1, 1, [](const std::string& storage) {
    return TableModel(storage, 3, "sgd");
  });
  auto client = MustConnect(cluster.info());
  // Three distinct new ids fit exactly, however often each is named.
  const std::vector<uint64_t> ids = {4, 5, 4, 6, 5, 4};
  const std::vector<float> rows = MustPullRows(*client, ids);
  for (float v : rows) CHECK(v == 0.5f);
  CHECK(RowsInUse(cluster) == std::vector<uint64_t>{3});
}

TEST_CASE("bad row requests fail at once", "[table]") {
  test::InProcessCluster cluster(2, 1, [](const std::string& storage) {
    return TableModel(storage, 100, "sgd");
  });
  auto client = MustConnect(cluster.info());
  uint64_t id = 1;
  float row[kDim] = {};
  CHECK(client->PushRows("nope", &id, 1, row).Wait().code() == Code::kNotFound);
  CHECK(client->PushRows("emb", &id, 0, row).Wait().code() ==
        Code::kInvalidArgument);
  CHECK(client->PullRows("emb", &id, 1, nullptr).Wait().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("concurrent clients pushing rows all apply", "[table][concurrency]") {
  test::InProcessCluster cluster(2, 1, [](const std::string& storage) {
    return TableModel(storage, 1000, "sgd");
  });
  constexpr int kClients = 4, kPushes = 50;
  std::vector<std::thread> threads;
  std::vector<Status> results(kClients);
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto client = Client::Connect(cluster.info());
      if (!client.ok()) {
        results[c] = client.status();
        return;
      }
      std::vector<uint64_t> ids;
      for (uint64_t i = 0; i < 100; ++i) ids.push_back(i * 7919);
      std::vector<float> grads(ids.size() * kDim, 1.0f);
      for (int p = 0; p < kPushes && results[c].ok(); ++p)
        results[c] = (*client)
                         ->PushRows("emb", ids.data(), ids.size(), grads.data())
                         .Wait();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) REQUIRE(s.ok());
  auto client = MustConnect(cluster.info());
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < 100; ++i) ids.push_back(i * 7919);
  for (float v : MustPullRows(*client, ids))
    CHECK(v == 0.5f - kClients * kPushes);
}

TEST_CASE("model view reads rows from the owning shard's segment", "[table]") {
  test::InProcessCluster cluster(3, 1, [](const std::string& storage) {
    return TableModel(storage, 100, "sgd");
  });
  auto client = MustConnect(cluster.info());
  auto view = ModelView::Open(cluster.info());
  REQUIRE(view.ok());
  CHECK((*view)->Row("emb", 77).status().code() == Code::kNotFound);
  CHECK((*view)->Row("nope", 77).status().code() == Code::kNotFound);
  const std::vector<uint64_t> ids = {77, 1ull << 50};
  const std::vector<float> grads = {1, 2, 3, 4, 5, 6, 7, 8};
  REQUIRE(client->PushRows("emb", ids.data(), ids.size(), grads.data())
              .Wait()
              .ok());
  for (size_t k = 0; k < ids.size(); ++k) {
    auto row = (*view)->Row("emb", ids[k]);
    REQUIRE(row.ok());
    for (uint64_t j = 0; j < kDim; ++j)
      CHECK((*row)(static_cast<Eigen::Index>(j)) == 0.5f - grads[k * kDim + j]);
  }
}

TEST_CASE(
    "model view of an untouched row says so, and FillInitialRow gives what "
    "PullRows creates",
    "[table]") {
  const auto spec_for = [](const std::string& storage) {
    ModelSpec spec = TableModel(storage, 100, "sgd");
    spec.tables[0].init = *InitSpec::Parse("normal:0.1");
    spec.tables[0].seed = 9;
    return spec;
  };
  test::InProcessCluster cluster(2, 1, spec_for);
  auto view = ModelView::Open(cluster.info());
  REQUIRE(view.ok());
  const uint64_t id = 4242;
  auto before = (*view)->Row("emb", id);
  REQUIRE(before.status().code() == Code::kNotFound);
  CHECK_THAT(before.status().message(), Contains("FillInitialRow"));
  // The view created nothing: the row is still missing.
  CHECK((*view)->Row("emb", id).status().code() == Code::kNotFound);

  std::vector<float> init(kDim);
  FillInitialRow(spec_for("unused").tables[0], id, init.data());
  auto client = MustConnect(cluster.info());
  const std::vector<float> pulled = MustPullRows(*client, {id});
  CHECK(pulled == init);  // bit for bit: the same pure function
  auto after = (*view)->Row("emb", id);
  REQUIRE(after.ok());
  for (uint64_t j = 0; j < kDim; ++j)
    CHECK((*after)(static_cast<Eigen::Index>(j)) == init[j]);
}

}  // namespace
}  // namespace shardps
