// The `shardps` subcommands. Each Register* adds one subcommand to the app;
// when it runs, its callback stores the process exit status in *exit_code:
// 0 success, 1 a runtime failure (server gone, segment busy), 2 bad input
// (flags, spec, files).
#ifndef SHARDPS_CLI_COMMANDS_H_
#define SHARDPS_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "shardps/status.h"

namespace shardps::cli {

void RegisterServe(CLI::App& app, int* exit_code);
void RegisterLaunch(CLI::App& app, int* exit_code);
void RegisterCluster(CLI::App& app, int* exit_code);
void RegisterStatus(CLI::App& app, int* exit_code);
void RegisterTop(CLI::App& app, int* exit_code);
void RegisterInspect(CLI::App& app, int* exit_code);
void RegisterTensorIo(CLI::App& app, int* exit_code);  // pull and push
void RegisterFeed(CLI::App& app, int* exit_code);
void RegisterQueue(CLI::App& app, int* exit_code);
void RegisterCheckpoint(CLI::App& app, int* exit_code);  // and restore
void RegisterKeygen(CLI::App& app, int* exit_code);
void RegisterReplica(CLI::App& app, int* exit_code);
void RegisterHealth(CLI::App& app, int* exit_code);

// Default of every connecting command's --connect-timeout-ms (status, push,
// pull, checkpoint --remote, feed to a remote queue): how long Connect waits
// for every shard to answer, the same as ClientOptions::connect_timeout.
inline constexpr int kConnectTimeoutMs = 10000;

// Adds --connect-timeout-ms to `cmd`, stored in *ms (which the caller
// initialises to kConnectTimeoutMs). `*ms` must outlive the parse.
void AddConnectTimeout(CLI::App* cmd, int* ms);

// Prints "shardps <command>: <status>" to stderr and returns the exit code
// for it (2 for bad input, 1 otherwise).
int ReportError(const char* command, const Status& status);

}  // namespace shardps::cli

#endif  // SHARDPS_CLI_COMMANDS_H_
