// The worker group's loop in process: the real demo pipeline and video encoder, a fake job source in place of the
// server and an in-memory consensus in place of the rendezvous store, so that leases, progress, cancel, a lost
// lease, a bad spec and a broken group can each be driven to the state they must end in.
#include "worker/group.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/families.h"
#include "models/lora/adapter.h"
#include "proto/spec_proto.h"
#include "tests/support/expect_error.h"
#include "worker/job.h"

namespace vidgen::worker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The server as the leader sees it: leases to hand out, and everything reported back, recorded.
class FakeSource final : public JobSource {
 public:
  // Called for each heartbeat (from the reporter's thread); its reply is the server's.
  std::function<v1::HeartbeatResponse(const v1::HeartbeatRequest&)> reply;

  void Add(const spec::JobRequest& job, const std::string& id) {
    v1::LeaseJobResponse lease;
    lease.set_job_id(id);
    lease.set_lease_id("lease-" + id);
    lease.set_attempt(1);
    *lease.mutable_spec() = rpc::ToProto(job);
    leases_.push_back(lease);
  }

  std::optional<v1::LeaseJobResponse> Lease(std::chrono::milliseconds) override {
    if (leases_.empty()) return std::nullopt;
    auto lease = leases_.front();
    leases_.pop_front();
    return lease;
  }
  v1::HeartbeatResponse Heartbeat(v1::HeartbeatRequest request) override {
    std::lock_guard lock(mutex_);
    stages_.push_back(request.stage());
    return reply ? reply(request) : v1::HeartbeatResponse();
  }
  std::chrono::milliseconds heartbeat_period() const override { return 50ms; }
  void Upload(const std::string& job_id, const std::string& lease_id, const std::string& path,
              const std::string& mime_type) override {
    std::ifstream in(path, std::ios::binary);
    uploads.push_back({job_id, lease_id, mime_type, std::string(std::istreambuf_iterator<char>(in), {})});
  }
  void Complete(const v1::CompleteJobRequest& request) override { completed.push_back(request); }
  void Fail(const v1::FailJobRequest& request) override { failed.push_back(request); }

  std::vector<std::string> stages() {
    std::lock_guard lock(mutex_);
    return stages_;
  }

  struct Uploaded {
    std::string job_id, lease_id, mime_type, bytes;
  };
  std::vector<Uploaded> uploads;
  std::vector<v1::CompleteJobRequest> completed;
  std::vector<v1::FailJobRequest> failed;

 private:
  std::deque<v1::LeaseJobResponse> leases_;
  std::mutex mutex_;
  std::vector<std::string> stages_;
};

// The rendezvous store's semantics in memory, one view per rank, and the group's decisions in the order made.
struct MemoryStore {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, std::string> values;
  std::vector<bool> decisions;
};

class MemoryConsensus final : public Consensus {
 public:
  MemoryConsensus(MemoryStore& store, int rank, int size = 2) : store_(store), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void Publish(const std::string& key, const std::string& value) override {
    {
      std::lock_guard lock(store_.mutex);
      store_.values[key] = value;
    }
    store_.changed.notify_all();
  }
  std::optional<std::string> Await(const std::string& key, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(store_.mutex);
    if (!store_.changed.wait_for(lock, timeout, [&] { return store_.values.contains(key); })) return std::nullopt;
    return store_.values.at(key);
  }
  void Forget(const std::string& key) override {
    std::lock_guard lock(store_.mutex);
    store_.values.erase(key);
  }
  // Rank 0 appends its decisions; a rank reads them in order, waiting for the next as a broadcast would.
  bool Decide(bool value) override {
    std::unique_lock lock(store_.mutex);
    const std::size_t index = decided_++;
    if (rank_ == 0) {
      store_.decisions.push_back(value);
      store_.changed.notify_all();
      return value;
    }
    if (!store_.changed.wait_for(lock, 60s, [&] { return store_.decisions.size() > index; })) {
      Fail(ErrorCode::kUnavailable, "broadcast timed out");
    }
    return store_.decisions[index];
  }

 private:
  MemoryStore& store_;
  int rank_, size_;
  std::size_t decided_ = 0;
};

// The demo pipeline, counting the steps this rank ran and, when asked, holding the run after a step until a
// condition holds (so that a heartbeat is sure to arrive mid-run).
class ProbedPipeline final : public VideoPipeline {
 public:
  explicit ProbedPipeline(std::function<void(int step)> after_step = nullptr)
      : inner_(LoadPipeline(VIDGEN_DEMO_MODEL, spec::Family::kWan, FamilyOptions<PipelineOptions>({}))),
        after_step_(std::move(after_step)) {}

  GenerationResult Generate(const GenerationRequest& request, const GenerationCallbacks& callbacks) override {
    GenerationCallbacks probed = callbacks;
    probed.cancelled = [&] {
      const bool stop = callbacks.cancelled && callbacks.cancelled();
      if (!stop) ++*steps_run_;
      return stop;
    };
    probed.on_step = [&](const StepProgress& progress) {
      if (callbacks.on_step) callbacks.on_step(progress);
      if (after_step_) after_step_(progress.step);
    };
    return inner_->Generate(request, probed);
  }
  std::int64_t side_multiple() const override { return inner_->side_multiple(); }
  cache::CacheFootprint TokenFootprint() const override { return inner_->TokenFootprint(); }
  std::vector<at::Tensor> weights() const override { return inner_->weights(); }
  lora::Adapter ReadLora(const std::string& path) override { return inner_->ReadLora(path); }
  void KeepLoraSets(std::size_t sets) override { inner_->KeepLoraSets(sets); }
  std::shared_ptr<std::atomic<int>> steps_run() const { return steps_run_; }

 private:
  std::unique_ptr<VideoPipeline> inner_;
  std::function<void(int)> after_step_;
  std::shared_ptr<std::atomic<int>> steps_run_ = std::make_shared<std::atomic<int>>(0);
};

spec::JobRequest DemoJob(int steps) {
  spec::JobRequest job;
  job.model = "demo";
  job.prompt = "a yellow circle moving right on a dark green background";
  job.steps = steps;
  spec::ModelInfo model;
  model.name = "demo";
  model.defaults = ReadCheckpointDefaults(VIDGEN_DEMO_MODEL);  // its trained size and frames
  spec::Normalize(job, model, spec::Limits{});
  return job;
}

// The server's news for a job, given once a heartbeat reports `step`; `sent()` waits (bounded: a test of a loop
// must fail, not hang, when the loop is wrong) until it has gone out.
class News {
 public:
  News(int step, std::function<void(v1::HeartbeatResponse&)> set) : step_(step), set_(std::move(set)) {}

  v1::HeartbeatResponse Reply(const v1::HeartbeatRequest& request) {
    v1::HeartbeatResponse response;
    if (request.step() < step_) return response;
    set_(response);
    {
      std::lock_guard lock(mutex_);
      sent_ = true;
    }
    changed_.notify_all();
    return response;
  }
  bool sent() {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 60s, [&] { return sent_; });
  }
  // For a ProbedPipeline: holds the run after step `step` until the news has gone out.
  std::function<void(int)> HoldAfterItsStep() {
    return [this](int step) {
      if (step == step_) {
        EXPECT_TRUE(sent()) << "no heartbeat reported step " << step_;
      }
    };
  }

 private:
  const int step_;
  const std::function<void(v1::HeartbeatResponse&)> set_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool sent_ = false;
};

class GroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(2);
    work_dir_ = fs::temp_directory_path() / ("vidgen-group-test-" + std::to_string(::getpid()));
    fs::create_directories(work_dir_);
  }
  void TearDown() override { fs::remove_all(work_dir_); }
  GroupOptions Options() const { return {.work_dir = work_dir_.string(), .frames_dir = {}, .lora_dir = {}}; }
  fs::path work_dir_;
};

// A leader and a follower over one in-memory store, each on a probed demo pipeline; the leader's holds after its
// steps as `hold` says.
struct TwoRanks {
  TwoRanks(std::function<void(int)> hold, const GroupOptions& options)
      : TwoRanks(std::make_unique<ProbedPipeline>(std::move(hold)), std::make_unique<ProbedPipeline>(), options) {}

  MemoryStore store;
  MemoryConsensus rank0{store, 0}, rank1{store, 1};
  std::shared_ptr<std::atomic<int>> leader_steps, follower_steps;
  Group leader, follower;

 private:
  TwoRanks(std::unique_ptr<ProbedPipeline> leading, std::unique_ptr<ProbedPipeline> following,
           const GroupOptions& options)
      : leader_steps(leading->steps_run()),
        follower_steps(following->steps_run()),
        leader(std::move(leading), &rank0, options),
        follower(std::move(following), &rank1, options) {}
};

TEST_F(GroupTest, ALeaderAloneTakesAJobToItsEnd) {
  FakeSource source;
  source.Add(DemoJob(4), "job-1");
  Group group(std::make_unique<ProbedPipeline>(), nullptr, Options());
  ASSERT_TRUE(group.leader());
  ASSERT_TRUE(group.LeadOne(source, 0ms));

  ASSERT_TRUE(source.failed.empty()) << source.failed[0].message();
  ASSERT_EQ(source.completed.size(), 1u);
  EXPECT_EQ(source.completed[0].job_id(), "job-1");
  EXPECT_EQ(source.completed[0].lease_id(), "lease-job-1");
  EXPECT_EQ(source.completed[0].full_steps(), 4);
  ASSERT_EQ(source.uploads.size(), 1u);
  EXPECT_EQ(source.uploads[0].mime_type, "video/mp4");
  EXPECT_EQ(source.uploads[0].bytes.substr(4, 4), "ftyp");  // an MP4, encoded for real
  EXPECT_TRUE(fs::is_empty(work_dir_)) << "the encoded file stays behind";
  // The stages the server saw come in the job's order. The reporter sends the latest stage, so a brief one may be
  // passed over, never reordered.
  const std::vector<std::string> order = {"loading", "denoising", "decoding", "encoding_video", "uploading"};
  const auto stages = source.stages();
  ASSERT_FALSE(stages.empty());
  std::size_t last = 0;
  for (const auto& stage : stages) {
    const auto at = static_cast<std::size_t>(std::find(order.begin(), order.end(), stage) - order.begin());
    ASSERT_LT(at, order.size()) << "unknown stage " << stage;
    EXPECT_GE(at, last) << stage << " after " << order[last];
    last = at;
  }
  EXPECT_FALSE(group.LeadOne(source, 0ms)) << "no lease, no job";
}

TEST_F(GroupTest, ACancelStopsEveryRankAtTheSameStep) {
  News cancel(2, [](v1::HeartbeatResponse& response) { response.set_cancel(true); });
  FakeSource source;
  source.reply = [&](const v1::HeartbeatRequest& request) { return cancel.Reply(request); };
  source.Add(DemoJob(20), "job-1");
  // The leader holds after its second step until the server has said cancel.
  TwoRanks ranks(cancel.HoldAfterItsStep(), Options());
  Group &leader = ranks.leader, &follower = ranks.follower;
  const auto &leader_steps = ranks.leader_steps, &follower_steps = ranks.follower_steps;
  ASSERT_FALSE(follower.leader());

  bool followed = false;
  std::string follower_error;
  std::thread follower_thread([&] {
    try {
      followed = follower.FollowOne(60s);
    } catch (const Error& e) {
      follower_error = e.what();
    }
  });
  ASSERT_TRUE(leader.LeadOne(source, 0ms));
  follower_thread.join();

  EXPECT_TRUE(followed);
  EXPECT_EQ(follower_error, "");
  EXPECT_TRUE(source.completed.empty());
  ASSERT_EQ(source.failed.size(), 1u);
  EXPECT_TRUE(source.failed[0].cancelled());
  EXPECT_FALSE(source.failed[0].retryable());
  EXPECT_GE(leader_steps->load(), 2);
  EXPECT_LT(leader_steps->load(), 20);
  EXPECT_EQ(follower_steps->load(), leader_steps->load()) << "the ranks stopped at different steps";
  EXPECT_TRUE(source.uploads.empty());
}

// A job can end on the leader before a follower has even read it (the leader leased the next one right after a
// cancel): the follower must still find its jobs, and stop where the leader did.
TEST_F(GroupTest, AFollowerBehindTheLeaderStillFindsItsJobsAndStopsWhereItDid) {
  News cancel(1, [](v1::HeartbeatResponse& response) { response.set_cancel(true); });
  FakeSource source;
  source.reply = [&](const v1::HeartbeatRequest& request) {
    return request.job_id() == "job-1" ? cancel.Reply(request) : v1::HeartbeatResponse();
  };
  source.Add(DemoJob(20), "job-1");
  source.Add(DemoJob(2), "job-2");
  TwoRanks ranks(cancel.HoldAfterItsStep(), Options());
  Group &leader = ranks.leader, &follower = ranks.follower;
  const auto &leader_steps = ranks.leader_steps, &follower_steps = ranks.follower_steps;

  ASSERT_TRUE(leader.LeadOne(source, 0ms));  // cancelled
  const int cancelled_after = leader_steps->load();
  ASSERT_TRUE(leader.LeadOne(source, 0ms));  // the next job, with the follower still behind
  ASSERT_EQ(source.failed.size(), 1u);
  ASSERT_EQ(source.completed.size(), 1u);

  ASSERT_TRUE(follower.FollowOne(0ms));
  EXPECT_EQ(follower_steps->load(), cancelled_after) << "the follower did not stop where the leader did";
  ASSERT_TRUE(follower.FollowOne(0ms));
  EXPECT_EQ(follower_steps->load(), leader_steps->load());

  // Once followed, the jobs' keys go.
  EXPECT_FALSE(leader.LeadOne(source, 0ms));
  std::lock_guard lock(ranks.store.mutex);
  EXPECT_TRUE(ranks.store.values.empty())
      << ranks.store.values.size() << " keys left, the first " << ranks.store.values.begin()->first;
}

TEST_F(GroupTest, ALostLeaseDropsTheJobWithoutReports) {
  News lost(1, [](v1::HeartbeatResponse& response) { response.set_lease_lost(true); });
  FakeSource source;
  source.reply = [&](const v1::HeartbeatRequest& request) { return lost.Reply(request); };
  source.Add(DemoJob(10), "job-1");
  Group group(std::make_unique<ProbedPipeline>(lost.HoldAfterItsStep()), nullptr, Options());
  ASSERT_TRUE(group.LeadOne(source, 0ms));
  EXPECT_TRUE(source.completed.empty());
  EXPECT_TRUE(source.failed.empty()) << "another group holds the job now: this one must not report on it";
  EXPECT_TRUE(source.uploads.empty());
}

TEST_F(GroupTest, AJobThePipelineRefusesFailsForGoodAndTheGroupServesOn) {
  FakeSource source;
  auto bad = DemoJob(4);
  bad.width = 36;  // not a multiple of the demo model's 16
  source.Add(bad, "job-bad");
  source.Add(DemoJob(2), "job-good");
  Group group(std::make_unique<ProbedPipeline>(), nullptr, Options());
  ASSERT_TRUE(group.LeadOne(source, 0ms));
  ASSERT_EQ(source.failed.size(), 1u);
  EXPECT_EQ(source.failed[0].job_id(), "job-bad");
  EXPECT_FALSE(source.failed[0].retryable());
  EXPECT_FALSE(source.failed[0].cancelled());
  EXPECT_NE(source.failed[0].message().find("width"), std::string::npos) << source.failed[0].message();
  ASSERT_TRUE(group.LeadOne(source, 0ms));
  ASSERT_EQ(source.completed.size(), 1u);
  EXPECT_EQ(source.completed[0].job_id(), "job-good");
}

// A group that breaks after the job is published: the leader cannot tell the group its step decisions.
class BreakingConsensus final : public Consensus {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void Publish(const std::string&, const std::string&) override {}
  std::optional<std::string> Await(const std::string&, std::chrono::milliseconds) override { return std::nullopt; }
  void Forget(const std::string&) override {}
  bool Decide(bool) override { Fail(ErrorCode::kUnavailable, "broadcast failed: a peer left"); }
};

TEST_F(GroupTest, ABrokenGroupFailsTheJobAsRetryableAndStops) {
  FakeSource source;
  source.Add(DemoJob(4), "job-1");
  BreakingConsensus consensus;
  Group group(std::make_unique<ProbedPipeline>(), &consensus, Options());
  EXPECT_FAILS(group.LeadOne(source, 0ms), kUnavailable, "the worker group is broken");
  ASSERT_EQ(source.failed.size(), 1u);
  EXPECT_TRUE(source.failed[0].retryable()) << "another group can run it";
  EXPECT_NE(source.failed[0].message().find("a peer left"), std::string::npos);
  EXPECT_TRUE(source.completed.empty());
}

TEST_F(GroupTest, AFollowerWithoutAJobWaitsAndReturns) {
  MemoryStore store;
  MemoryConsensus rank1(store, 1);
  Group follower(std::make_unique<ProbedPipeline>(), &rank1, Options());
  EXPECT_FALSE(follower.FollowOne(0ms));
  rank1.Publish("job/0", "not a job spec \xff");
  EXPECT_FAILS(follower.FollowOne(0ms), kUnavailable, "does not parse");
}

}  // namespace
}  // namespace vidgen::worker
