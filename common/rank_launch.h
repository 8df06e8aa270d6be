// Starting ranks on this machine as torchrun does: a free loopback port for the rendezvous, and a copy of this
// executable per rank with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. Used by
// the tools' --nproc and by the multi-rank test helper.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace vidgen {

// A TCP port on 127.0.0.1 that was free a moment ago. Throws std::runtime_error when none can be had.
inline int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("cannot find a free loopback port");
  return ntohs(address.sin_port);
}

struct RankSpawn {
  int rank = 0;
  int world_size = 1;
  int master_port = 0;
  std::vector<std::string> argv;  // argv[0] included; empty: just the executable
  std::map<std::string, std::string> extra_env;
  std::string log_path;  // stdout and stderr go here when set; else inherited
};

// Starts /proc/self/exe as one local rank on 127.0.0.1; returns its pid. Throws std::runtime_error on failure.
inline pid_t SpawnLocalRank(const RankSpawn& spawn) {
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry; ++entry) {
    const std::string text = *entry;
    const auto eq = text.find('=');
    if (eq != std::string::npos) env[text.substr(0, eq)] = text.substr(eq + 1);
  }
  env["RANK"] = env["LOCAL_RANK"] = std::to_string(spawn.rank);
  env["WORLD_SIZE"] = env["LOCAL_WORLD_SIZE"] = std::to_string(spawn.world_size);
  env["MASTER_ADDR"] = "127.0.0.1";
  env["MASTER_PORT"] = std::to_string(spawn.master_port);
  env["VIDGEN_LAUNCHER_PID"] = std::to_string(::getpid());
  for (const auto& [key, value] : spawn.extra_env) env[key] = value;
  std::vector<std::string> env_text;
  for (const auto& [key, value] : env) env_text.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& text : env_text) envp.push_back(text.data());
  envp.push_back(nullptr);

  std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> args = spawn.argv.empty() ? std::vector<std::string>{exe} : spawn.argv;
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!spawn.log_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, spawn.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error(fmt::format("cannot start rank {}: {}", spawn.rank, std::strerror(rc)));
  return pid;
}

// In a rank started by SpawnLocalRank: die with the launcher, so that killing it (even with SIGKILL) takes the whole
// local group down instead of leaving ranks that wait on a dead peer.
inline void FollowLauncher() {
  const char* launcher = std::getenv("VIDGEN_LAUNCHER_PID");
  if (!launcher) return;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != std::atoi(launcher)) ::_exit(1);  // the launcher died before prctl took effect
}

}  // namespace vidgen
