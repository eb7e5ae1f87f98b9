#include "cli/curve_flags.h"

#include "common/curve_keys.h"

namespace shardps::cli {

void AddClientCurveFlags(CLI::App* cmd, ClientCurveFlags* flags) {
  cmd->add_option("--curve-key", flags->key,
                  "This client's CURVE key: PREFIX (reads PREFIX.key, from "
                  "`shardps keygen --out PREFIX`) or the .key file");
  cmd->add_option("--server-key", flags->server_key,
                  "The servers' CURVE public key file (.pub); default: the "
                  "cluster file's server_key");
}

Status ApplyClientCurveFlags(const ClientCurveFlags& flags,
                             ClientOptions* options) {
  if (!flags.key.empty()) {
    auto pair = LoadCurveKeyPair(flags.key);
    if (!pair.ok()) return pair.status();
    options->curve_public_key = pair->public_key;
    options->curve_secret_key = pair->secret_key;
  }
  if (!flags.server_key.empty()) {
    auto key = LoadCurvePublicKey(flags.server_key);
    if (!key.ok()) return key.status();
    options->curve_server_key = *key;
  }
  return Status::Ok();
}

}  // namespace shardps::cli
