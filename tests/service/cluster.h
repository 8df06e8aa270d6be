// A vidgen deployment on loopback for tests: vidgen-server, worker groups and clients as real processes in a
// temporary folder, with two tenants' keys and a worker token. Processes are killed when the Cluster goes.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "vidgen/v1/video_service.grpc.pb.h"
#include "vidgen/v1/worker_service.grpc.pb.h"

namespace vidgen::testing {

struct Process {
  pid_t pid = -1;  // also its process group: Kill reaches the ranks a launcher started
  std::string log;
  void Kill(int signal) const;
  bool Running() const;
};

// Starts `args` (args[0] a path) in a process group of its own, stdout and stderr appended to `log`.
Process Spawn(const std::vector<std::string>& args, const std::string& log);

class Cluster {
 public:
  static constexpr const char* kAcmeKey = "acme-key-0123456789abcdef";
  static constexpr const char* kZetaKey = "zeta-key-0123456789abcdef";
  static constexpr const char* kModel = "wan-tiny";

  Cluster();
  ~Cluster();

  // Serve TLS from now on, with a fresh self-signed certificate for 127.0.0.1 that every client here trusts.
  void EnableTls();

  // Starts vidgen-server on this cluster's port and data folder (the same on every restart) and waits until it
  // answers.
  void StartServer(const std::vector<std::string>& extra_flags = {});
  void KillServer(int signal = SIGKILL);
  // SIGTERM, then waits for the server to exit: its exit status (-1 when it did not exit normally).
  int StopServer();
  // A worker group of `nproc` local ranks serving a checkpoint (the tiny Wan one as kModel by default).
  Process StartWorker(int nproc = 1, const std::vector<std::string>& extra_flags = {},
                      const std::string& model_dir = VIDGEN_TINY_MODEL, const std::string& model_name = kModel);

  std::string address() const;
  const std::string& dir() const { return dir_; }
  const std::string& worker_token() const { return worker_token_; }

  std::unique_ptr<v1::VideoService::Stub> Client() const;
  std::unique_ptr<v1::WorkerService::Stub> WorkerClient() const;
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& key = kAcmeKey);

  grpc::Status Submit(const v1::JobSpec& spec, std::string* job_id, const std::string& key = kAcmeKey) const;
  v1::Job Get(const std::string& job_id) const;
  // Polls the job until `done` holds; fails the test (and returns the last state) after `timeout`.
  v1::Job WaitFor(const std::string& job_id, const std::function<bool(const v1::Job&)>& done,
                  std::chrono::seconds timeout = std::chrono::seconds(120)) const;
  v1::Job WaitForEnd(const std::string& job_id, std::chrono::seconds timeout = std::chrono::seconds(120)) const;
  // Waits until `groups` worker groups serve `model` (fails the test after two minutes).
  void WaitForGroups(const std::string& model, int groups) const;
  // Runs vidgen-server with this cluster's keys, token and data folder plus `flags`, until it exits (at most 30 s);
  // returns its exit status and its output.
  int RunServerToExit(const std::vector<std::string>& flags, std::string* output) const;

  // Runs the `vidgen` client with the cluster's address and acme's key; returns its exit code and output.
  int RunClient(const std::string& arguments, std::string* output = nullptr) const;

  // A small valid job for the tiny model.
  static v1::JobSpec SmallSpec(int steps = 6);
  // A job of the tiny model long enough to be seen running: 128×128, 17 frames.
  static v1::JobSpec LongSpec(int steps);

 private:
  std::string dir_, worker_token_, tls_ca_;
  int port_ = 0;
  Process server_;
  std::vector<Process> processes_;
};

// ffprobe's view of a video's first stream: codec_name, width, height, pix_fmt, nb_read_frames (decoded).
std::map<std::string, std::string> Probe(const std::string& path);

// Runs a shell command; returns its exit code and stdout.
int RunCommand(const std::string& command, std::string* output = nullptr);
std::string ReadFile(const std::string& path);

}  // namespace vidgen::testing
