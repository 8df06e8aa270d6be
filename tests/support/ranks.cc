#include "tests/support/ranks.h"
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

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
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry; ++entry) {
    const std::string text = *entry;
    const auto eq = text.find('=');
    if (eq != std::string::npos) env[text.substr(0, eq)] = text.substr(eq + 1);
  }
  env[kBodyVariable] = body;
  env["RANK"] = std::to_string(rank);
  env["LOCAL_RANK"] = std::to_string(rank);
  env["WORLD_SIZE"] = std::to_string(world_size);
  env["LOCAL_WORLD_SIZE"] = std::to_string(world_size);
  env["MASTER_ADDR"] = "127.0.0.1";
  env["MASTER_PORT"] = std::to_string(port);
  for (const auto& [key, value] : options.extra_env) env[key] = value;
  std::vector<std::string> env_text;
  for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& text : env_text) envp.push_back(text.data());
  envp.push_back(nullptr);

  Child child;
  child.log_path = (log_dir / fmt::format("rank{}.log", rank)).string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, child.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  char* argv[] = {exe.data(), nullptr};
  const int rc = posix_spawn(&child.pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error(fmt::format("cannot start rank {}: {}", rank, std::strerror(rc)));
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
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
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
