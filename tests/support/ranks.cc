#include "tests/support/ranks.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "common/rank_launch.h"

namespace vidgen::testing {
namespace {

constexpr const char* kBodyVariable = "VIDGEN_RANK_BODY";

std::map<std::string, RankBody, std::less<>>& Registry() {
  static std::map<std::string, RankBody, std::less<>> registry;
  return registry;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Child {
  pid_t pid = -1;
  std::string log_path;
};

Child Spawn(std::string_view body, int rank, int world_size, int port, const RanksOptions& options,
            const std::filesystem::path& log_dir) {
  Child child;
  child.log_path = (log_dir / fmt::format("rank{}.log", rank)).string();
  RankSpawn spawn;
  spawn.rank = rank;
  spawn.world_size = world_size;
  spawn.master_port = port;
  spawn.extra_env = options.extra_env;
  spawn.extra_env[kBodyVariable] = body;
  spawn.log_path = child.log_path;
  child.pid = SpawnLocalRank(spawn);
  return child;
}

}  // namespace

bool RegisterRankBody(std::string name, RankBody body) {
  return Registry().emplace(std::move(name), std::move(body)).second;
}

bool RanksOutcome::ok() const {
  for (const auto& rank : ranks) {
    if (!rank.ok()) return false;
  }
  return !ranks.empty();
}

std::string RanksOutcome::Summary() const {
  std::string text;
  for (const auto& rank : ranks) {
    std::string how = rank.timed_out              ? "timed out"
                      : rank.killed_after_failure ? "killed after another rank failed"
                      : rank.signal != 0          ? fmt::format("killed by signal {}", rank.signal)
                                                  : fmt::format("exit {}", rank.exit_code);
    text += fmt::format("rank {}: {}\n{}", rank.rank, how, rank.output);
    if (!rank.output.empty() && rank.output.back() != '\n') text += '\n';
  }
  return text;
}

int FreeLoopbackPort() {
  return vidgen::FreeLoopbackPort();
}

RanksOutcome RunRanks(std::string_view name, int world_size, const RanksOptions& options) {
  if (!Registry().contains(name)) throw std::invalid_argument(fmt::format("no rank body '{}'", name));
  RanksOutcome outcome;
  outcome.master_port = FreeLoopbackPort();
  char log_template[] = "/tmp/vidgen-ranks-XXXXXX";
  if (!::mkdtemp(log_template)) throw std::runtime_error("cannot create a folder for rank logs");
  const std::filesystem::path log_dir = log_template;

  std::vector<Child> children;
  for (int rank = 0; rank < world_size; ++rank) {
    children.push_back(Spawn(name, rank, world_size, outcome.master_port, options, log_dir));
    outcome.ranks.emplace_back().rank = rank;
  }

  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + options.timeout;
  bool failure_seen = false;
  int running = world_size;
  while (running > 0) {
    for (int rank = 0; rank < world_size; ++rank) {
      auto& child = children[rank];
      if (child.pid < 0) continue;
      int status = 0;
      if (::waitpid(child.pid, &status, WNOHANG) != child.pid) continue;
      child.pid = -1;
      --running;
      auto& result = outcome.ranks[rank];
      if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
      if (!result.ok() && !result.timed_out && !result.killed_after_failure && !failure_seen) {
        failure_seen = true;
        deadline = std::min(deadline, Clock::now() + options.grace_after_failure);
      }
    }
    if (running > 0 && Clock::now() >= deadline) {
      for (int rank = 0; rank < world_size; ++rank) {
        if (children[rank].pid < 0) continue;
        ::kill(children[rank].pid, SIGKILL);
        (failure_seen ? outcome.ranks[rank].killed_after_failure : outcome.ranks[rank].timed_out) = true;
      }
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  for (int rank = 0; rank < world_size; ++rank) outcome.ranks[rank].output = ReadAll(children[rank].log_path);
  std::error_code ignored;
  std::filesystem::remove_all(log_dir, ignored);
  return outcome;
}

bool MaybeRunRankBody(int* exit_code) {
  const char* name = std::getenv(kBodyVariable);
  if (!name) return false;
  const auto it = Registry().find(name);
  if (it == Registry().end()) {
    std::fprintf(stderr, "no rank body '%s' in this executable\n", name);
    *exit_code = 2;
    return true;
  }
  try {
    *exit_code = it->second();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank body '%s' threw: %s\n", name, e.what());
    *exit_code = 3;
  }
  std::fflush(stdout);
  return true;
}

}  // namespace vidgen::testing
