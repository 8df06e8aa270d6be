// vidgen-server, vidgen-worker and the vidgen client as real processes on loopback: the whole path of a job, cancel,
// crashes of either side, concurrency, bad requests and resumed downloads.

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/sha256.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/rpc.h"
#include "tests/service/cluster.h"
#include "tests/support/golden.h"

namespace vidgen::testing {
namespace {

TEST(ServiceTest, SubmitWatchAndDownloadPlayableVideos) {
  Cluster cluster;
  cluster.StartServer();
  cluster.StartWorker(2);  // two ranks, Ulysses

  // The client end to end: submit, live progress, download; then ffprobe.
  const std::string mp4 = cluster.dir() + "/ball.mp4";
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("submit --model {} --prompt 'a red ball' --size 96x64 --frames 9 --steps 6 "
                                          "--cache taylorseer-wan --wait --out {}",
                                          Cluster::kModel, mp4),
                              &output),
            0)
      << output;
  EXPECT_NE(output.find("denoising step"), std::string::npos) << output;
  auto probe = Probe(mp4);
  EXPECT_EQ(probe["codec_name"], "h264");
  EXPECT_EQ(probe["pix_fmt"], "yuv420p");
  EXPECT_EQ(probe["width"], "96");
  EXPECT_EQ(probe["height"], "64");
  EXPECT_EQ(probe["nb_read_frames"], "9");

  // WatchJob over the API: every event in order, steps never going back, ending in SUCCEEDED; VP9 in WebM.
  auto spec = Cluster::SmallSpec(8);
  spec.set_frames(13);
  spec.mutable_output()->set_container("webm");
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  v1::WatchJobRequest watch;
  watch.set_job_id(id);
  auto context = Cluster::Context();
  auto reader = cluster.Client()->WatchJob(context.get(), watch);
  v1::Job event;
  std::vector<v1::Job> events;
  while (reader->Read(&event)) events.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::SUCCEEDED);
  std::set<std::string> stages;
  int last_step = 0;
  for (const auto& job : events) {
    stages.insert(job.stage());
    if (job.state() == v1::RUNNING) {
      EXPECT_GE(job.step(), last_step);
      last_step = job.step();
    }
  }
  EXPECT_TRUE(stages.count("denoising")) << "no step events";
  EXPECT_EQ(events.back().total_steps(), 8);
  const std::string webm = cluster.dir() + "/ball.webm";
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", id, webm), &output), 0) << output;
  probe = Probe(webm);
  EXPECT_EQ(probe["codec_name"], "vp9");
  EXPECT_EQ(probe["nb_read_frames"], "13");
  EXPECT_EQ(Sha256OfFile(webm), events.back().video_sha256());
}

TEST(ServiceTest, CancelWhileQueuedAndWhileRunningLeavesTheGroupHealthy) {
  Cluster cluster;
  cluster.StartServer({"--max-steps", "1000"});
  cluster.StartWorker(2);
  auto long_spec = Cluster::LongSpec(400);
  std::string running, queued;
  ASSERT_TRUE(cluster.Submit(long_spec, &running).ok());
  cluster.WaitFor(running, [](const v1::Job& job) { return job.step() >= 2; });
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &queued).ok());
  EXPECT_EQ(cluster.Get(queued).state(), v1::QUEUED);

  v1::CancelJobRequest cancel;
  cancel.set_job_id(queued);
  v1::Job job;
  ASSERT_TRUE(cluster.Client()->CancelJob(Cluster::Context().get(), cancel, &job).ok());
  EXPECT_EQ(job.state(), v1::CANCELLED);

  cancel.set_job_id(running);
  ASSERT_TRUE(cluster.Client()->CancelJob(Cluster::Context().get(), cancel, &job).ok());
  const int step_when_asked = job.step();
  job = cluster.WaitForEnd(running, std::chrono::seconds(30));
  EXPECT_EQ(job.state(), v1::CANCELLED) << job.message();
  // The group learns at its next heartbeat and stops at that step boundary, long before the end.
  EXPECT_GE(job.step(), step_when_asked);
  EXPECT_LT(job.step(), 400) << "asked at step " << step_when_asked;

  // The group takes the next job.
  std::string next;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &next).ok());
  EXPECT_EQ(cluster.WaitForEnd(next).state(), v1::SUCCEEDED);
  // A cancelled job cannot be cancelled again.
  EXPECT_EQ(cluster.Client()->CancelJob(Cluster::Context().get(), cancel, &job).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(ServiceTest, AKilledLeaderLosesItsLeaseAndARestartedGroupFinishesTheJob) {
  Cluster cluster;
  cluster.StartServer({"--lease-seconds", "3", "--max-steps", "1000"});
  const auto worker = cluster.StartWorker(1);
  auto spec = Cluster::LongSpec(300);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  cluster.WaitFor(id, [](const v1::Job& job) { return job.step() >= 2; });
  worker.Kill(SIGKILL);
  const auto requeued = cluster.WaitFor(
      id, [](const v1::Job& job) { return job.state() == v1::QUEUED; }, std::chrono::seconds(20));
  EXPECT_EQ(requeued.attempts(), 1);
  EXPECT_NE(requeued.message().find("stopped answering"), std::string::npos) << requeued.message();
  cluster.StartWorker(1);
  const auto done = cluster.WaitForEnd(id);
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempts(), 2);
}

TEST(ServiceTest, AKilledServerRestartsWithItsJobsAndVideosAndTheWorkerReconnects) {
  Cluster cluster;
  cluster.StartServer({"--max-steps", "1000"});
  cluster.StartWorker(1);
  std::string finished;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &finished).ok());
  const auto before = cluster.WaitForEnd(finished);
  ASSERT_EQ(before.state(), v1::SUCCEEDED);

  auto spec = Cluster::LongSpec(300);
  std::string running;
  ASSERT_TRUE(cluster.Submit(spec, &running).ok());
  cluster.WaitFor(running, [](const v1::Job& job) { return job.step() >= 2; });
  cluster.KillServer(SIGKILL);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  cluster.StartServer({"--max-steps", "1000"});

  EXPECT_EQ(cluster.Get(running).state(), v1::RUNNING);  // its group kept it through the outage
  const auto after = cluster.Get(finished);
  EXPECT_EQ(after.state(), v1::SUCCEEDED);
  EXPECT_EQ(after.video_sha256(), before.video_sha256());
  const std::string path = cluster.dir() + "/finished.mp4";
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", finished, path), &output), 0) << output;
  EXPECT_EQ(Sha256OfFile(path), before.video_sha256());

  const auto done = cluster.WaitForEnd(running);
  EXPECT_EQ(done.state(), v1::SUCCEEDED) << done.message();
  EXPECT_EQ(done.attempts(), 1);  // the same lease carried on across the restart
  // The group registered again with the new server.
  v1::ListModelsResponse models;
  ASSERT_TRUE(cluster.Client()->ListModels(Cluster::Context().get(), {}, &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).worker_groups(), 1);
}

TEST(ServiceTest, ConcurrentSubmitsAreEachAccountedForOnce) {
  Cluster cluster;
  cluster.StartServer();
  constexpr int kClients = 20, kEach = 10;
  std::mutex mutex;
  std::map<std::string, std::string> id_of_key;  // idempotency key -> job id
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = fmt::format("client{}-job{}", c, i);
        v1::SubmitJobRequest request;
        *request.mutable_spec() = Cluster::SmallSpec();
        request.mutable_spec()->set_seed(c * 100 + i);
        request.set_idempotency_key(key);
        // Each submit is sent twice, as a client retrying after a lost reply would.
        std::string ids[2];
        for (auto& id : ids) {
          v1::SubmitJobResponse response;
          if (!cluster.Client()->SubmitJob(Cluster::Context().get(), request, &response).ok()) ++failures;
          id = response.job_id();
        }
        if (ids[0] != ids[1]) ++failures;
        std::lock_guard lock(mutex);
        id_of_key[key] = ids[0];
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(failures, 0);
  std::set<std::string> submitted;
  for (const auto& [key, id] : id_of_key) submitted.insert(id);
  EXPECT_EQ(submitted.size(), static_cast<std::size_t>(kClients * kEach));

  std::set<std::string> listed;
  std::set<int> positions;
  v1::ListJobsRequest request;
  request.set_page_size(37);
  do {
    v1::ListJobsResponse page;
    ASSERT_TRUE(cluster.Client()->ListJobs(Cluster::Context().get(), request, &page).ok());
    for (const auto& job : page.jobs()) {
      EXPECT_TRUE(listed.insert(job.id()).second) << "listed twice: " << job.id();
      positions.insert(job.queue_position());
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  EXPECT_EQ(listed, submitted);
  EXPECT_EQ(positions.size(), submitted.size());  // 1..200, each once
  EXPECT_EQ(*positions.begin(), 1);
  EXPECT_EQ(*positions.rbegin(), kClients * kEach);
}

TEST(ServiceTest, BadRequestsGetTheRightCodeAndNameTheProblem) {
  Cluster cluster;
  // Limits from a config file, as an operator would set them.
  std::ofstream(cluster.dir() + "/server.toml") << "max-prompt-bytes=100\nmax-queue=3\nmax-request-mib=1\n";
  cluster.StartServer({"--config", cluster.dir() + "/server.toml"});
  struct Case {
    std::string name;
    std::function<void(v1::JobSpec&)> mutate;
    grpc::StatusCode code;
    std::string mentions;
  };
  std::vector<Case> cases = {
      {"width", [](auto& s) { s.set_width(100); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.width"},
      {"height", [](auto& s) { s.set_height(-16); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.height"},
      {"frames", [](auto& s) { s.set_frames(10); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.frames"},
      {"size", [](auto& s) { s.set_width(2048), s.set_height(2048), s.set_frames(257); },
       grpc::StatusCode::INVALID_ARGUMENT, "exceeds"},
      {"steps", [](auto& s) { s.set_steps(100000); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.steps"},
      {"guidance", [](auto& s) { s.set_guidance(-1); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.guidance"},
      {"shift", [](auto& s) { s.set_shift(-2); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.shift"},
      {"seed", [](auto& s) { s.set_seed(-5); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.seed"},
      {"solver", [](auto& s) { s.set_solver("rk4"); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.solver"},
      {"cache", [](auto& s) { s.mutable_cache()->set_preset("magic"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.cache.preset"},
      {"order", [](auto& s) { s.mutable_cache()->set_order(9); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.cache.order"},
      // Values the worker's cache would refuse after a lease are refused here, at submit.
      {"warmup 0",
       [](auto& s) {
         s.mutable_cache()->set_preset("taylorseer-wan");
         s.mutable_cache()->set_warmup(0);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.cache.warmup"},
      {"interval 0",
       [](auto& s) {
         s.mutable_cache()->set_preset("taylorseer-wan");
         s.mutable_cache()->set_interval(0);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.cache.interval"},
      {"guidance cache",
       [](auto& s) {
         s.mutable_cache()->set_preset("fora");
         s.mutable_cache()->set_guidance("both");
       },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.cache.guidance"},
      {"tail -1",
       [](auto& s) {
         s.mutable_cache()->set_preset("fora");
         s.mutable_cache()->set_tail(-1);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "spec.cache.tail"},
      {"codec", [](auto& s) { s.mutable_output()->set_codec("vp9"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.output.codec"},
      {"container", [](auto& s) { s.mutable_output()->set_container("avi"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.output.container"},
      {"fps", [](auto& s) { s.mutable_output()->set_fps(1000); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.output.fps"},
      {"parallel", [](auto& s) { s.mutable_parallel()->set_ulysses(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "spec.parallel.ulysses"},
      {"empty prompt", [](auto& s) { s.set_prompt(""); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.prompt"},
      {"oversize prompt", [](auto& s) { s.set_prompt(std::string(101, 'a')); }, grpc::StatusCode::INVALID_ARGUMENT,
       "101 bytes"},
      {"no model", [](auto& s) { s.set_model(""); }, grpc::StatusCode::INVALID_ARGUMENT, "spec.model"},
      {"unknown model", [](auto& s) { s.set_model("sora"); }, grpc::StatusCode::NOT_FOUND, "'sora'"},
  };
  cases.push_back({"oversize request", [](auto& s) { s.set_negative_prompt(std::string(2 << 20, 'a')); },
                   grpc::StatusCode::RESOURCE_EXHAUSTED, "larger than max"});
  for (const auto& c : cases) {
    auto spec = Cluster::SmallSpec();
    c.mutate(spec);
    const auto status = cluster.Submit(spec, nullptr);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(c.mentions), std::string::npos) << c.name << ": " << status.error_message();
  }

  std::string id;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &id).ok());
  v1::GetJobRequest get;
  get.set_job_id(id);
  v1::Job job;
  // Another tenant's job does not exist for it; a missing or unknown key is UNAUTHENTICATED.
  EXPECT_EQ(cluster.Client()->GetJob(Cluster::Context(Cluster::kZetaKey).get(), get, &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(cluster.Client()->GetJob(Cluster::Context("").get(), get, &job).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(cluster.Client()->GetJob(Cluster::Context("not-a-key").get(), get, &job).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The worker token is not an API key, and an API key does not open the worker service.
  EXPECT_EQ(cluster.Client()->GetJob(Cluster::Context(cluster.worker_token()).get(), get, &job).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::RegisterGroupRequest group;
  group.add_models()->set_name("x");
  v1::RegisterGroupResponse registered;
  EXPECT_EQ(cluster.WorkerClient()->RegisterGroup(Cluster::Context().get(), group, &registered).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // No video yet; a missing job id.
  v1::DownloadVideoRequest download;
  download.set_job_id(id);
  auto context = Cluster::Context();
  auto reader = cluster.Client()->DownloadVideo(context.get(), download);
  v1::VideoChunk chunk;
  while (reader->Read(&chunk)) {
  }
  const auto status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  get.set_job_id("");
  EXPECT_EQ(cluster.Client()->GetJob(Cluster::Context().get(), get, &job).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The queue holds 3: the fourth is refused with a hint to retry.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), nullptr).ok());
  v1::SubmitJobRequest full;
  *full.mutable_spec() = Cluster::SmallSpec();
  v1::SubmitJobResponse response;
  auto full_context = Cluster::Context();
  const auto refused = cluster.Client()->SubmitJob(full_context.get(), full, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("retry"), std::string::npos);
  EXPECT_EQ(full_context->GetServerTrailingMetadata().count("retry-after-seconds"), 1u);

  // And the server keeps serving.
  get.set_job_id(id);
  EXPECT_TRUE(cluster.Client()->GetJob(Cluster::Context().get(), get, &job).ok());
}

TEST(ServiceTest, ACutDownloadResumesToTheSameBytes) {
  Cluster cluster;
  cluster.StartServer();
  cluster.StartWorker(1);
  std::string id;
  auto spec = Cluster::SmallSpec();
  spec.set_frames(17);
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  const auto job = cluster.WaitForEnd(id);
  ASSERT_EQ(job.state(), v1::SUCCEEDED);
  ASSERT_GT(job.video_bytes(), 100);

  // Half the video, then the connection drops.
  const std::string out = cluster.dir() + "/resumed.mp4";
  {
    v1::DownloadVideoRequest request;
    request.set_job_id(id);
    request.set_chunk_bytes(static_cast<int>(job.video_bytes() / 2));
    auto context = Cluster::Context();
    auto reader = cluster.Client()->DownloadVideo(context.get(), request);
    v1::VideoChunk chunk;
    ASSERT_TRUE(reader->Read(&chunk));
    std::ofstream(out + ".part", std::ios::binary) << chunk.data();
    context->TryCancel();
    reader->Finish();
  }
  ASSERT_EQ(static_cast<std::int64_t>(std::filesystem::file_size(out + ".part")), job.video_bytes() / 2);
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", id, out), &output), 0) << output;
  EXPECT_EQ(Sha256OfFile(out), job.video_sha256());
  EXPECT_FALSE(std::filesystem::exists(out + ".part"));

  // A partial file that is not a prefix of the video is caught by the checksum and removed.
  const std::string bad = cluster.dir() + "/bad.mp4";
  std::ofstream(bad + ".part", std::ios::binary) << std::string(10, 'x');
  EXPECT_NE(cluster.RunClient(fmt::format("download {} --out {}", id, bad), &output), 0);
  EXPECT_NE(output.find("SHA-256"), std::string::npos) << output;
  EXPECT_FALSE(std::filesystem::exists(bad));
  EXPECT_FALSE(std::filesystem::exists(bad + ".part"));
}

}  // namespace
}  // namespace vidgen::testing

namespace vidgen::testing {
namespace {

TEST(ServiceTest, AJobThatFailsInTheWorkerFailsWithItsReasonAndTheGroupServesOn) {
  Cluster cluster;
  cluster.StartServer();
  cluster.StartWorker(2);
  cluster.WaitForGroups(Cluster::kModel, 1);
  // The group's work folder turns into a file: the job runs, but its video cannot be written.
  const std::filesystem::path work = cluster.dir() + "/worker0";
  std::filesystem::remove_all(work);
  std::ofstream(work) << "not a folder";
  std::string refused, next;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &refused).ok());
  const auto failed = cluster.WaitForEnd(refused);
  EXPECT_EQ(failed.state(), v1::FAILED);
  EXPECT_NE(failed.message().find(work.string()), std::string::npos) << failed.message();
  EXPECT_EQ(failed.attempts(), 1);  // not retried: it would fail again
  std::filesystem::remove(work);
  std::filesystem::create_directories(work);
  // A calibrated guidance cache on a model without a calibration: the job fails naming the file to make.
  auto calibrated = Cluster::SmallSpec();
  calibrated.mutable_cache()->set_preset("taylorseer-cfg-calibrated");
  std::string uncalibrated;
  ASSERT_TRUE(cluster.Submit(calibrated, &uncalibrated).ok());
  const auto no_calibration = cluster.WaitForEnd(uncalibrated);
  EXPECT_EQ(no_calibration.state(), v1::FAILED);
  EXPECT_NE(no_calibration.message().find("vidgen_cache_calibration.json"), std::string::npos)
      << no_calibration.message();
  // The group serves on, with the guidance difference reused (uncalibrated, set field by field).
  auto reused = Cluster::SmallSpec();
  reused.mutable_cache()->set_preset("taylorseer-wan");
  reused.mutable_cache()->set_interval(2);
  reused.mutable_cache()->set_guidance("reuse-difference");
  ASSERT_TRUE(cluster.Submit(reused, &next).ok());
  EXPECT_EQ(cluster.WaitForEnd(next).state(), v1::SUCCEEDED);
}

TEST(ServiceTest, TlsAndTheHealthService) {
  Cluster cluster;
  cluster.EnableTls();
  cluster.StartServer();
  cluster.StartWorker(1);
  std::string output;
  const std::string out = cluster.dir() + "/tls.mp4";
  ASSERT_EQ(cluster.RunClient(fmt::format("submit --model {} --prompt 'a boat' --size 64x64 --frames 5 --steps 3 "
                                          "--wait --out {}",
                                          Cluster::kModel, out),
                              &output),
            0)
      << output;
  EXPECT_EQ(Probe(out)["nb_read_frames"], "5");

  auto health = grpc::health::v1::Health::NewStub(rpc::MakeChannel(cluster.address(), cluster.dir() + "/tls.pem"));
  for (const char* service : {"", "vidgen.v1.VideoService", "vidgen.v1.WorkerService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  // Plaintext does not get through.
  auto plain = v1::VideoService::NewStub(rpc::MakeChannel(cluster.address()));
  v1::ListModelsResponse models;
  auto context = Cluster::Context();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(plain->ListModels(context.get(), {}, &models).ok());
}

}  // namespace
}  // namespace vidgen::testing

namespace vidgen::testing {
namespace {

TEST(ServiceTest, AHunyuanVideoJobRunsEndToEnd) {
  Cluster cluster;
  const auto cases = GoldenCases("hunyuan_pipeline");  // a whole tiny HunyuanVideo checkpoint
  ASSERT_FALSE(cases.empty());
  const auto checkpoint = GoldenCase(cases.front()).CheckpointDir();
  cluster.StartServer({"--model", "hunyuan-tiny:hunyuanvideo"});
  cluster.StartWorker(2, {}, checkpoint.string(), "hunyuan-tiny");
  v1::JobSpec spec;
  spec.set_model("hunyuan-tiny");
  spec.set_prompt("the red ball");
  spec.set_width(48);
  spec.set_height(32);
  spec.set_frames(9);
  spec.set_steps(4);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  // The family's defaults were filled in: embedded guidance 6, shift 7, Euler.
  const auto queued = cluster.Get(id);
  EXPECT_EQ(queued.spec().guidance(), 6.0);
  EXPECT_EQ(queued.spec().shift(), 7.0);
  EXPECT_EQ(queued.spec().solver(), "euler");
  const auto done = cluster.WaitForEnd(id);
  ASSERT_EQ(done.state(), v1::SUCCEEDED) << done.message();
  const std::string out = cluster.dir() + "/hunyuan.mp4";
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", id, out), &output), 0) << output;
  auto probe = Probe(out);
  EXPECT_EQ(probe["width"], "48");
  EXPECT_EQ(probe["height"], "32");
  EXPECT_EQ(probe["nb_read_frames"], "9");
  v1::ListModelsResponse models;
  ASSERT_TRUE(cluster.Client()->ListModels(Cluster::Context().get(), {}, &models).ok());
  const auto served = std::find_if(models.models().begin(), models.models().end(),
                                   [](const v1::Model& model) { return model.name() == "hunyuan-tiny"; });
  ASSERT_NE(served, models.models().end());
  EXPECT_EQ(served->family(), "hunyuanvideo");
  EXPECT_EQ(served->worker_groups(), 1);
  EXPECT_EQ(served->max_world_size(), 2);
}

}  // namespace
}  // namespace vidgen::testing

namespace vidgen::testing {
namespace {

// The demo checkpoint declares its own defaults (config.json "vidgen_defaults"): a job that names only the model
// and the prompt is made at the 32×32, 17 frames the model was trained at, with its empty negative prompt.
TEST(ServiceTest, AModelsOwnDefaultsFillTheFieldsAJobLeavesUnset) {
  Cluster cluster;
  cluster.StartServer();
  cluster.StartWorker(1, {}, VIDGEN_DEMO_MODEL, "wan2.1-demo");
  v1::ListModelsResponse models;
  const auto served = [&] {
    for (int i = 0; i < 600; ++i) {
      EXPECT_TRUE(cluster.Client()->ListModels(Cluster::Context().get(), {}, &models).ok());
      for (const auto& model : models.models()) {
        if (model.name() == "wan2.1-demo") return model;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return v1::Model();
  }();
  ASSERT_EQ(served.name(), "wan2.1-demo") << "the worker never registered";
  EXPECT_EQ(served.defaults().width(), 32);
  EXPECT_EQ(served.defaults().frames(), 17);
  v1::JobSpec spec;
  spec.set_model("wan2.1-demo");
  spec.set_prompt("a green square moving up on a black background");
  spec.set_steps(4);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  const auto queued = cluster.Get(id);
  EXPECT_EQ(queued.spec().width(), 32);
  EXPECT_EQ(queued.spec().height(), 32);
  EXPECT_EQ(queued.spec().frames(), 17);
  EXPECT_EQ(queued.spec().negative_prompt(), " ");
  EXPECT_EQ(queued.spec().guidance(), 5.0);  // the family's, where the model declares none
  const auto done = cluster.WaitForEnd(id);
  ASSERT_EQ(done.state(), v1::SUCCEEDED) << done.message();
  const std::string out = cluster.dir() + "/demo.mp4";
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", id, out), &output), 0) << output;
  auto probe = Probe(out);
  EXPECT_EQ(probe["width"], "32");
  EXPECT_EQ(probe["nb_read_frames"], "17");
}

}  // namespace
}  // namespace vidgen::testing
