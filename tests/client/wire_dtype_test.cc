// Pushing 16-bit gradients: half the bytes on the wire, widened by the server.
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "shardps/client.h"
#include "tests/in_process_cluster.h"

namespace shardps {
namespace {

constexpr size_t kFloats = 2500;  // 3 blocks of 1024 over 2 shards

ModelSpec DtypeSpec(const std::string& storage) {
  return test::MakeSpec("dtype", storage, {{"w", {kFloats}, "constant:1", 0}},
                        /*lr=*/0.5);
}

std::unique_ptr<Client> ConnectWith(const ClusterInfo& cluster,
                                    WireDType dtype) {
  ClientOptions options;
  options.push_dtype = dtype;
  auto client = Client::Connect(cluster, options);
  REQUIRE(client.ok());
  return std::move(client).value();
}

std::vector<float> PushThenPull(Client& client,
                                const std::vector<float>& grad) {
  REQUIRE(client.Push("w", grad.data(), grad.size()).Wait().ok());
  std::vector<float> out(grad.size());
  REQUIRE(client.Pull("w", out.data(), out.size()).Wait().ok());
  return out;
}

TEST_CASE("16-bit gradients apply exactly when the values are representable",
          "[wire_dtype]") {
  const WireDType dtype = GENERATE(WireDType::kFloat16, WireDType::kBFloat16);
  test::InProcessCluster cluster(2, 2, DtypeSpec);
  auto client = ConnectWith(cluster.info(), dtype);
  // Multiples of 1/8 up to 4: exact in binary16 and in bfloat16.
  std::vector<float> grad(kFloats);
  for (size_t i = 0; i < kFloats; ++i)
    grad[i] = static_cast<float>(static_cast<int>(i % 65) - 32) / 8.0f;
  const std::vector<float> out = PushThenPull(*client, grad);
  for (size_t i = 0; i < kFloats; ++i) {
    INFO("element " << i);
    REQUIRE(out[i] == 1.0f - 0.5f * grad[i]);
  }
}

TEST_CASE("16-bit gradients round to the nearest representable value",
          "[wire_dtype]") {
  const WireDType dtype = GENERATE(WireDType::kFloat16, WireDType::kBFloat16);
  test::InProcessCluster cluster(2, 1, DtypeSpec);
  auto client = ConnectWith(cluster.info(), dtype);
  // 1 + 2^-12 lies between 1 and the next binary16 (1 + 2^-10) and bfloat16
  // (1 + 2^-7) values, nearer 1: it arrives as exactly 1, where float32
  // would have kept it and left 0.49987793.
  const std::vector<float> grad(kFloats, 1.0f + 1.0f / 4096);
  const std::vector<float> out = PushThenPull(*client, grad);
  CHECK(out[0] == 0.5f);
  CHECK(out[kFloats - 1] == 0.5f);
}

TEST_CASE("16-bit PushPull returns float32 weights", "[wire_dtype]") {
  test::InProcessCluster cluster(2, 1, DtypeSpec);
  auto client = ConnectWith(cluster.info(), WireDType::kFloat16);
  const std::vector<float> grad(kFloats, 0.25f);
  std::vector<float> out(kFloats);
  REQUIRE(client->PushPull("w", grad.data(), out.data(), kFloats).Wait().ok());
  CHECK(out[0] == 0.875f);
  CHECK(out[kFloats - 1] == 0.875f);
}

}  // namespace
}  // namespace shardps
