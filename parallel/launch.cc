#include "parallel/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"
#include "common/rank_launch.h"

namespace vidgen::parallel {

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
  int result = 0;
  for (std::size_t done = 0; done < pids.size(); ++done) {
    int status = 0;
    const pid_t pid = ::wait(&status);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && result == 0) {
      result = code;
      const auto it = std::find(pids.begin(), pids.end(), pid);
      fmt::print(stderr, "{}: rank {} failed (exit {}); stopping the others\n", what, it - pids.begin(), code);
      for (const pid_t other : pids) {
        if (other != pid) ::kill(other, SIGTERM);
      }
    }
  }
  return result;
}

}  // namespace vidgen::parallel
