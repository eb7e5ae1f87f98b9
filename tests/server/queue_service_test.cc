#include "server/queue_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

std::vector<QueueOption> OneQueue() {
  auto q = QueueOption::Parse("q:4:64");
  REQUIRE(q.ok());
  return {*q};
}

TEST_CASE("queue service creates queue files 0600", "[queue_service]") {
  test::TempDir dir;
  auto service = QueueService::Open(dir.path(), OneQueue());
  INFO(service.status().ToString());
  REQUIRE(service.ok());
  struct stat st;
  REQUIRE(::stat(dir.File("q.queue").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("queue service refuses a queue file others may write or own",
          "[queue_service]") {
  test::TempDir dir;
  REQUIRE(QueueService::Open(dir.path(), OneQueue()).ok());
  const std::string path = dir.File("q.queue");
  REQUIRE(::chmod(path.c_str(), 0666) == 0);
  auto writable = QueueService::Open(dir.path(), OneQueue());
  CHECK(writable.status().code() == Code::kPermissionDenied);
  CHECK_THAT(writable.status().message(), Contains("q.queue"));
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  REQUIRE(QueueService::Open(dir.path(), OneQueue()).ok());
  if (::geteuid() == 0) {
    REQUIRE(::chown(path.c_str(), 65534, 65534) == 0);
    CHECK(QueueService::Open(dir.path(), OneQueue()).status().code() ==
          Code::kPermissionDenied);
  }
}

}  // namespace
}  // namespace shardps
