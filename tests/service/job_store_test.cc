// The job store on its own: durability across reopen, priorities, tenants, leases and their expiry (on a manual
// clock), the state machine's edges, idempotency, paging, the WAL's size, replaced videos.
#include "server/job_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "common/error.h"
#include "server/streams.h"
#include "tests/support/expect_error.h"

namespace vidgen::server {
namespace {

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("vidgen-store-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<JobStore> Open(StoreLimits limits = {}) {
    return std::make_unique<JobStore>((dir_ / "jobs.db").string(), limits, clock_);
  }
  // A submit as the server makes it: the spec as sent and as normalized alike.
  static SubmitRequest Job(const std::string& tenant, const v1::JobSpec& spec, int priority = 0,
                           const std::string& key = "") {
    return {tenant, spec, spec.SerializeAsString(), priority, key};
  }
  static v1::JobSpec Spec(const std::string& prompt, const std::string& model = "wan") {
    v1::JobSpec spec;
    spec.set_model(model);
    spec.set_prompt(prompt);
    spec.set_steps(10);
    return spec;
  }

  std::filesystem::path dir_;
  ManualClock clock_;
};

TEST_F(JobStoreTest, WhatWasAcknowledgedSurvivesReopening) {
  std::string id;
  {
    auto store = Open();
    id = store->Submit(Job("acme", Spec("a cat"), 3, "key-1")).job_id;
  }
  auto store = Open();
  const auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.spec().prompt(), "a cat");
  EXPECT_EQ(job.priority(), 3);
  EXPECT_EQ(job.queue_position(), 1);
  // The idempotency key is durable too.
  EXPECT_EQ(store->Submit(Job("acme", Spec("a cat"), 3, "key-1")).job_id, id);
}

TEST_F(JobStoreTest, IdempotencyKeysAreScopedToTenantsAndRequests) {
  auto store = Open();
  const auto first = store->Submit(Job("acme", Spec("a cat"), 0, "k"));
  EXPECT_FALSE(first.existing);
  const auto again = store->Submit(Job("acme", Spec("a cat"), 0, "k"));
  EXPECT_TRUE(again.existing);
  EXPECT_EQ(again.job_id, first.job_id);
  EXPECT_NE(store->Submit(Job("zeta", Spec("a cat"), 0, "k")).job_id, first.job_id);
  EXPECT_FAILS(store->Submit(Job("acme", Spec("a dog"), 0, "k")), kAlreadyExists, "different request");
  // Another priority is another request, said so.
  EXPECT_FAILS(store->Submit(Job("acme", Spec("a cat"), 5, "k")), kAlreadyExists, "at priority 0, not 5");
}

TEST_F(JobStoreTest, TenantsSeeOnlyTheirJobs) {
  auto store = Open();
  const auto id = store->Submit(Job("acme", Spec("a cat"), 0, "")).job_id;
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { store->Get("zeta", id); }, [&] { store->Cancel("zeta", id); }, [&] { store->Artifact("zeta", id); }}) {
    EXPECT_TRUE(testing::FailsWith(call, ErrorCode::kNotFound, "not found"));
  }
  EXPECT_EQ(store->List("zeta", {}).jobs_size(), 0);
  EXPECT_EQ(store->List("acme", {}).jobs_size(), 1);
}

TEST_F(JobStoreTest, LeasesFollowPriorityThenAgeAndTheGroupsModels) {
  auto store = Open();
  const auto low = store->Submit(Job("acme", Spec("low"), 0, "")).job_id;
  const auto high = store->Submit(Job("acme", Spec("high"), 9, "")).job_id;
  const auto other = store->Submit(Job("acme", Spec("other", "hunyuan"), 50, "")).job_id;
  const auto low2 = store->Submit(Job("acme", Spec("low2"), 0, "")).job_id;
  EXPECT_EQ(store->Get("acme", other).queue_position(), 1);
  EXPECT_EQ(store->Get("acme", low2).queue_position(), 4);
  std::vector<std::string> order;
  while (auto lease = store->LeaseNext("g", {"wan"})) order.push_back(lease->job_id);
  EXPECT_EQ(order, (std::vector<std::string>{high, low, low2}));
  EXPECT_EQ(store->Get("acme", other).state(), v1::QUEUED);
  EXPECT_EQ(store->Get("acme", low).state(), v1::RUNNING);
}

TEST_F(JobStoreTest, LapsedLeasesRequeueThenFail) {
  StoreLimits limits;
  limits.lease = std::chrono::milliseconds(50);
  limits.max_attempts = 2;
  auto store = Open(limits);
  const auto id = store->Submit(Job("acme", Spec("a cat"), 0, "")).job_id;
  auto lease = store->LeaseNext("g", {"wan"});
  ASSERT_TRUE(lease);
  clock_.Advance(std::chrono::milliseconds(80));
  EXPECT_EQ(store->ExpireLeases(), 1);
  EXPECT_EQ(store->Get("acme", id).state(), v1::QUEUED);
  // The old lease is void: its heartbeat says so and it cannot attach a video.
  v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_lease_id(lease->lease_id);
  beat.set_stage("denoising");
  EXPECT_TRUE(store->Heartbeat(beat).lease_lost());
  EXPECT_FAILS(store->AttachArtifact(id, lease->lease_id, {"/x", "00", "video/mp4", 1}), kFailedPrecondition,
               "not leased");
  lease = store->LeaseNext("g", {"wan"});
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->attempt, 2);
  clock_.Advance(std::chrono::milliseconds(80));
  store->ExpireLeases();
  const auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_NE(job.message().find("2 times"), std::string::npos) << job.message();
}

TEST_F(JobStoreTest, HeartbeatsKeepALeaseAndCarryCancel) {
  StoreLimits limits;
  limits.lease = std::chrono::milliseconds(100);
  auto store = Open(limits);
  const auto id = store->Submit(Job("acme", Spec("a cat"), 0, "")).job_id;
  const auto lease = store->LeaseNext("g", {"wan"});
  v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_lease_id(lease->lease_id);
  beat.set_stage("denoising");
  beat.set_total_steps(10);
  for (int i = 0; i < 5; ++i) {
    beat.set_step(i + 1);
    EXPECT_FALSE(store->Heartbeat(beat).cancel());
    clock_.Advance(std::chrono::milliseconds(50));
    EXPECT_EQ(store->ExpireLeases(), 0);
  }
  EXPECT_EQ(store->Get("acme", id).step(), 5);
  EXPECT_EQ(store->Cancel("acme", id).state(), v1::RUNNING);  // flagged: the group stops it
  EXPECT_TRUE(store->Heartbeat(beat).cancel());
  v1::FailJobRequest stopped;
  stopped.set_job_id(id);
  stopped.set_lease_id(lease->lease_id);
  stopped.set_cancelled(true);
  store->Fail(stopped);
  EXPECT_EQ(store->Get("acme", id).state(), v1::CANCELLED);
  EXPECT_FAILS(store->Cancel("acme", id), kFailedPrecondition, "already ended (CANCELLED)");
}

TEST_F(JobStoreTest, CompletionNeedsTheVideoAndTheLease) {
  auto store = Open();
  const auto id = store->Submit(Job("acme", Spec("a cat"), 0, "")).job_id;
  const auto lease = store->LeaseNext("g", {"wan"});
  v1::CompleteJobRequest done;
  done.set_job_id(id);
  done.set_lease_id(lease->lease_id);
  EXPECT_FAILS(store->Complete(done), kFailedPrecondition, "with its video uploaded");  // no video yet
  store->AttachArtifact(id, lease->lease_id, {"/videos/a.mp4", "abc", "video/mp4", 42});
  store->Complete(done);
  const auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.video_bytes(), 42);
  EXPECT_EQ(store->Artifact("acme", id).path, "/videos/a.mp4");
  // Retention forgets the video but not the job.
  EXPECT_EQ(store->ExpireArtifacts(clock_.NowMs() + 1), std::vector<std::string>{"/videos/a.mp4"});
  EXPECT_FAILS(store->Artifact("acme", id), kNotFound, "expired");
  EXPECT_EQ(store->Get("acme", id).state(), v1::SUCCEEDED);
}

TEST_F(JobStoreTest, RetryableFailuresRequeueWhileAttemptsRemain) {
  StoreLimits limits;
  limits.max_attempts = 2;
  auto store = Open(limits);
  const auto id = store->Submit(Job("acme", Spec("a cat"), 0, "")).job_id;
  for (const auto expected : {v1::QUEUED, v1::FAILED}) {
    const auto lease = store->LeaseNext("g", {"wan"});
    ASSERT_TRUE(lease);
    v1::FailJobRequest failure;
    failure.set_job_id(id);
    failure.set_lease_id(lease->lease_id);
    failure.set_retryable(true);
    failure.set_message("group broke");
    store->Fail(failure);
    EXPECT_EQ(store->Get("acme", id).state(), expected);
  }
}

TEST_F(JobStoreTest, AFullQueueRefusesAndPagesCoverEveryJobOnce) {
  StoreLimits limits;
  limits.max_queued = 7;
  auto store = Open(limits);
  std::set<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.insert(store->Submit(Job("acme", Spec(fmt::format("prompt {}", i)), 0, "")).job_id);
  EXPECT_FAILS(store->Submit(Job("acme", Spec("one too many"))), kResourceExhausted, "retry");
  std::set<std::string> listed;
  v1::ListJobsRequest request;
  request.set_page_size(3);
  int pages = 0;
  do {
    const auto page = store->List("acme", request);
    for (const auto& job : page.jobs()) EXPECT_TRUE(listed.insert(job.id()).second);
    request.set_page_token(page.next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_EQ(listed, ids);
  EXPECT_EQ(pages, 3);
  request.set_page_token("garbage");
  EXPECT_FAILS(store->List("acme", request), kInvalidArgument, "page_token");
}

TEST_F(JobStoreTest, RequeuedJobsStartAfreshWhicheverWayTheyCameBack) {
  StoreLimits limits;
  limits.lease = std::chrono::milliseconds(100);
  auto store = Open(limits);
  const auto id = store->Submit(Job("acme", Spec("a cat"))).job_id;
  auto progress = [&](const JobLease& lease) {
    v1::HeartbeatRequest beat;
    beat.set_job_id(id);
    beat.set_lease_id(lease.lease_id);
    beat.set_stage("denoising");
    beat.set_step(7);
    beat.set_total_steps(10);
    beat.set_eta_seconds(3);
    store->Heartbeat(beat);
  };
  // Back through a retryable failure, then through a lapsed lease: both reset step and ETA.
  auto lease = store->LeaseNext("g", {"wan"});
  progress(*lease);
  v1::FailJobRequest failure;
  failure.set_job_id(id);
  failure.set_lease_id(lease->lease_id);
  failure.set_retryable(true);
  failure.set_message("rank 1 died");
  store->Fail(failure);
  auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.step(), 0);
  EXPECT_EQ(job.eta_seconds(), 0);
  EXPECT_EQ(job.stage(), "queued");
  EXPECT_EQ(job.message(), "requeued: rank 1 died");
  lease = store->LeaseNext("g", {"wan"});
  progress(*lease);
  clock_.Advance(std::chrono::milliseconds(150));
  EXPECT_EQ(store->ExpireLeases(), 1);
  job = store->Get("acme", id);
  EXPECT_EQ(job.step(), 0);
  EXPECT_EQ(job.eta_seconds(), 0);
  EXPECT_EQ(job.stage(), "queued");
}

TEST_F(JobStoreTest, TheStateMachineRefusesEdgesItDoesNotHave) {
  EXPECT_FAILS(RequireEdge(JobState::kQueued, Edge::kComplete), kInternal, "'complete' does not leave QUEUED");
  EXPECT_FAILS(RequireEdge(JobState::kSucceeded, Edge::kRequeue), kInternal, "does not leave SUCCEEDED");
  EXPECT_NO_THROW(RequireEdge(JobState::kRunning, Edge::kCancelRunning));
  for (const auto edge :
       {Edge::kLease, Edge::kCancelQueued, Edge::kComplete, Edge::kRequeue, Edge::kFail, Edge::kCancelRunning}) {
    const auto& rule = RuleOf(edge);
    EXPECT_FALSE(rule.from.empty()) << rule.name;
    for (const auto from : rule.from) EXPECT_FALSE(Terminal(from)) << rule.name << ": no edge leaves an end";
  }
}

TEST_F(JobStoreTest, ProgressThatIsNotProgressIsRefused) {
  auto store = Open();
  const auto id = store->Submit(Job("acme", Spec("a cat"))).job_id;
  const auto lease = store->LeaseNext("g", {"wan"});
  v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_lease_id(lease->lease_id);
  beat.set_stage("denoising");
  beat.set_total_steps(10);
  beat.set_eta_seconds(std::numeric_limits<double>::quiet_NaN());
  EXPECT_FAILS(store->Heartbeat(beat), kInvalidArgument, "eta_seconds nan is not a duration");
  beat.set_eta_seconds(1);
  beat.set_step(11);
  EXPECT_FAILS(store->Heartbeat(beat), kInvalidArgument, "step 11 of 10");
  beat.set_step(1);
  beat.set_stage("DROP TABLE jobs");
  EXPECT_FAILS(store->Heartbeat(beat), kInvalidArgument, "stage");
  beat.set_stage("denoising");
  EXPECT_FALSE(store->Heartbeat(beat).lease_lost());
}

// issue 14, item 12: a retry is compared with what the client sent, not with the spec after server-side defaults
// (which may have changed in between, when a group registered its model's own).
TEST_F(JobStoreTest, AnIdempotentRetryIsComparedWithWhatTheClientSent) {
  auto store = Open();
  const auto sent = Spec("a cat");
  auto before = sent, after = sent;
  before.set_width(832);  // the family's default
  after.set_width(32);    // the model's own, once its group registered
  const auto first = store->Submit({"acme", before, sent.SerializeAsString(), 0, "k"});
  const auto retry = store->Submit({"acme", after, sent.SerializeAsString(), 0, "k"});
  EXPECT_TRUE(retry.existing);
  EXPECT_EQ(retry.job_id, first.job_id);
}

// issue 14, item 10: a second upload on one lease (a retry after a lost reply) replaces the video, and the store
// hands back the replaced file so that no file is left without a row.
TEST_F(JobStoreTest, AReplacedVideoIsHandedBackForDeletion) {
  auto store = Open();
  const auto id = store->Submit(Job("acme", Spec("a cat"))).job_id;
  const auto lease = store->LeaseNext("g", {"wan"});
  EXPECT_EQ(store->AttachArtifact(id, lease->lease_id, {"/videos/a.mp4", "aa", "video/mp4", 1}), std::nullopt);
  EXPECT_EQ(store->AttachArtifact(id, lease->lease_id, {"/videos/b.mp4", "bb", "video/mp4", 1}),
            std::optional<std::string>("/videos/a.mp4"));
  EXPECT_FAILS(store->CheckLease(id, "lease-other"), kFailedPrecondition, "not leased");
  EXPECT_NO_THROW(store->CheckLease(id, lease->lease_id));
}

// issue 14, item 11: reads left open at COMMIT pinned the WAL (114 MB after 8,000 submits).
TEST_F(JobStoreTest, TheWalStaysBoundedUnderALongBurst) {
  StoreLimits limits;
  limits.max_queued = 100'000;
  auto store = Open(limits);
  for (int i = 0; i < 3000; ++i) {
    store->Submit(Job("acme", Spec(fmt::format("prompt {}", i)), i % 3, fmt::format("key-{}", i)));
    if (i % 10 == 0) store->Submit(Job("acme", Spec(fmt::format("prompt {}", i)), i % 3, fmt::format("key-{}", i)));
  }
  const auto wal = std::filesystem::file_size(dir_ / "jobs.db-wal");
  EXPECT_LT(wal, std::uintmax_t{8} << 20) << "the WAL grew to " << wal << " bytes";
}

// issue 14, item 8: a heartbeat wakes its own job's watchers only; a change of the queue wakes everyone.
TEST_F(JobStoreTest, ChangesWakeTheirOwnJobsWatchers) {
  auto store = Open();
  const auto a = store->Submit(Job("acme", Spec("a"))).job_id;
  const auto b = store->Submit(Job("acme", Spec("b"))).job_id;
  const JobEvents::Subscription watch_a(store->events(), a), watch_b(store->events(), b);
  const auto lease = store->LeaseNext("g", {"wan"});  // the queue changed: both hear of it
  ASSERT_EQ(lease->job_id, a);
  const auto seen_a = watch_a.version(), seen_b = watch_b.version();
  v1::HeartbeatRequest beat;
  beat.set_job_id(a);
  beat.set_lease_id(lease->lease_id);
  beat.set_stage("denoising");
  for (int i = 0; i < 5; ++i) store->Heartbeat(beat);
  EXPECT_EQ(watch_b.version(), seen_b);  // b's watcher slept through a's progress
  EXPECT_EQ(watch_a.version(), seen_a + 5);
  store->Submit(Job("acme", Spec("c")));
  EXPECT_GT(watch_b.version(), seen_b);
}

TEST(StreamRegistryTest, UploadsAreBoundedAndOnePerLease) {
  StreamRegistry streams(/*per_tenant=*/2, std::chrono::seconds(1), /*max_uploads=*/2);
  auto first = streams.BeginUpload("lease-1");
  EXPECT_FAILS(streams.BeginUpload("lease-1"), kAborted, "uploading already");
  auto second = streams.BeginUpload("lease-2");
  EXPECT_FAILS(streams.BeginUpload("lease-3"), kResourceExhausted, "2 uploads are in flight");
  first.reset();
  EXPECT_NO_THROW(streams.BeginUpload("lease-1"));
  streams.Stop();
  EXPECT_FAILS(streams.BeginUpload("lease-4"), kUnavailable, "stopping");
}

// What a metrics scrape reads: model -> state -> (jobs, oldest queued created_ms).
using CountKey = std::pair<std::string, JobState>;
using JobCounts = std::map<CountKey, std::pair<std::int64_t, std::int64_t>>;
JobCounts CountsOf(JobStore& store) {
  JobCounts counts;
  for (const auto& c : store.CountJobs()) counts[CountKey(c.model, c.state)] = {c.jobs, c.oldest_created_ms};
  return counts;
}

// The plan SQLite makes for `sql` in the store at `path`.
std::string QueryPlan(const std::filesystem::path& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* plan = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &plan, nullptr), SQLITE_OK);
  std::string detail;
  while (sqlite3_step(plan) == SQLITE_ROW) detail += reinterpret_cast<const char*>(sqlite3_column_text(plan, 3));
  sqlite3_finalize(plan);
  sqlite3_close(db);
  return detail;
}

TEST_F(JobStoreTest, CountsByModelAndStateFollowEveryMoveAndReadNoHistory) {
  auto store = Open();
  clock_.Advance(std::chrono::milliseconds(5));
  const auto created_first = clock_.NowMs();
  store->Submit(Job("acme", Spec("a")));
  clock_.Advance(std::chrono::milliseconds(5));
  const auto created_second = clock_.NowMs();
  const auto cancelled = store->Submit(Job("acme", Spec("b"))).job_id;
  store->Submit(Job("acme", Spec("c")));
  store->Submit(Job("acme", Spec("d", "hunyuan")));
  const auto lease = store->LeaseNext("g", {"wan"});
  ASSERT_TRUE(lease);
  store->Cancel("acme", cancelled);
  auto counts = CountsOf(*store);
  EXPECT_EQ(counts.size(), 4u) << "states without jobs are left out";
  EXPECT_EQ(counts[CountKey("wan", JobState::kRunning)].first, 1);
  EXPECT_EQ(counts[CountKey("wan", JobState::kCancelled)].first, 1);
  EXPECT_EQ(counts[CountKey("wan", JobState::kQueued)], std::make_pair(std::int64_t{1}, created_second));
  EXPECT_EQ(counts[CountKey("hunyuan", JobState::kQueued)], std::make_pair(std::int64_t{1}, created_second));

  v1::FailJobRequest failed;
  failed.set_job_id(lease->job_id);
  failed.set_lease_id(lease->lease_id);
  failed.set_message("out of memory");
  store->Fail(failed);
  counts = CountsOf(*store);
  EXPECT_FALSE(counts.contains(CountKey("wan", JobState::kRunning)));
  EXPECT_EQ(counts[CountKey("wan", JobState::kFailed)].first, 1);
  EXPECT_EQ(counts[CountKey("wan", JobState::kQueued)].first, 1);
  EXPECT_GT(created_second, created_first);

  // A scrape holds the store's lock: it reads the counts' rows and the queued jobs through the queue's index, never
  // the table of every job with its spec and images.
  const auto path = dir_ / "jobs.db";
  EXPECT_EQ(QueryPlan(path, JobStore::kCountJobsSql), "SCAN job_counts");
  EXPECT_NE(QueryPlan(path, JobStore::kOldestQueuedSql).find("USING INDEX jobs_queue (state=?)"), std::string::npos)
      << QueryPlan(path, JobStore::kOldestQueuedSql);
}

// A store from before the counts' table gets it, counted from its jobs, when a server opens it.
TEST_F(JobStoreTest, AStoreWithoutCountsIsCountedOnOpening) {
  JobCounts before;
  {
    auto store = Open();
    for (const char* prompt : {"a", "b", "c"}) store->Submit(Job("acme", Spec(prompt)));
    store->Cancel("acme", store->Submit(Job("acme", Spec("d", "hunyuan"))).job_id);
    ASSERT_TRUE(store->LeaseNext("g", {"wan"}));
    before = CountsOf(*store);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "jobs.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TRIGGER job_counts_insert; DROP TRIGGER job_counts_update; DROP TRIGGER "
                         "job_counts_delete; DROP TABLE job_counts; CREATE INDEX jobs_counts ON jobs(model, state)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = Open();
  EXPECT_EQ(CountsOf(*store), before);
  EXPECT_EQ(before[CountKey("wan", JobState::kQueued)].first, 2);
  store->Submit(Job("acme", Spec("e")));
  EXPECT_EQ(CountsOf(*store)[CountKey("wan", JobState::kQueued)].first, 3) << "and the counts follow its jobs again";
}

// A job's images go out with its lease and nowhere else: a listing or a lease's choice among the queue reads specs
// without them. Jobs from before the `images` column, whose spec holds them, lease with them all the same.
TEST_F(JobStoreTest, ImagesAreReadOnlyByTheLeaseThatTakesTheJob) {
  auto store = Open();
  auto spec = Spec("a cat turns its head");
  spec.set_image(std::string(1 << 20, 'i'));
  spec.set_last_image(std::string(1000, 'l'));
  const auto id = store->Submit(Job("acme", spec)).job_id;
  store->Submit(Job("acme", Spec("a text-only job")));

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "jobs.db").c_str(), &db), SQLITE_OK);
  auto scalar = [&](const std::string& sql) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    EXPECT_EQ(sqlite3_step(statement), SQLITE_ROW);
    const auto value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return value;
  };
  EXPECT_LT(scalar("SELECT length(spec) FROM jobs WHERE id = '" + id + "'"), 200);
  EXPECT_GT(scalar("SELECT length(images) FROM jobs WHERE id = '" + id + "'"), 1 << 20);

  std::vector<std::int64_t> seen_image_bytes;
  const auto lease = store->LeaseNext("g", {"wan"}, [&](const v1::JobSpec& candidate) {
    seen_image_bytes.push_back(static_cast<std::int64_t>(candidate.image().size()));
    return true;
  });
  ASSERT_TRUE(lease);
  EXPECT_EQ(seen_image_bytes, std::vector<std::int64_t>{0});
  EXPECT_EQ(lease->spec.SerializeAsString(), spec.SerializeAsString()) << "the whole spec, images and all";
  EXPECT_TRUE(store->Get("acme", id).spec().image().empty());

  // A job as stores before the column kept it: the images inside its spec.
  const auto legacy = store->Submit(Job("acme", spec)).job_id;
  sqlite3_stmt* update = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "UPDATE jobs SET spec = ?, images = NULL WHERE id = ?", -1, &update, nullptr),
            SQLITE_OK);
  const auto full = spec.SerializeAsString();
  sqlite3_bind_blob(update, 1, full.data(), static_cast<int>(full.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(update, 2, legacy.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(update), SQLITE_DONE);
  sqlite3_finalize(update);
  sqlite3_close(db);
  EXPECT_TRUE(store->Get("acme", legacy).spec().image().empty());
  ASSERT_TRUE(store->LeaseNext("g", {"wan"}));  // the text-only job, queued before it
  const auto legacy_lease = store->LeaseNext("g", {"wan"});
  ASSERT_TRUE(legacy_lease);
  EXPECT_EQ(legacy_lease->job_id, legacy);
  EXPECT_EQ(legacy_lease->spec.SerializeAsString(), full);
}

TEST_F(JobStoreTest, AnEmptyStoreFileIsRefused) {
  std::ofstream(dir_ / "jobs.db").close();
  EXPECT_FAILS(Open(), kFailedPrecondition, "is an empty file");
}

}  // namespace
}  // namespace vidgen::server
