// CURVE key files: generating, writing and reading the Z85 keys that
// authenticate and encrypt ZeroMQ connections (see docs/security.md).
//
// File formats (text; a '#' at the start of a line or after a blank starts a
// comment that runs to the end of the line -- '#' alone is not enough, it is
// also a Z85 character; blank lines are ignored):
//   PREFIX.key  the secret key: exactly one 40-character Z85 key. Written
//               0600; refused when group or others may read it.
//   PREFIX.pub  the public key: exactly one Z85 key. Written 0644.
//   authorized-keys  the client public keys a server accepts: one Z85 key
//               per line (text after the key must be a comment).
//
// Thread-safety: free functions over values and files; call from any thread.
#ifndef SHARDPS_COMMON_CURVE_KEYS_H_
#define SHARDPS_COMMON_CURVE_KEYS_H_

#include <string>
#include <string_view>
#include <vector>

#include "shardps/status.h"

namespace shardps {

// Length of a CURVE key in Z85 text (32 bytes encoded).
inline constexpr size_t kCurveKeyChars = 40;

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// True when `key` is 40 characters of the Z85 alphabet that decode to 32
// bytes, i.e. what zmq_setsockopt(ZMQ_CURVE_*KEY) accepts as text.
bool IsCurveKey(std::string_view key);

// A fresh key pair from libzmq's CSPRNG. kUnimplemented when libzmq was built
// without CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();

// The public key belonging to a Z85 secret key. kInvalidArgument for a
// malformed key.
Result<std::string> CurvePublicKeyOf(const std::string& secret_key);

// Writes `pair` to PREFIX.key (0600) and PREFIX.pub (0644). Never overwrites:
// kBusy naming the file when either exists, and then nothing is written.
Status WriteCurveKeyFiles(const CurveKeyPair& pair, const std::string& prefix);

// Reads a public key file. kNotFound / kIoError for the file,
// kInvalidArgument ("<path>:<line>: ...") when it holds anything but one key.
Result<std::string> LoadCurvePublicKey(const std::string& path);

// Reads a secret key file and derives its public key. kPermissionDenied when
// the file is readable by group or others (the key would be exposed);
// otherwise the errors of LoadCurvePublicKey.
Result<CurveKeyPair> LoadCurveSecretKey(const std::string& path);

// Accepts either a prefix (reads PREFIX.key) or the secret key file itself
// (a path ending in ".key"), as the CLI's --curve-key does.
Result<CurveKeyPair> LoadCurveKeyPair(const std::string& prefix_or_file);

// Parses an authorized-keys text: the keys in file order, duplicates kept
// once. kInvalidArgument naming every bad line ("line 3: ...; line 7: ...")
// so one edit fixes them all. An empty list is valid here; the server refuses
// it (no client could ever connect).
Result<std::vector<std::string>> ParseAuthorizedKeys(std::string_view text);
// Reads and parses an authorized-keys file; errors carry the path.
Result<std::vector<std::string>> LoadAuthorizedKeys(const std::string& path);

}  // namespace shardps

#endif  // SHARDPS_COMMON_CURVE_KEYS_H_
