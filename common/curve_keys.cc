#include "common/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdio>
#include <set>

#include "common/file_writer.h"
#include "common/posix_file.h"

namespace shardps {
namespace {

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ".-:+=^!/*?&<>()[]{}@%$#";

// One line of a key file without its comment and surrounding blanks. '#' is
// also a Z85 character, so a comment starts only at a '#' that begins the
// line or follows a blank: "KEY  # alice" is KEY, "ab#cd" stays whole.
std::string_view StripLine(std::string_view line) {
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '#' &&
        (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      line = line.substr(0, i);
      break;
    }
  }
  const char* blanks = " \t\r";
  const size_t first = line.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  const size_t last = line.find_last_not_of(blanks);
  return line.substr(first, last - first + 1);
}

// Calls `fn(line_number, stripped)` for every line with something on it.
template <typename Fn>
void ForEachKeyLine(std::string_view text, Fn fn) {
  size_t number = 0;
  while (!text.empty()) {
    ++number;
    const size_t end = text.find('\n');
    const std::string_view raw = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{}
                                         : text.substr(end + 1);
    const std::string_view line = StripLine(raw);
    if (!line.empty()) fn(number, line);
  }
}

// Why `line` is not a key, for error messages; empty when it is one.
std::string KeyProblem(std::string_view line) {
  if (line.find_first_of(" \t") != std::string_view::npos)
    return "expected one key per line, got '" + std::string(line) + "'";
  if (line.size() != kCurveKeyChars)
    return "expected a 40-character Z85 key, got " +
           std::to_string(line.size()) + " characters";
  if (!IsCurveKey(line)) return "not a Z85 key (bad character)";
  return {};
}

Result<std::string> ParseSingleKey(std::string_view text,
                                   const std::string& path) {
  std::string key, error;
  size_t keys = 0;
  ForEachKeyLine(text, [&](size_t number, std::string_view line) {
    if (!error.empty()) return;
    const std::string problem = KeyProblem(line);
    if (!problem.empty()) {
      error = path + ":" + std::to_string(number) + ": " + problem;
    } else if (++keys == 1) {
      key = std::string(line);
    } else {
      error = path + ":" + std::to_string(number) +
              ": a key file holds one key; found a second";
    }
  });
  if (!error.empty()) return Status(Code::kInvalidArgument, error);
  if (keys == 0)
    return Status(Code::kInvalidArgument, path + ": no key in the file");
  return key;
}

// Creates `path` exclusively with `mode` and writes `text`. fchmod after
// open because open's mode is filtered through the umask, and the public key
// is meant to be world-readable whatever the umask.
Status CreateExclusive(const std::string& path, const std::string& text,
                       mode_t mode) {
  auto file = FileWriter::Create(path, mode, FileWriter::Mode::kExclusive);
  if (!file.ok()) {
    if (file.status().code() == Code::kBusy)
      return Status::Busy(path +
                          " already exists; refusing to overwrite a key "
                          "(remove it first or choose another --out)");
    return file.status();
  }
  if (::fchmod(file->fd(), mode) != 0)
    return ErrnoStatus(Code::kIoError, "chmod " + path, errno);
  SHARDPS_RETURN_IF_ERROR(file->Append(text));
  return file->Sync();
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool IsCurveKey(std::string_view key) {
  if (key.size() != kCurveKeyChars) return false;
  for (char c : key)
    if (kZ85Alphabet.find(c) == std::string_view::npos) return false;
  // The alphabet check is not enough: a group of five characters may encode
  // a value above 2^32, which zmq_z85_decode rejects.
  const std::string text(key);
  uint8_t bytes[32];
  return zmq_z85_decode(bytes, text.c_str()) != nullptr;
}

Result<CurveKeyPair> GenerateCurveKeyPair() {
  if (!zmq_has("curve"))
    return Status(Code::kUnimplemented,
                  "this libzmq was built without CURVE support");
  char pub[kCurveKeyChars + 1] = {};
  char sec[kCurveKeyChars + 1] = {};
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status(Code::kInternal, std::string("zmq_curve_keypair: ") +
                                       zmq_strerror(zmq_errno()));
  return CurveKeyPair{pub, sec};
}

Result<std::string> CurvePublicKeyOf(const std::string& secret_key) {
  if (!IsCurveKey(secret_key))
    return Status(Code::kInvalidArgument, "not a Z85 CURVE secret key");
  char pub[kCurveKeyChars + 1] = {};
  if (zmq_curve_public(pub, secret_key.c_str()) != 0)
    return Status(Code::kInvalidArgument, std::string("zmq_curve_public: ") +
                                              zmq_strerror(zmq_errno()));
  return std::string(pub);
}

Status WriteCurveKeyFiles(const CurveKeyPair& pair, const std::string& prefix) {
  if (!IsCurveKey(pair.public_key) || !IsCurveKey(pair.secret_key))
    return Status(Code::kInvalidArgument, "not a Z85 CURVE key pair");
  const std::string secret_path = prefix + ".key";
  const std::string public_path = prefix + ".pub";
  struct stat st;
  // Checked up front so that an existing .pub does not leave a fresh .key
  // behind (the pair would no longer match).
  for (const std::string& p : {secret_path, public_path})
    if (::lstat(p.c_str(), &st) == 0)
      return Status(Code::kBusy, p + " already exists; refusing to overwrite "
                                     "a key (remove it first or choose "
                                     "another --out)");
  SHARDPS_RETURN_IF_ERROR(
      CreateExclusive(secret_path,
                      "# shardps CURVE secret key: keep private (mode 0600)\n" +
                          pair.secret_key + "\n",
                      0600));
  Status pub =
      CreateExclusive(public_path,
                      "# shardps CURVE public key: give to the other side\n" +
                          pair.public_key + "\n",
                      0644);
  if (!pub.ok()) ::unlink(secret_path.c_str());
  return pub;
}

Result<std::string> LoadCurvePublicKey(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseSingleKey(*text, path);
}

Result<CurveKeyPair> LoadCurveSecretKey(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return Status(Code::kPermissionDenied,
                  path + " has mode " + mode +
                      ": a secret key must be private (chmod 600 " + path +
                      ")");
  }
  fd.Reset();
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto secret = ParseSingleKey(*text, path);
  if (!secret.ok()) return secret.status();
  auto pub = CurvePublicKeyOf(*secret);
  if (!pub.ok()) return pub.status().WithContext(path);
  return CurveKeyPair{*pub, *secret};
}

Result<CurveKeyPair> LoadCurveKeyPair(const std::string& prefix_or_file) {
  if (EndsWith(prefix_or_file, ".key"))
    return LoadCurveSecretKey(prefix_or_file);
  return LoadCurveSecretKey(prefix_or_file + ".key");
}

Result<std::vector<std::string>> ParseAuthorizedKeys(std::string_view text) {
  std::vector<std::string> keys;
  std::set<std::string> seen;
  std::string errors;
  ForEachKeyLine(text, [&](size_t number, std::string_view line) {
    // A key may be followed by a comment ("KEY # alice's laptop"), which
    // StripLine already removed; anything else after it is an error.
    const std::string problem = KeyProblem(line);
    if (!problem.empty()) {
      if (!errors.empty()) errors += "; ";
      errors += "line " + std::to_string(number) + ": " + problem;
      return;
    }
    std::string key(line);
    if (seen.insert(key).second) keys.push_back(std::move(key));
  });
  if (!errors.empty()) return Status(Code::kInvalidArgument, errors);
  return keys;
}

Result<std::vector<std::string>> LoadAuthorizedKeys(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto keys = ParseAuthorizedKeys(*text);
  if (!keys.ok()) return keys.status().WithContext(path);
  return keys;
}

}  // namespace shardps
