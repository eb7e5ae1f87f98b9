// `shardps keygen`: write a CURVE key pair for a server or a client.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "common/curve_keys.h"

namespace shardps::cli {

namespace {

int RunKeygen(const std::string& prefix) {
  auto pair = GenerateCurveKeyPair();
  if (!pair.ok()) return ReportError("keygen", pair.status());
  Status written = WriteCurveKeyFiles(*pair, prefix);
  if (!written.ok()) return ReportError("keygen", written);
  std::printf("secret key: %s.key (mode 0600; keep it private)\n",
              prefix.c_str());
  std::printf("public key: %s.pub  %s\n", prefix.c_str(),
              pair->public_key.c_str());
  return 0;
}

}  // namespace

void RegisterKeygen(CLI::App& app, int* exit_code) {
  auto prefix = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "keygen",
      "Write a CURVE key pair: PREFIX.key (secret) and PREFIX.pub (public)");
  cmd->add_option("--out", *prefix,
                  "Path prefix of the two files; existing files are never "
                  "overwritten")
      ->required();
  cmd->callback([prefix, exit_code] { *exit_code = RunKeygen(*prefix); });
}

}  // namespace shardps::cli
