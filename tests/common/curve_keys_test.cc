#include "common/curve_keys.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "tests/test_util.h"

namespace shardps {
namespace {

using Catch::Matchers::Contains;

void WriteText(const std::string& path, const std::string& text, mode_t mode) {
  test::WriteBytes(path, std::vector<char>(text.begin(), text.end()));
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

TEST_CASE("curve keygen writes a private .key and a public .pub that load back",
          "[curve]") {
  test::TempDir dir;
  auto pair = GenerateCurveKeyPair();
  REQUIRE(pair.ok());
  CHECK(IsCurveKey(pair->public_key));
  CHECK(IsCurveKey(pair->secret_key));
  const std::string prefix = dir.File("node");
  REQUIRE(WriteCurveKeyFiles(*pair, prefix).ok());
  CHECK(ModeOf(prefix + ".key") == 0600);
  CHECK(ModeOf(prefix + ".pub") == 0644);

  auto loaded = LoadCurveKeyPair(prefix);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  CHECK(loaded->secret_key == pair->secret_key);
  CHECK(loaded->public_key == pair->public_key);  // derived from the secret
  auto by_file = LoadCurveKeyPair(prefix + ".key");
  REQUIRE(by_file.ok());
  CHECK(by_file->secret_key == pair->secret_key);
  auto pub = LoadCurvePublicKey(prefix + ".pub");
  REQUIRE(pub.ok());
  CHECK(*pub == pair->public_key);
}

TEST_CASE("curve keygen refuses to overwrite either existing file", "[curve]") {
  test::TempDir dir;
  auto first = GenerateCurveKeyPair();
  auto second = GenerateCurveKeyPair();
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  const std::string prefix = dir.File("node");
  REQUIRE(WriteCurveKeyFiles(*first, prefix).ok());
  Status again = WriteCurveKeyFiles(*second, prefix);
  CHECK(again.code() == Code::kBusy);
  CHECK_THAT(again.message(), Contains("already exists"));
  auto kept = LoadCurveKeyPair(prefix);
  REQUIRE(kept.ok());
  CHECK(kept->secret_key == first->secret_key);

  // Only the .pub exists: nothing is written, so no orphan .key appears.
  const std::string other = dir.File("other");
  WriteText(other + ".pub", first->public_key + "\n", 0644);
  CHECK(WriteCurveKeyFiles(*second, other).code() == Code::kBusy);
  struct stat st;
  CHECK(::stat((other + ".key").c_str(), &st) != 0);
}

TEST_CASE("curve secret key readable by group or others is refused",
          "[curve]") {
  test::TempDir dir;
  auto pair = GenerateCurveKeyPair();
  REQUIRE(pair.ok());
  const std::string path = dir.File("s.key");
  WriteText(path, pair->secret_key + "\n", 0640);
  auto loaded = LoadCurveSecretKey(path);
  CHECK(loaded.status().code() == Code::kPermissionDenied);
  CHECK_THAT(loaded.status().message(), Contains("chmod 600"));
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  CHECK(LoadCurveSecretKey(path).ok());
}

TEST_CASE("curve key files reject bad keys with the line number", "[curve]") {
  test::TempDir dir;
  auto pair = GenerateCurveKeyPair();
  REQUIRE(pair.ok());
  const std::string path = dir.File("s.pub");
  SECTION("too short") {
    WriteText(path, "# comment\n\nabc\n", 0644);
    auto key = LoadCurvePublicKey(path);
    CHECK(key.status().code() == Code::kInvalidArgument);
    CHECK_THAT(key.status().message(), Contains("s.pub:3"));
  }
  SECTION("two keys") {
    WriteText(path, pair->public_key + "\n" + pair->public_key + "\n", 0644);
    CHECK(LoadCurvePublicKey(path).status().code() == Code::kInvalidArgument);
  }
  SECTION("empty") {
    WriteText(path, "# nothing here\n", 0644);
    CHECK_THAT(LoadCurvePublicKey(path).status().message(), Contains("no key"));
  }
  SECTION("missing") {
    CHECK(LoadCurvePublicKey(dir.File("none.pub")).status().code() ==
          Code::kNotFound);
  }
}

TEST_CASE("curve key check rejects non-Z85 text of the right length",
          "[curve]") {
  CHECK_FALSE(IsCurveKey(std::string(40, ' ')));
  CHECK_FALSE(IsCurveKey(std::string(40, '"')));
  // '#' is in the Z85 alphabet; five '#' decode above 2^32.
  CHECK_FALSE(IsCurveKey(std::string(40, '#')));
  CHECK_FALSE(IsCurveKey("short"));
  CHECK(IsCurveKey(std::string(40, '0')));
}

TEST_CASE("authorized keys accept comments and report every bad line",
          "[curve]") {
  auto a = GenerateCurveKeyPair();
  auto b = GenerateCurveKeyPair();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  SECTION("good file") {
    const std::string text = "# team keys\n\n" + a->public_key +
                             "   # alice\n\t" + b->public_key + "\n" +
                             a->public_key + "\n";
    auto keys = ParseAuthorizedKeys(text);
    INFO(keys.status().ToString());
    REQUIRE(keys.ok());
    REQUIRE(keys->size() == 2);  // the duplicate is kept once
    CHECK((*keys)[0] == a->public_key);
    CHECK((*keys)[1] == b->public_key);
  }
  SECTION("bad lines") {
    const std::string text = a->public_key + "\nnot-a-key\n" + b->public_key +
                             " trailing\n" + b->public_key + "\n";
    auto keys = ParseAuthorizedKeys(text);
    CHECK(keys.status().code() == Code::kInvalidArgument);
    CHECK_THAT(keys.status().message(), Contains("line 2"));
    CHECK_THAT(keys.status().message(), Contains("line 3"));
    CHECK_THAT(keys.status().message(), !Contains("line 4"));
  }
  SECTION("empty file parses to an empty list") {
    auto keys = ParseAuthorizedKeys("# nobody yet\n");
    REQUIRE(keys.ok());
    CHECK(keys->empty());
  }
}

}  // namespace
}  // namespace shardps
