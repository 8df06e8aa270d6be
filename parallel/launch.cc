#include "parallel/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "common/rank_launch.h"

namespace vidgen::parallel {
namespace {

constexpr auto kRankGrace = std::chrono::seconds(5);

}  // namespace

bool IsRank() {
  if (std::getenv("RANK")) return true;
  const char* tasks = std::getenv("SLURM_NTASKS");  // srun starts every rank itself
  return tasks && std::atoi(tasks) > 1;
}

int LaunchLocalRanks(int nproc, char** argv, const std::string& what) {
  RankSpawn spawn;
  spawn.world_size = nproc;
  try {
    spawn.master_port = FreeLoopbackPort();
  } catch (const std::runtime_error& e) {
    Fail(ErrorCode::kUnavailable, "{}: {}", what, e.what());
  }
  for (char** arg = argv; *arg; ++arg) spawn.argv.emplace_back(*arg);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    spawn.rank = rank;
    try {
      pids.push_back(SpawnLocalRank(spawn));
    } catch (const std::runtime_error& e) {
      for (const pid_t started : pids) ::kill(started, SIGKILL);
      Fail(ErrorCode::kInternal, "{}: {}", what, e.what());
    }
  }
  // When one rank fails, the others get SIGTERM; those still there after kRankGrace (a stopped or hung rank does not
  // act on SIGTERM) get SIGKILL, so the launcher always returns and its supervisor can start the group again.
  int result = 0;
  std::vector<pid_t> running = pids;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, kill_at ? WNOHANG : 0);
    if (pid > 0) {
      std::erase(running, pid);
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code != 0 && result == 0) {
        result = code;
        const auto it = std::find(pids.begin(), pids.end(), pid);
        fmt::print(stderr, "{}: rank {} failed (exit {}); stopping the others\n", what, it - pids.begin(), code);
        for (const pid_t other : running) ::kill(other, SIGTERM);
        kill_at = std::chrono::steady_clock::now() + kRankGrace;
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;  // no children left to wait for
    if (kill_at && std::chrono::steady_clock::now() >= *kill_at) {
      fmt::print(stderr, "{}: {} rank(s) still there after SIGTERM; killing them\n", what, running.size());
      for (const pid_t other : running) ::kill(other, SIGKILL);
      kill_at.reset();  // and wait for them
    } else if (kill_at) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return result;
}

}  // namespace vidgen::parallel
