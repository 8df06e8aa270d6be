// vidgen-bench service: the server under a burst of concurrent SubmitJob calls. Starts vidgen-server in a temporary
// folder (no worker: every job stays queued), sends `rounds` bursts of `concurrency` submits at once from that many
// client threads, and reports submit latency (p50, p99, max), submits per second and the server's resident memory.
#pragma once

#include <string>

namespace vidgen::tools {

struct ServiceBenchOptions {
  std::string server_bin;  // default: vidgen-server beside this binary's build tree
  int concurrency = 200;
  int rounds = 5;
  int channels = 8;  // connections the client threads share
  bool json = false;
};

int RunServiceBench(const ServiceBenchOptions& options);

}  // namespace vidgen::tools
