#include "tests/service/slurm_node.h"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/rank_launch.h"

namespace vidgen::testing {
namespace {

constexpr const char* kDaemons[] = {"/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"};

std::string Hostname() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

}  // namespace

std::string SlurmNode::Unavailable() {
  for (const char* daemon : kDaemons) {
    if (!std::filesystem::exists(daemon)) return fmt::format("{} is not installed (slurm-wlm, munge)", daemon);
  }
  if (::geteuid() != 0) return "slurmd needs root";
  return "";
}

SlurmNode::SlurmNode() {
  namespace fs = std::filesystem;
  char dir[] = "/tmp/slurm-XXXXXX";
  if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp failed");
  dir_ = dir;
  for (const char* sub : {"run", "state", "spool"}) fs::create_directories(dir_ + "/" + sub);
  // A fresh key: the cluster authenticates with nothing the machine's own munge uses.
  {
    std::ofstream key(dir_ + "/munge.key", std::ios::binary);
    std::random_device random;
    for (int i = 0; i < 1024; ++i) key.put(static_cast<char>(random()));
  }
  fs::permissions(dir_ + "/munge.key", fs::perms::owner_read | fs::perms::owner_write);
  munged_ = Spawn({"/usr/sbin/munged", "--foreground", "--force", "--key-file=" + dir_ + "/munge.key",
                   "--socket=" + dir_ + "/run/munge.socket", "--pid-file=" + dir_ + "/run/munged.pid",
                   "--seed-file=" + dir_ + "/munge.seed", "--log-file=" + dir_ + "/munged.log"},
                  dir_ + "/munged.out");

  const std::string host = Hostname(), user = ::getpwuid(::geteuid())->pw_name;
  std::ofstream(dir_ + "/slurm.conf") << fmt::format(
      "ClusterName=vidgen-test\n"
      "SlurmctldHost={host}(127.0.0.1)\n"
      "SlurmUser={user}\nSlurmdUser={user}\n"
      "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={dir}/run/munge.socket\n"
      "SlurmctldPort={ctld_port}\nSlurmdPort={d_port}\n"
      "StateSaveLocation={dir}/state\nSlurmdSpoolDir={dir}/spool\n"
      "SlurmctldPidFile={dir}/run/slurmctld.pid\nSlurmdPidFile={dir}/run/slurmd.pid\n"
      "SlurmctldLogFile={dir}/slurmctld.log\nSlurmdLogFile={dir}/slurmd.log\n"
      "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
      "AccountingStorageType=accounting_storage/none\nMpiDefault=none\n"
      "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\nSchedulerType=sched/backfill\n"
      "ReturnToService=2\nSlurmdParameters=config_overrides\nKillWait=2\n"
      "NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n"
      "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
      fmt::arg("host", host), fmt::arg("user", user), fmt::arg("dir", dir_), fmt::arg("ctld_port", FreeLoopbackPort()),
      fmt::arg("d_port", FreeLoopbackPort()));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(dir_ + "/run/munge.socket") && std::chrono::steady_clock::now() < deadline) {
    if (!munged_.Running()) {
      ADD_FAILURE() << "munged did not start\n" << Logs();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  slurmctld_ = Spawn({"/usr/sbin/slurmctld", "-D", "-f", dir_ + "/slurm.conf"}, dir_ + "/slurmctld.out");
  slurmd_ = Spawn({"/usr/sbin/slurmd", "-D", "-f", dir_ + "/slurm.conf"}, dir_ + "/slurmd.out");
  std::string state;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Run("sinfo -h -o %t", &state) == 0 && state.starts_with("idle")) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ADD_FAILURE() << "the Slurm node did not come up (sinfo: " << state << ")\n" << Logs();
}

SlurmNode::~SlurmNode() {
  // Jobs run under slurmstepd, outside the daemons' process groups: cancel them and wait for them to go first.
  Run("scancel --user=$(id -un)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string queue = "?";
  while (!queue.empty() && std::chrono::steady_clock::now() < deadline) {
    if (Run("squeue -h", &queue) != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (const auto* daemon : {&slurmd_, &slurmctld_, &munged_}) daemon->Kill(SIGKILL);
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir_);
}

int SlurmNode::Run(const std::string& command, std::string* output) const {
  return RunCommand(fmt::format("SLURM_CONF={}/slurm.conf {} 2>&1", dir_, command), output);
}

std::string SlurmNode::Logs() const {
  std::string logs;
  for (const char* log : {"munged.out", "slurmctld.out", "slurmctld.log", "slurmd.out", "slurmd.log"}) {
    logs += fmt::format("--- {}\n{}\n", log, ReadFile(dir_ + "/" + log));
  }
  return logs;
}

}  // namespace vidgen::testing
