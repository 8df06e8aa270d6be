// Local multi-process launch, as torchrun does: the tool starts itself once per rank with RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR and MASTER_PORT set, and each copy joins the group from the environment.
#pragma once

#include <string>

namespace vidgen::parallel {

// True when this process was started as a rank: RANK is set (torchrun, --nproc), or Slurm started several tasks.
bool IsRank();

// Starts `nproc` copies of this executable with `argv`, each as one rank of a group rendezvousing on a free
// loopback port, forwards their output, and waits. Returns 0 when every rank succeeded, else the first failing
// rank's exit code (the others are stopped). `what` names the tool in messages.
int LaunchLocalRanks(int nproc, char** argv, const std::string& what);

}  // namespace vidgen::parallel
