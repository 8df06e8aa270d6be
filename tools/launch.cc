#include "tools/launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "common/error.h"

extern char** environ;

namespace vidgen::tools {
namespace {

int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) Fail(ErrorCode::kUnavailable, "cannot find a free loopback port for the ranks' rendezvous");
  return ntohs(address.sin_port);
}

}  // namespace

bool IsRank() { return std::getenv("RANK") != nullptr; }

int LaunchLocalRanks(int nproc, char** argv, const std::string& what) {
  const int port = FreeLoopbackPort();
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < nproc; ++rank) {
    std::map<std::string, std::string> env;
    for (char** entry = environ; *entry; ++entry) {
      const std::string text = *entry;
      const auto eq = text.find('=');
      if (eq != std::string::npos) env[text.substr(0, eq)] = text.substr(eq + 1);
    }
    env["RANK"] = env["LOCAL_RANK"] = std::to_string(rank);
    env["WORLD_SIZE"] = env["LOCAL_WORLD_SIZE"] = std::to_string(nproc);
    env["MASTER_ADDR"] = "127.0.0.1";
    env["MASTER_PORT"] = std::to_string(port);
    std::vector<std::string> env_text;
    for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
    std::vector<char*> envp;
    for (auto& text : env_text) envp.push_back(text.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()) != 0) {
      for (const pid_t started : pids) ::kill(started, SIGKILL);
      Fail(ErrorCode::kInternal, "{}: cannot start rank {}", what, rank);
    }
    pids.push_back(pid);
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

}  // namespace vidgen::tools
