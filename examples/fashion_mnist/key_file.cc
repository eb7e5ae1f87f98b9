#include "examples/fashion_mnist/key_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace fashion_mnist {

namespace {

// The words of `line` before its comment: '#' counts as one only at the
// start of a word ('#' is also a Z85 character, so it may sit inside a key).
std::vector<std::string> Words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  std::string w;
  while (in >> w) {
    if (w.front() == '#') break;
    words.push_back(w);
  }
  return words;
}

}  // namespace

shardps::Result<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    const int err = errno;
    if (err == ENOENT)
      return shardps::Status::NotFound(path +
                                       ": no such key file (make one "
                                       "with `shardps keygen --out "
                                       "PREFIX`)");
    return shardps::Status::IoError(path + ": " + std::strerror(err));
  }
  std::vector<std::string> keys;
  std::string line;
  while (std::getline(in, line))
    for (std::string& w : Words(line)) keys.push_back(std::move(w));
  if (in.bad()) return shardps::Status::IoError(path + ": read failed");
  if (keys.size() != 1 || keys[0].size() != 40)
    return shardps::Status::InvalidArgument(
        path + ": expected one 40-character Z85 key, found " +
        std::to_string(keys.size()) + " word(s)" +
        (keys.size() == 1
             ? " of " + std::to_string(keys[0].size()) + " characters"
             : ""));
  return keys[0];
}

shardps::Status LoadClientKeys(const std::string& prefix,
                               shardps::ClientOptions* options) {
  auto secret = ReadKeyFile(prefix + ".key");
  if (!secret.ok()) return secret.status();
  auto pub = ReadKeyFile(prefix + ".pub");
  if (!pub.ok()) return pub.status();
  options->curve_secret_key = std::move(secret).value();
  options->curve_public_key = std::move(pub).value();
  return shardps::Status::Ok();
}

}  // namespace fashion_mnist
