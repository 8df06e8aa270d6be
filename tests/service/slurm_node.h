// A one-node Slurm cluster on this machine for a test: munged, slurmctld and slurmd (2 CPUs) from Debian's
// slurm-wlm and munge packages, with their key, configuration, state, sockets and logs in one folder.
#pragma once

#include <string>

#include "tests/service/cluster.h"

namespace vidgen::testing {

class SlurmNode {
 public:
  // Why a node cannot run here ("" when it can): the packages are missing, or this is not root (slurmd runs
  // jobs as their users).
  static std::string Unavailable();

  // Starts the daemons in a fresh folder under /tmp (short: munge's socket path has at most 108 bytes) and waits
  // until the node is idle (fails the test after a minute).
  SlurmNode();
  ~SlurmNode();  // cancels every job, kills the daemons, removes the folder unless the test failed

  // Runs a shell command with this cluster's configuration (sbatch, squeue, scancel, ...); its exit code, and its
  // output with stderr.
  int Run(const std::string& command, std::string* output = nullptr) const;
  // The daemons' logs, for a failing test's message.
  std::string Logs() const;

 private:
  std::string dir_;
  Process munged_, slurmctld_, slurmd_;
};

}  // namespace vidgen::testing
