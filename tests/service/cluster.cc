#include "tests/service/cluster.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/rank_launch.h"
#include "proto/rpc.h"

extern char** environ;

namespace vidgen::testing {

Process Spawn(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& arg : copy) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) throw std::runtime_error(fmt::format("cannot start {}: {}", args[0], std::strerror(rc)));
  return {pid, log};
}

void Process::Kill(int signal) const {
  if (pid > 0) ::kill(-pid, signal);
  if (signal == SIGKILL) ::waitpid(pid, nullptr, 0);
}

bool Process::Running() const {
  return pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0;
}

std::map<std::string, std::string> Probe(const std::string& path) {
  std::string output;
  EXPECT_EQ(RunCommand(fmt::format("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                                   "stream=codec_name,width,height,pix_fmt,nb_read_frames -of default=nw=1 '{}'",
                                   path),
                       &output),
            0)
      << output;
  std::map<std::string, std::string> fields;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return fields;
}

int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return -1;
  std::string text;
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) text.append(buffer, n);
  const int status = ::pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

Cluster::Cluster() {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ =
      (std::filesystem::temp_directory_path() / fmt::format("vidgen-service-{}-{}", ::getpid(), test->name())).string();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
  worker_token_ = "worker-token-" + std::to_string(::getpid());
  std::ofstream(dir_ + "/worker.token") << worker_token_ << "\n";
  std::ofstream(dir_ + "/keys.json") << fmt::format(R"([{{"tenant": "acme", "key": "{}"}},
                                                        {{"tenant": "zeta", "key": "{}"}}])",
                                                    kAcmeKey, kZetaKey);
  port_ = FreeLoopbackPort();
}

Cluster::~Cluster() {
  for (const auto& process : processes_) process.Kill(SIGKILL);
  server_.Kill(SIGKILL);
  if (!::testing::Test::HasFailure()) {
    std::filesystem::remove_all(dir_);
  } else {
    for (const auto& process : processes_) fmt::print(stderr, "--- {}\n{}\n", process.log, ReadFile(process.log));
    fmt::print(stderr, "--- server\n{}\n", ReadFile(dir_ + "/server.log"));
  }
}

void Cluster::EnableTls() {
  std::string output;
  ASSERT_EQ(RunCommand(fmt::format("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                                   "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout {0}/tls.key "
                                   "-out {0}/tls.pem 2>&1",
                                   dir_),
                       &output),
            0)
      << output;
  tls_ca_ = dir_ + "/tls.pem";
}

std::string Cluster::address() const {
  return fmt::format("127.0.0.1:{}", port_);
}

void Cluster::StartServer(const std::vector<std::string>& extra_flags) {
  std::vector<std::string> args = {VIDGEN_SERVER_BIN,
                                   "--listen",
                                   address(),
                                   "--data-dir",
                                   dir_ + "/server",
                                   "--keys-file",
                                   dir_ + "/keys.json",
                                   "--worker-token-file",
                                   dir_ + "/worker.token",
                                   "--model",
                                   std::string(kModel) + ":wan2.1",
                                   "--heartbeat-seconds",
                                   "1"};
  if (!tls_ca_.empty()) args.insert(args.end(), {"--tls-cert", tls_ca_, "--tls-key", dir_ + "/tls.key"});
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  server_ = Spawn(args, dir_ + "/server.log");
  // Ready when ListModels answers.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    v1::ListModelsResponse models;
    auto context = Context();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    if (Client()->ListModels(context.get(), {}, &models).ok()) return;
    ASSERT_TRUE(server_.Running()) << ReadFile(dir_ + "/server.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL() << "vidgen-server did not answer on " << address();
}

void Cluster::KillServer(int signal) {
  server_.Kill(signal);
  if (signal != SIGKILL) ::waitpid(server_.pid, nullptr, 0);
  server_ = {};
}

int Cluster::StopServer() {
  server_.Kill(SIGTERM);
  int status = 0;
  ::waitpid(server_.pid, &status, 0);
  server_ = {};
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Process Cluster::StartWorker(int nproc, const std::vector<std::string>& extra_flags, const std::string& model_dir,
                             const std::string& model_name) {
  const int index = static_cast<int>(processes_.size());
  std::vector<std::string> args = {VIDGEN_WORKER_BIN,
                                   "--server",
                                   address(),
                                   "--worker-token-file",
                                   dir_ + "/worker.token",
                                   "--model-dir",
                                   model_dir,
                                   "--model-name",
                                   model_name,
                                   "--dtype",
                                   "fp32",
                                   "--nproc",
                                   std::to_string(nproc),
                                   "--threads",
                                   "1",
                                   "--work-dir",
                                   fmt::format("{}/worker{}", dir_, index)};
  if (!tls_ca_.empty()) args.insert(args.end(), {"--tls-ca", tls_ca_});
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  processes_.push_back(Spawn(args, fmt::format("{}/worker{}.log", dir_, index)));
  return processes_.back();
}

std::unique_ptr<v1::VideoService::Stub> Cluster::Client() const {
  return v1::VideoService::NewStub(rpc::MakeChannel(address(), tls_ca_));
}

std::unique_ptr<v1::WorkerService::Stub> Cluster::WorkerClient() const {
  return v1::WorkerService::NewStub(rpc::MakeChannel(address(), tls_ca_));
}

std::unique_ptr<grpc::ClientContext> Cluster::Context(const std::string& key) {
  auto context = std::make_unique<grpc::ClientContext>();
  rpc::AddBearer(*context, key);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return context;
}

grpc::Status Cluster::Submit(const v1::JobSpec& spec, std::string* job_id, const std::string& key) const {
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::SubmitJobResponse response;
  const auto status = Client()->SubmitJob(Context(key).get(), request, &response);
  if (job_id) *job_id = response.job_id();
  return status;
}

v1::Job Cluster::Get(const std::string& job_id) const {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  const auto status = Client()->GetJob(Context().get(), request, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return job;
}

v1::Job Cluster::WaitFor(const std::string& job_id, const std::function<bool(const v1::Job&)>& done,
                         std::chrono::seconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  v1::Job job;
  while (std::chrono::steady_clock::now() < deadline) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    if (Client()->GetJob(Context().get(), request, &job).ok() && done(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "job " << job_id << " stayed " << v1::JobState_Name(job.state()) << " (" << job.stage() << ", "
                << job.message() << ")";
  return job;
}

v1::Job Cluster::WaitForEnd(const std::string& job_id, std::chrono::seconds timeout) const {
  return WaitFor(
      job_id,
      [](const v1::Job& job) {
        return job.state() == v1::SUCCEEDED || job.state() == v1::FAILED || job.state() == v1::CANCELLED;
      },
      timeout);
}

void Cluster::WaitForGroups(const std::string& model, int groups) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < deadline) {
    v1::ListModelsResponse models;
    if (Client()->ListModels(Context().get(), {}, &models).ok()) {
      for (const auto& served : models.models()) {
        if (served.name() == model && served.worker_groups() >= groups) return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "no " << groups << " worker group(s) for " << model;
}

int Cluster::RunServerToExit(const std::vector<std::string>& flags, std::string* output) const {
  std::string command = fmt::format(
      "timeout 30 {} --listen {} --data-dir {}/server --keys-file {}/keys.json "
      "--worker-token-file {}/worker.token",
      VIDGEN_SERVER_BIN, address(), dir_, dir_, dir_);
  for (const auto& flag : flags) command += " '" + flag + "'";
  return RunCommand(command + " 2>&1", output);
}

int Cluster::RunClient(const std::string& arguments, std::string* output) const {
  const std::string tls = tls_ca_.empty() ? "" : " --tls-ca " + tls_ca_;
  return RunCommand(
      fmt::format("{} --server {} --key {}{} {} 2>&1", VIDGEN_CLIENT_BIN, address(), kAcmeKey, tls, arguments), output);
}

v1::JobSpec Cluster::SmallSpec(int steps) {
  v1::JobSpec spec;
  spec.set_model(kModel);
  spec.set_prompt("a red ball bouncing on a wooden floor");
  spec.set_width(96);
  spec.set_height(64);
  spec.set_frames(9);
  spec.set_steps(steps);
  return spec;
}

v1::JobSpec Cluster::LongSpec(int steps) {
  auto spec = SmallSpec(steps);
  spec.set_width(128);
  spec.set_height(128);
  spec.set_frames(17);
  return spec;
}

}  // namespace vidgen::testing
