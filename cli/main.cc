// shardps: launch, serve and inspect shard servers.
#include <cstdio>

#include "cli/commands.h"
#include "common/malloc_tuning.h"

namespace shardps::cli {

int ReportError(const char* command, const Status& status) {
  std::fprintf(stderr, "shardps %s: %s\n", command, status.ToString().c_str());
  switch (status.code()) {
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kSizeMismatch:
    case Code::kSpecMismatch:
    case Code::kCorrupt:
    case Code::kUnimplemented:
    case Code::kPermissionDenied:
      return 2;
    default:
      return 1;
  }
}

void AddConnectTimeout(CLI::App* cmd, int* ms) {
  cmd->add_option("--connect-timeout-ms", *ms,
                  "How long to wait for every shard to answer when "
                  "connecting")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
}

}  // namespace shardps::cli

int main(int argc, char** argv) {
  shardps::TuneMallocForBlocks();
  CLI::App app{
      "shardps: a sharded parameter server on shared memory.\n"
      "Run `shardps <command> --help` for a command's flags."};
  app.require_subcommand(1);
  int exit_code = 0;
  shardps::cli::RegisterServe(app, &exit_code);
  shardps::cli::RegisterLaunch(app, &exit_code);
  shardps::cli::RegisterCluster(app, &exit_code);
  shardps::cli::RegisterStatus(app, &exit_code);
  shardps::cli::RegisterTop(app, &exit_code);
  shardps::cli::RegisterInspect(app, &exit_code);
  shardps::cli::RegisterTensorIo(app, &exit_code);
  shardps::cli::RegisterFeed(app, &exit_code);
  shardps::cli::RegisterQueue(app, &exit_code);
  shardps::cli::RegisterCheckpoint(app, &exit_code);
  shardps::cli::RegisterKeygen(app, &exit_code);
  shardps::cli::RegisterReplica(app, &exit_code);
  shardps::cli::RegisterHealth(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return exit_code;
}
