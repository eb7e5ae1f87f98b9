#include "server/queue_service.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <vector>
#include <zmq.hpp>

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

namespace shardps {
namespace {

// A QueuePush of one batch of shape [1, 1, 4] -> [1, 1] whose floats all
// hold `value`: [identity, header, features, labels].
struct QueuePushMessage {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<zmq::message_t> frames;

  QueuePushMessage(uint64_t request_id, float value) {
    const std::vector<uint32_t> shape = {1, 1, 4, 1};
    auto tensor = fbb.CreateString("q");
    auto blocks = fbb.CreateVector(shape);
    wire::RequestBuilder req(fbb);
    req.add_op(wire::Op::QueuePush);
    req.add_request_id(request_id);
    req.add_tensor(tensor);
    req.add_blocks(blocks);
    fbb.Finish(req.Finish());
    const std::vector<float> features(4, value), labels(1, value);
    frames.emplace_back("client", 6);
    frames.emplace_back(fbb.GetBufferPointer(), fbb.GetSize());
    frames.emplace_back(features.data(), features.size() * sizeof(float));
    frames.emplace_back(labels.data(), labels.size() * sizeof(float));
  }
  const wire::Request& request() const {
    return *flatbuffers::GetRoot<wire::Request>(fbb.GetBufferPointer());
  }
};

// Replies the service sent, by request id.
struct Replies {
  std::map<uint64_t, Status> by_id;
  QueueService::Reply reply() {
    return [this](zmq::message_t* identity, uint64_t id, const Status& s,
                  const QueueOnce&) {
      if (identity != nullptr) by_id[id] = s;
    };
  }
};

// Waits (up to a deadline, not for a time) until `fd` is readable.
bool Readable(int fd, int deadline_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, deadline_ms) == 1 && (p.revents & POLLIN) != 0;
}

// A service hosting queue "q" of two slots, given pushes 1 and 2 (answered
// at once: the queue is full now) and push 3, which waits for space.
struct FullQueue {
  test::TempDir dir;
  std::unique_ptr<QueueService> service;
  Replies replies;
  std::vector<std::unique_ptr<QueuePushMessage>> pushes;

  FullQueue() {
    auto q = QueueOption::Parse("q:2:64");
    REQUIRE(q.ok());
    auto opened = QueueService::Open(dir.path(), {*q});
    REQUIRE(opened.ok());
    service = std::move(opened).value();
    for (uint64_t id = 1; id <= 3; ++id) Push(id);
  }
  // Sends push `id`, whose floats all hold `id`.
  void Push(uint64_t id) {
    pushes.push_back(std::make_unique<QueuePushMessage>(id, float(id)));
    service->Push(pushes.back()->request(), pushes.back()->frames, {},
                  replies.reply());
  }
};

TEST_CASE(
    "queue service places a push that waited when the consumer frees a "
    "slot, and wakes the frontend",
    "[queue_service]") {
  FullQueue full;
  // Two slots: the first two are answered at once, the third waits.
  CHECK(full.replies.by_id.size() == 2);
  CHECK(full.replies.by_id.at(1).ok());
  CHECK(full.replies.by_id.at(2).ok());
  CHECK_FALSE(Readable(full.service->done_fd(), 0));
  full.service->Finish(full.replies.reply());
  CHECK(full.replies.by_id.count(3) == 0);

  auto consumer = BatchQueue::Open(full.dir.File("q.queue"));
  REQUIRE(consumer.ok());
  auto first = (*consumer)->Next(std::chrono::seconds(5));
  REQUIRE(first.ok());
  CHECK(first->features()[0] == 1.0f);
  (*consumer)->Release(*first);

  // The consumer's Release, not a timer, lets the third in.
  REQUIRE(Readable(full.service->done_fd(), 10000));
  full.service->Finish(full.replies.reply());
  REQUIRE(full.replies.by_id.count(3) == 1);
  CHECK(full.replies.by_id.at(3).ok());
  for (float expected : {2.0f, 3.0f}) {
    auto b = (*consumer)->Next(std::chrono::seconds(5));
    REQUIRE(b.ok());
    CHECK(b->features()[0] == expected);
    CHECK(b->labels()[0] == expected);
    (*consumer)->Release(*b);
  }
}

TEST_CASE(
    "queue service answers a waiting push kClosed when the consumer "
    "closes, and stops while one waits",
    "[queue_service]") {
  FullQueue full;
  REQUIRE(full.replies.by_id.size() == 2);

  SECTION("closed") {
    auto consumer = BatchQueue::Open(full.dir.File("q.queue"));
    REQUIRE(consumer.ok());
    (*consumer)->Close();
    REQUIRE(Readable(full.service->done_fd(), 10000));
    full.service->Finish(full.replies.reply());
    REQUIRE(full.replies.by_id.count(3) == 1);
    CHECK(full.replies.by_id.at(3).code() == Code::kClosed);
  }
  SECTION("stopped") {
    // A second waiting push queues behind the first; Stop returns although
    // neither can be placed, and neither is answered.
    full.Push(4);
    full.service->Stop();
    full.service->Finish(full.replies.reply());
    CHECK(full.replies.by_id.size() == 2);
  }
}

}  // namespace
}  // namespace shardps
