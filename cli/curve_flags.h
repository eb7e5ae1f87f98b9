// CURVE flags shared by the CLI commands that connect as clients (status,
// pull, push, feed): --curve-key PREFIX_OR_FILE and --server-key FILE.
#ifndef SHARDPS_CLI_CURVE_FLAGS_H_
#define SHARDPS_CLI_CURVE_FLAGS_H_

#include <CLI/CLI.hpp>
#include <string>

#include "shardps/options.h"
#include "shardps/status.h"

namespace shardps::cli {

struct ClientCurveFlags {
  std::string key;         // PREFIX (reads PREFIX.key) or a .key file
  std::string server_key;  // the servers' .pub file
};

// Adds both options to `cmd`; `flags` must outlive the parse.
void AddClientCurveFlags(CLI::App* cmd, ClientCurveFlags* flags);

// Loads the named key files into `options`. With no --server-key the
// cluster file's server_key is used (Client::Connect fills it in). Errors:
// those of LoadCurveKeyPair / LoadCurvePublicKey.
Status ApplyClientCurveFlags(const ClientCurveFlags& flags,
                             ClientOptions* options);

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_CURVE_FLAGS_H_
