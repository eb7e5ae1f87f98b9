// CURVE key files as `shardps keygen --out PREFIX` writes them (PREFIX.key,
// PREFIX.pub): one 40-character Z85 key per file; '#' at the start of a line
// or after a blank starts a comment. The public API takes keys as text
// (ClientOptions::curve_*), so the example reads the files itself.
#ifndef SHARDPS_EXAMPLES_FASHION_MNIST_KEY_FILE_H_
#define SHARDPS_EXAMPLES_FASHION_MNIST_KEY_FILE_H_

#include <string>

#include "shardps/options.h"
#include "shardps/status.h"

namespace fashion_mnist {

// The key in `path`. kNotFound when the file is missing, kIoError when it
// cannot be read, kInvalidArgument ("<path>: ...") unless it holds exactly
// one word of 40 characters (Client::Connect checks that it is Z85).
shardps::Result<std::string> ReadKeyFile(const std::string& path);

// Sets options->curve_secret_key and curve_public_key from PREFIX.key and
// PREFIX.pub; the servers' key comes from the cluster file (server_key).
// ReadKeyFile's errors.
shardps::Status LoadClientKeys(const std::string& prefix,
                               shardps::ClientOptions* options);

}  // namespace fashion_mnist

#endif  // SHARDPS_EXAMPLES_FASHION_MNIST_KEY_FILE_H_
