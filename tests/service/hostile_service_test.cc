// The service tried as an attacker and as an unlucky operator would (issue 14): a store that fails under the
// janitor, streams that never end or never read, uploads for leases that are not there, a stopped rank, half a TLS
// configuration, flags out of range, a second server on one data folder. Real processes on loopback.
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/sha256.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/rpc.h"
#include "tests/service/cluster.h"

namespace vidgen::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The health service's answer for the whole server: SERVING, NOT_SERVING, or UNKNOWN when it does not answer.
grpc::health::v1::HealthCheckResponse::ServingStatus Health(const Cluster& cluster) {
  auto stub = grpc::health::v1::Health::NewStub(rpc::MakeChannel(cluster.address()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckResponse response;
  if (!stub->Check(&context, {}, &response).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return response.status();
}

// Waits up to `timeout` for `done`; false when it never held.
bool Eventually(const std::function<bool()>& done, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::string Sha256Hex(const std::string& bytes) {
  Sha256 sha;
  sha.Update(bytes);
  return sha.HexDigest();
}

std::string RandomBytes(std::size_t size) {
  std::mt19937 random(7);
  std::string bytes(size, '\0');
  for (auto& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// A worker group played by the test through the WorkerService: register, lease, upload, complete.
class FakeGroup {
 public:
  explicit FakeGroup(const Cluster& cluster) : cluster_(cluster), stub_(cluster.WorkerClient()) {
    v1::RegisterGroupRequest request;
    request.set_name("fake");
    request.set_world_size(1);
    request.add_models()->set_name(Cluster::kModel);
    v1::RegisterGroupResponse response;
    EXPECT_TRUE(stub_->RegisterGroup(Context().get(), request, &response).ok());
    group_id_ = response.group_id();
  }

  std::unique_ptr<grpc::ClientContext> Context() const { return Cluster::Context(cluster_.worker_token()); }

  v1::LeaseJobResponse Lease() {
    v1::LeaseJobRequest request;
    request.set_group_id(group_id_);
    request.set_wait_ms(5000);
    v1::LeaseJobResponse response;
    EXPECT_TRUE(stub_->LeaseJob(Context().get(), request, &response).ok());
    return response;
  }

  grpc::Status Upload(const std::string& job_id, const std::string& lease_id, const std::string& bytes,
                      std::size_t chunk = 256 << 10) {
    auto context = Context();
    v1::UploadArtifactResponse response;
    auto writer = stub_->UploadArtifact(context.get(), &response);
    for (std::size_t at = 0; at < bytes.size() || at == 0; at += chunk) {
      v1::UploadArtifactRequest message;
      message.set_job_id(job_id);
      message.set_lease_id(lease_id);
      message.set_data(bytes.substr(at, chunk));
      if (at + chunk >= bytes.size()) message.set_sha256(Sha256Hex(bytes));
      if (!writer->Write(message)) break;
      if (bytes.empty()) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  void Complete(const std::string& job_id, const std::string& lease_id) {
    v1::CompleteJobRequest request;
    request.set_job_id(job_id);
    request.set_lease_id(lease_id);
    v1::CompleteJobResponse response;
    EXPECT_TRUE(stub_->CompleteJob(Context().get(), request, &response).ok());
  }

 private:
  const Cluster& cluster_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::string group_id_;
};

std::size_t FilesIn(const fs::path& dir) {
  std::size_t count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) count += entry.is_regular_file();
  return count;
}

// A job the fake group has finished, with a video of `bytes`.
std::string FinishedJob(Cluster& cluster, FakeGroup& group, const std::string& video) {
  std::string id;
  EXPECT_TRUE(cluster.Submit(Cluster::SmallSpec(), &id).ok());
  const auto lease = group.Lease();
  EXPECT_EQ(lease.job_id(), id);
  EXPECT_TRUE(group.Upload(id, lease.lease_id(), video).ok());
  group.Complete(id, lease.lease_id());
  return id;
}

// Items 6 and 8: a lock held on the store from outside makes the janitor's work fail; the server logs it, answers
// NOT_SERVING while it lasts and SERVING after, keeps serving reads, and stops within its deadline although a
// watch is open.
TEST(HostileServiceTest, AStoreLockedFromOutsideIsReportedAndOutlived) {
  Cluster cluster;
  cluster.StartServer({"--store-busy-ms", "100"});
  std::string id;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &id).ok());
  EXPECT_EQ(Health(cluster), grpc::health::v1::HealthCheckResponse::SERVING);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((cluster.dir() + "/server/jobs.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_TRUE(Eventually([&] { return Health(cluster) == grpc::health::v1::HealthCheckResponse::NOT_SERVING; }));
  EXPECT_EQ(cluster.Get(id).id(), id);  // reads go on
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  EXPECT_TRUE(Eventually([&] { return Health(cluster) == grpc::health::v1::HealthCheckResponse::SERVING; }));
  EXPECT_NE(ReadFile(cluster.dir() + "/server.log").find("job store failing"), std::string::npos);

  // A watch that would never end on its own (the job stays queued) does not hold up a stop.
  v1::WatchJobRequest watch;
  watch.set_job_id(id);
  auto context = Cluster::Context();
  auto reader = cluster.Client()->WatchJob(context.get(), watch);
  v1::Job event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(cluster.StopServer(), 0);
  while (reader->Read(&event)) {
  }
  // Ended by the server's stop, not cut when gRPC's shutdown deadline ran out.
  const auto status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(status.error_message().find("the server is stopping"), std::string::npos) << status.error_message();
}

// Item 6: a corrupt page of the queue's index leaves the server up, unhealthy, and serving the jobs it can read
// (ended ones: a queued job's position needs that index).
TEST(HostileServiceTest, ACorruptIndexPageLeavesTheReadableJobsServed) {
  Cluster cluster;
  cluster.StartServer();
  std::vector<std::string> ids(300);
  const auto client = cluster.Client();
  for (auto& id : ids) {
    ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &id).ok());
    v1::CancelJobRequest cancel;
    cancel.set_job_id(id);
    v1::Job job;
    ASSERT_TRUE(client->CancelJob(Cluster::Context().get(), cancel, &job).ok());
  }
  cluster.KillServer(SIGTERM);

  const auto path = cluster.dir() + "/server/jobs.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  std::vector<std::int64_t> pages;
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db, "SELECT pageno FROM dbstat WHERE name = 'jobs_queue'", -1, &statement, nullptr);
  while (sqlite3_step(statement) == SQLITE_ROW) pages.push_back(sqlite3_column_int64(statement, 0));
  sqlite3_finalize(statement);
  sqlite3_close(db);
  ASSERT_FALSE(pages.empty());
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    for (const auto page : pages) {
      file.seekp((page - 1) * 4096);
      const std::string garbage(4096, '\xA5');
      file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
    }
  }
  cluster.StartServer();
  EXPECT_TRUE(Eventually([&] { return Health(cluster) == grpc::health::v1::HealthCheckResponse::NOT_SERVING; }));
  for (const auto& id : {ids.front(), ids.back()}) EXPECT_EQ(cluster.Get(id).state(), v1::CANCELLED);
  // Writes that need the broken index fail as INTERNAL, without the store's details; the server stays up.
  const auto status = cluster.Submit(Cluster::SmallSpec(), nullptr);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
  EXPECT_EQ(status.error_message().find("jobs"), std::string::npos) << status.error_message();
  EXPECT_EQ(cluster.Get(ids[7]).id(), ids[7]);
}

// Item 8: one tenant cannot hold every thread: its streams are bounded, others still get theirs, and a download
// whose reader stops reading is cut after the stall limit.
TEST(HostileServiceTest, StreamsAreBoundedPerTenantAndStalledReadersAreCut) {
  Cluster cluster;
  cluster.StartServer({"--max-streams-per-tenant", "3", "--stream-stall-seconds", "1"});
  std::string id;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &id).ok());
  v1::WatchJobRequest watch;
  watch.set_job_id(id);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::Job>>> readers;
  const auto client = cluster.Client();
  for (int i = 0; i < 3; ++i) {
    contexts.push_back(Cluster::Context());
    readers.push_back(client->WatchJob(contexts.back().get(), watch));
    v1::Job event;
    ASSERT_TRUE(readers.back()->Read(&event));
  }
  auto fourth_context = Cluster::Context();
  auto fourth = client->WatchJob(fourth_context.get(), watch);
  v1::Job event;
  EXPECT_FALSE(fourth->Read(&event));
  const auto refused = fourth->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("streams open"), std::string::npos);
  // Another tenant is not affected; and a closed stream frees its place.
  auto zeta_context = Cluster::Context(Cluster::kZetaKey);
  auto zeta = client->WatchJob(zeta_context.get(), watch);
  EXPECT_FALSE(zeta->Read(&event));
  EXPECT_EQ(zeta->Finish().error_code(), grpc::StatusCode::NOT_FOUND);  // its own stream, another tenant's job
  contexts.front()->TryCancel();
  readers.front()->Finish();
  EXPECT_TRUE(Eventually([&] {
    auto context = Cluster::Context();
    auto again = client->WatchJob(context.get(), watch);
    v1::Job first;
    const bool opened = again->Read(&first);
    context->TryCancel();
    again->Finish();
    return opened;
  }));
  for (std::size_t i = 1; i < contexts.size(); ++i) contexts[i]->TryCancel();
  for (std::size_t i = 1; i < readers.size(); ++i) readers[i]->Finish();
  v1::CancelJobRequest cancel;
  cancel.set_job_id(id);
  v1::Job cancelled;
  ASSERT_TRUE(client->CancelJob(Cluster::Context().get(), cancel, &cancelled).ok());

  // A download read one byte at a time, then not at all: the server's writes block, and the stream is cut.
  FakeGroup group(cluster);
  const auto done = FinishedJob(cluster, group, RandomBytes(512 << 10));
  v1::DownloadVideoRequest download;
  download.set_job_id(done);
  download.set_chunk_bytes(1);
  auto download_context = Cluster::Context();
  auto chunks = client->DownloadVideo(download_context.get(), download);
  v1::VideoChunk chunk;
  ASSERT_TRUE(chunks->Read(&chunk));
  EXPECT_TRUE(
      Eventually([&] { return ReadFile(cluster.dir() + "/server.log").find("readers stalled") != std::string::npos; }));
  while (chunks->Read(&chunk)) {
  }
  EXPECT_FALSE(chunks->Finish().ok());
}

// Items 9 and 10: an upload is refused on its first message unless its lease is current (nothing is written), and
// a second upload on one lease replaces the first without leaving its file behind.
TEST(HostileServiceTest, UploadsNeedTheirLeaseFirstAndReplaceTheirOwnVideo) {
  Cluster cluster;
  cluster.StartServer();
  FakeGroup group(cluster);
  const auto incoming = fs::path(cluster.dir()) / "server" / "videos" / "incoming";
  const auto refused = group.Upload("job-00000000000000000000000000000000", "lease-none", RandomBytes(3 << 20));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << refused.error_message();
  EXPECT_EQ(FilesIn(incoming), 0u);

  std::string id;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &id).ok());
  const auto lease = group.Lease();
  ASSERT_TRUE(group.Upload(id, lease.lease_id(), RandomBytes(100 << 10)).ok());
  ASSERT_TRUE(group.Upload(id, lease.lease_id(), RandomBytes(120 << 10)).ok());  // a retry after a lost reply
  group.Complete(id, lease.lease_id());
  EXPECT_EQ(FilesIn(fs::path(cluster.dir()) / "server" / "videos"), 1u);
  EXPECT_EQ(cluster.Get(id).video_bytes(), 120 << 10);
}

// Item 13: with --max-request-mib 1 (this suite's own config value), videos of several MiB go up in chunks sized
// from the limit and come down whole: the request limit is not applied to responses.
TEST(HostileServiceTest, VideosLargerThanTheRequestLimitGoUpAndComeDown) {
  Cluster cluster;
  cluster.StartServer({"--max-request-mib", "1"});
  cluster.StartWorker(1);
  // A near-lossless encode of the tiny model's noisy frames: several MiB.
  auto spec = Cluster::SmallSpec(2);
  spec.set_width(256);
  spec.set_height(256);
  spec.set_frames(65);
  spec.set_steps(1);
  spec.mutable_output()->set_quality(1);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  const auto job = cluster.WaitForEnd(id);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.message();
  EXPECT_GT(job.video_bytes(), 1 << 20);
  const std::string out = cluster.dir() + "/large.mp4";
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", id, out), &output), 0) << output;
  EXPECT_EQ(static_cast<std::int64_t>(fs::file_size(out)), job.video_bytes());
}

// Item 12 and the minor ones: a retry made before the model's group registered its defaults is the same request;
// invalid UTF-8 is INVALID_ARGUMENT naming the field, and the server serves on.
TEST(HostileServiceTest, RetriesAcrossARegistrationAndInvalidUtf8) {
  Cluster cluster;
  cluster.StartServer({"--model", "demo:wan2.1"});
  v1::SubmitJobRequest request;
  request.mutable_spec()->set_model("demo");
  request.mutable_spec()->set_prompt("a yellow circle moving right on a dark green background");
  request.set_idempotency_key("retry-me");
  v1::SubmitJobResponse first, second;
  ASSERT_TRUE(cluster.Client()->SubmitJob(Cluster::Context().get(), request, &first).ok());
  cluster.StartWorker(1, {}, VIDGEN_DEMO_MODEL, "demo");
  cluster.WaitForGroups("demo", 1);
  const auto status = cluster.Client()->SubmitJob(Cluster::Context().get(), request, &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(second.existing());
  EXPECT_EQ(second.job_id(), first.job_id());
  request.set_priority(7);
  EXPECT_EQ(cluster.Client()->SubmitJob(Cluster::Context().get(), request, &second).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  auto spec = Cluster::SmallSpec();
  spec.set_prompt("caf\xC3 au lait");
  const auto bad = cluster.Submit(spec, nullptr);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(bad.error_message().find("spec.prompt is not valid UTF-8"), std::string::npos) << bad.error_message();
  EXPECT_TRUE(cluster.Submit(Cluster::SmallSpec(), nullptr).ok());
}

// The pids of the processes whose parent is `parent`, with their RANK.
std::map<int, pid_t> RanksOf(pid_t parent) {
  std::map<int, pid_t> ranks;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid != parent) continue;
    const auto environ = ReadFile((entry.path() / "environ").string());
    const auto at = environ.find(std::string("\0RANK=", 6));
    if (at != std::string::npos) ranks[std::atoi(environ.c_str() + at + 6)] = std::stoi(name);
  }
  return ranks;
}

// Item 7: a follower rank stopped with SIGSTOP breaks the group's collectives; the job goes back to the queue, the
// launcher kills what SIGTERM cannot reach and exits, and a new group finishes the job.
TEST(HostileServiceTest, AStoppedRankIsKilledSoTheGroupCanComeBack) {
  Cluster cluster;
  cluster.StartServer({"--lease-seconds", "30"});
  const auto launcher = cluster.StartWorker(2, {"--collective-timeout", "3"});
  cluster.WaitForGroups(Cluster::kModel, 1);
  std::string id;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(200), &id).ok());
  cluster.WaitFor(id, [](const v1::Job& job) { return job.stage() == "denoising"; });
  const auto ranks = RanksOf(launcher.pid);
  ASSERT_EQ(ranks.size(), 2u);
  ::kill(ranks.at(1), SIGSTOP);
  EXPECT_TRUE(Eventually([&] { return !launcher.Running(); }, std::chrono::seconds(60))) << "the launcher did not exit";
  const auto requeued = cluster.WaitFor(id, [](const v1::Job& job) { return job.state() == v1::QUEUED; });
  EXPECT_EQ(requeued.attempts(), 1);
  EXPECT_NE(requeued.message().find("requeued"), std::string::npos) << requeued.message();
  cluster.StartWorker(1);
  EXPECT_EQ(cluster.WaitForEnd(id).state(), v1::SUCCEEDED);
}

// Item 14: half a TLS configuration, a garbage certificate, a key that is not the certificate's, and a garbage CA at
// the client are each refused with the file named.
TEST(HostileServiceTest, TlsMisconfigurationIsNamed) {
  Cluster cluster;
  cluster.EnableTls();  // writes tls.pem and tls.key
  const auto dir = cluster.dir();
  std::ofstream(dir + "/garbage.pem") << "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";
  std::ofstream(dir + "/text.pem") << "just some text\n";
  std::string output;
  EXPECT_EQ(cluster.RunServerToExit({"--tls-key", dir + "/tls.key"}, &output), 2) << output;
  EXPECT_NE(output.find("both --tls-cert and --tls-key"), std::string::npos) << output;
  EXPECT_EQ(cluster.RunServerToExit({"--tls-cert", dir + "/text.pem", "--tls-key", dir + "/tls.key"}, &output), 2);
  EXPECT_NE(output.find("'" + dir + "/text.pem' holds no PEM certificate"), std::string::npos) << output;
  EXPECT_EQ(cluster.RunServerToExit({"--tls-cert", dir + "/garbage.pem", "--tls-key", dir + "/tls.key"}, &output), 2);
  EXPECT_NE(output.find("garbage.pem' has a certificate that does not parse"), std::string::npos) << output;
  ASSERT_EQ(RunCommand(fmt::format("openssl genrsa -out {}/other.key 2048 2>&1", dir), &output), 0) << output;
  EXPECT_EQ(cluster.RunServerToExit({"--tls-cert", dir + "/tls.pem", "--tls-key", dir + "/other.key"}, &output), 2);
  EXPECT_NE(output.find("other.key' does not belong to the certificate"), std::string::npos) << output;
  cluster.StartServer();  // with the good pair
  EXPECT_NE(RunCommand(fmt::format("{} --server {} --key {} --tls-ca {}/text.pem models 2>&1", VIDGEN_CLIENT_BIN,
                                   cluster.address(), Cluster::kAcmeKey, dir),
                       &output),
            0);
  EXPECT_NE(output.find("text.pem' holds no PEM certificate"), std::string::npos) << output;
}

// Item 15 and the minor ones: one server per data folder, every flag checked, an empty store file refused.
TEST(HostileServiceTest, OperatorMistakesAreRefusedWithAMessage) {
  Cluster cluster;
  cluster.StartServer();
  std::string output;
  EXPECT_EQ(cluster.RunServerToExit({}, &output), 2) << output;
  EXPECT_NE(output.find("is in use by another vidgen-server (pid "), std::string::npos) << output;
  cluster.KillServer(SIGTERM);
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{{"--retention-hours", "-1"},
                                                                                    {"--lease-seconds", "0"},
                                                                                    {"--max-attempts", "0"},
                                                                                    {"--max-queue", "-1"},
                                                                                    {"--heartbeat-seconds", "-5"},
                                                                                    {"--max-request-mib", "-1"}}) {
    EXPECT_NE(cluster.RunServerToExit({flag, value}, &output), 0) << flag;
    EXPECT_NE(output.find(flag), std::string::npos) << flag << ": " << output;
  }
  EXPECT_EQ(cluster.RunServerToExit({"--lease-seconds", "5", "--heartbeat-seconds", "5"}, &output), 2);
  EXPECT_NE(output.find("must be below --lease-seconds"), std::string::npos) << output;
  fs::remove(cluster.dir() + "/server/jobs.db-wal");
  fs::remove(cluster.dir() + "/server/jobs.db-shm");
  fs::resize_file(cluster.dir() + "/server/jobs.db", 0);
  EXPECT_EQ(cluster.RunServerToExit({}, &output), 2);
  EXPECT_NE(output.find("is an empty file"), std::string::npos) << output;
}

}  // namespace
}  // namespace vidgen::testing
