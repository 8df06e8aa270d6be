// Multi-rank tests: run a registered body in N local processes, as a launcher would start a worker group.
//
// Each rank is this test executable started again with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR (127.0.0.1) and
// MASTER_PORT (a free loopback port) set; the test main sees VIDGEN_RANK_BODY and runs that body instead of the
// tests. A fresh process per rank keeps LibTorch's thread pools and c10d state apart, as on a real cluster.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace vidgen::testing {

// A rank body returns the process exit code (0 for success). Register bodies at namespace scope:
//   const bool kRegistered = RegisterRankBody("allreduce", [] { ...; return 0; });
using RankBody = std::function<int()>;
bool RegisterRankBody(std::string name, RankBody body);

struct RankOutcome {
  int rank = 0;
  int exit_code = -1;                 // when the process exited
  int signal = 0;                     // when a signal ended it
  bool timed_out = false;             // killed at the deadline
  bool killed_after_failure = false;  // killed because another rank failed first
  std::string output;                 // its stdout and stderr, interleaved
  bool ok() const { return exit_code == 0; }
};

struct RanksOutcome {
  std::vector<RankOutcome> ranks;
  int master_port = 0;
  bool ok() const;
  // One line per rank and its output: what a failing test prints.
  std::string Summary() const;
};

struct RanksOptions {
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  // Once a rank fails, the others get this long to finish before they are killed (they may be stuck in a
  // collective waiting for the dead one).
  std::chrono::milliseconds grace_after_failure{std::chrono::seconds(5)};
  std::map<std::string, std::string> extra_env;
};

// Runs body `name` in `world_size` processes and waits for all of them.
RanksOutcome RunRanks(std::string_view name, int world_size, const RanksOptions& options);
inline RanksOutcome RunRanks(std::string_view name, int world_size) {
  return RunRanks(name, world_size, RanksOptions{});
}

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

// Called by the test main: when VIDGEN_RANK_BODY is set, runs that body and returns true with its exit code.
bool MaybeRunRankBody(int* exit_code);

}  // namespace vidgen::testing
