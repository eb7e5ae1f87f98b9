// `shardps top`: a live view of a cluster, one frame per --interval, from
// two Stats samples of every shard (docs/top.md). `--once` prints one frame
// as plain text for scripts.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/curve_flags.h"
#include "cli/stats_poller.h"
#include "cli/top_frame.h"

namespace shardps::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct TopFlags {
  std::string cluster;
  double interval_s = 1.0;
  int timeout_ms = 1000;
  bool once = false;
  ClientCurveFlags curve;
};

// The signal that asked us to stop (0: none), and the pipe that wakes the
// loop when it arrives. Written by the handler only (async-signal-safe).
volatile sig_atomic_t g_stop_signal = 0;
int g_wake_pipe[2] = {-1, -1};

extern "C" void OnStopSignal(int sig) {
  g_stop_signal = sig;
  const int saved = errno;
  const char byte = 1;
  if (g_wake_pipe[1] >= 0) (void)!::write(g_wake_pipe[1], &byte, 1);
  errno = saved;
}

// SIGINT and SIGTERM set g_stop_signal and write to the wake pipe for as
// long as this object lives; the previous handlers come back after.
class StopSignals {
 public:
  StopSignals() {
    if (::pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      g_wake_pipe[0] = g_wake_pipe[1] = -1;
    }
    struct sigaction action = {};
    action.sa_handler = OnStopSignal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    for (int& fd : g_wake_pipe) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int fd() const { return g_wake_pipe[0]; }

 private:
  struct sigaction old_int_ = {}, old_term_ = {};
};

// Puts a terminal on stdin into non-canonical, no-echo mode (keys arrive
// one by one, unseen) and hides the cursor; the destructor restores both.
// Signals (Ctrl-C) still work: ISIG stays on.
class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved_) != 0)
      return;
    termios raw = saved_;
    raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  // Whether keys can be read from stdin.
  bool active() const { return active_; }

 private:
  termios saved_ = {};
  bool active_ = false;
};

std::string TimeText() {
  const std::time_t now = std::time(nullptr);
  std::tm local = {};
  ::localtime_r(&now, &local);
  char text[16];
  std::strftime(text, sizeof(text), "%H:%M:%S", &local);
  return text;
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// Waits until `deadline`, a stop signal or (with `read_keys`, stdin being a
// terminal in RawTerminal mode) the `q` key. Returns true to go on, false
// to quit.
bool WaitForNextFrame(Clock::time_point deadline, bool read_keys, int wake_fd) {
  while (g_stop_signal == 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return true;
    pollfd fds[2] = {{wake_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    const int count = read_keys ? 2 : 1;
    const int ready =
        ::poll(fds, static_cast<nfds_t>(count), static_cast<int>(left.count()));
    if (ready <= 0) continue;  // timeout or EINTR: the loop decides
    if (count == 2 && (fds[1].revents & (POLLIN | POLLHUP))) {
      char keys[64];
      const ssize_t n = ::read(STDIN_FILENO, keys, sizeof(keys));
      if (n == 0 && (fds[1].revents & POLLHUP)) return false;  // tty gone
      for (ssize_t i = 0; i < n; ++i)
        if (keys[i] == 'q' || keys[i] == 'Q') return false;
    }
  }
  return false;
}

void DrawFrame(const std::vector<std::string>& lines, bool ansi) {
  std::string text;
  // Home, then each line cleared to its end and the rest of the screen
  // cleared after the last: no flicker from a full clear before drawing.
  if (ansi) text += "\x1b[H";
  for (const std::string& line : lines) {
    text += line;
    if (ansi) text += "\x1b[K";
    text += '\n';
  }
  if (ansi) text += "q quits\x1b[K\n\x1b[J";
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

int RunTop(const TopFlags& flags) {
  auto cluster = LoadCluster(flags.cluster);
  if (!cluster.ok()) return ReportError("top", cluster.status());
  ClientOptions options;
  Status keys = ApplyClientCurveFlags(flags.curve, &options);
  if (!keys.ok()) return ReportError("top", keys);
  auto poller = StatsPoller::Create(
      *cluster, PollerKeys{options.curve_server_key, options.curve_public_key,
                           options.curve_secret_key});
  if (!poller.ok()) return ReportError("top", poller.status());
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(flags.interval_s));
  const std::chrono::milliseconds timeout(flags.timeout_ms);

  StopSignals signals;
  g_stop_signal = 0;
  FrameInput frame;
  frame.model = cluster->model;
  frame.interval_s = flags.interval_s;

  if (flags.once) {
    const Clock::time_point first_at = Clock::now();
    frame.previous = (*poller)->Poll(timeout, signals.fd());
    // Rates need two samples: the second comes one interval after the first.
    WaitForNextFrame(first_at + interval, /*read_keys=*/false, signals.fd());
    if (g_stop_signal != 0) return 128 + g_stop_signal;
    const Clock::time_point second_at = Clock::now();
    frame.current = (*poller)->Poll(timeout, signals.fd());
    if (g_stop_signal != 0) return 128 + g_stop_signal;
    frame.elapsed_s = Seconds(second_at - first_at);
    frame.time_text = TimeText();
    DrawFrame(RenderTopFrame(frame), /*ansi=*/false);
    for (const ShardSample& s : frame.current)
      if (s.status.ok()) return 0;
    std::fprintf(stderr, "shardps top: no shard answered\n");
    return 1;
  }

  RawTerminal terminal;
  std::fputs("\x1b[?25l\x1b[2J", stdout);  // hide the cursor, clear
  Clock::time_point last_at{};
  for (;;) {
    const Clock::time_point at = Clock::now();
    frame.current = (*poller)->Poll(timeout, signals.fd());
    if (g_stop_signal != 0) break;
    frame.elapsed_s =
        last_at == Clock::time_point{} ? 0 : Seconds(at - last_at);
    frame.time_text = TimeText();
    DrawFrame(RenderTopFrame(frame), /*ansi=*/true);
    frame.previous = std::move(frame.current);
    frame.current.clear();
    last_at = at;
    if (!WaitForNextFrame(at + interval, terminal.active(), signals.fd()))
      break;
  }
  std::fputs("\x1b[?25h", stdout);  // the cursor back
  std::fflush(stdout);
  return g_stop_signal != 0 ? 128 + g_stop_signal : 0;
}

}  // namespace

void RegisterTop(CLI::App& app, int* exit_code) {
  auto flags = std::make_shared<TopFlags>();
  CLI::App* cmd = app.add_subcommand(
      "top", "Live view of a cluster: request rates, latency, workers, queues");
  cmd->add_option("--cluster", flags->cluster, "Cluster file")->required();
  cmd->add_option("--interval", flags->interval_s,
                  "Seconds between frames (and between --once's two samples)")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--timeout-ms", flags->timeout_ms,
                  "How long to wait for each shard's answer; a shard slower "
                  "than this shows as DOWN")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600000));
  cmd->add_flag("--once", flags->once,
                "Print one frame as plain text (no escapes) and exit: 0 when "
                "a shard answered, 1 when none did");
  AddClientCurveFlags(cmd, &flags->curve);
  cmd->callback([flags, exit_code] { *exit_code = RunTop(*flags); });
}

}  // namespace shardps::cli
