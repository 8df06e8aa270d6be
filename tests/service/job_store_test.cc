// The job store on its own: durability across reopen, priorities, tenants, leases and their expiry, paging.
#include "server/job_store.h"

#include <filesystem>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"

namespace vidgen::server {
namespace {

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("vidgen-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<JobStore> Open(StoreLimits limits = {}) {
    return std::make_unique<JobStore>((dir_ / "jobs.db").string(), limits);
  }
  static v1::JobSpec Spec(const std::string& prompt, const std::string& model = "wan") {
    v1::JobSpec spec;
    spec.set_model(model);
    spec.set_prompt(prompt);
    spec.set_steps(10);
    return spec;
  }

  std::filesystem::path dir_;
};

TEST_F(JobStoreTest, WhatWasAcknowledgedSurvivesReopening) {
  std::string id;
  {
    auto store = Open();
    id = store->Submit("acme", Spec("a cat"), 3, "key-1").job_id;
  }
  auto store = Open();
  const auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::QUEUED);
  EXPECT_EQ(job.spec().prompt(), "a cat");
  EXPECT_EQ(job.priority(), 3);
  EXPECT_EQ(job.queue_position(), 1);
  // The idempotency key is durable too.
  EXPECT_EQ(store->Submit("acme", Spec("a cat"), 3, "key-1").job_id, id);
}

TEST_F(JobStoreTest, IdempotencyKeysAreScopedToTenantsAndRequests) {
  auto store = Open();
  const auto first = store->Submit("acme", Spec("a cat"), 0, "k");
  EXPECT_FALSE(first.existing);
  const auto again = store->Submit("acme", Spec("a cat"), 0, "k");
  EXPECT_TRUE(again.existing);
  EXPECT_EQ(again.job_id, first.job_id);
  EXPECT_NE(store->Submit("zeta", Spec("a cat"), 0, "k").job_id, first.job_id);
  try {
    store->Submit("acme", Spec("a dog"), 0, "k");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
  }
}

TEST_F(JobStoreTest, TenantsSeeOnlyTheirJobs) {
  auto store = Open();
  const auto id = store->Submit("acme", Spec("a cat"), 0, "").job_id;
  for (const auto& call : std::vector<std::function<void()>>{[&] { store->Get("zeta", id); },
                                                             [&] { store->Cancel("zeta", id); },
                                                             [&] { store->Artifact("zeta", id); }}) {
    try {
      call();
      FAIL();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    }
  }
  EXPECT_EQ(store->List("zeta", {}).jobs_size(), 0);
  EXPECT_EQ(store->List("acme", {}).jobs_size(), 1);
}

TEST_F(JobStoreTest, LeasesFollowPriorityThenAgeAndTheGroupsModels) {
  auto store = Open();
  const auto low = store->Submit("acme", Spec("low"), 0, "").job_id;
  const auto high = store->Submit("acme", Spec("high"), 9, "").job_id;
  const auto other = store->Submit("acme", Spec("other", "hunyuan"), 50, "").job_id;
  const auto low2 = store->Submit("acme", Spec("low2"), 0, "").job_id;
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
  const auto id = store->Submit("acme", Spec("a cat"), 0, "").job_id;
  auto lease = store->LeaseNext("g", {"wan"});
  ASSERT_TRUE(lease);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_EQ(store->ExpireLeases(), 1);
  EXPECT_EQ(store->Get("acme", id).state(), v1::QUEUED);
  // The old lease is void: its heartbeat says so and it cannot attach a video.
  v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_lease_id(lease->lease_id);
  EXPECT_TRUE(store->Heartbeat(beat).lease_lost());
  EXPECT_THROW(store->AttachArtifact(id, lease->lease_id, {"/x", "00", "video/mp4", 1}), Error);
  lease = store->LeaseNext("g", {"wan"});
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->attempt, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  store->ExpireLeases();
  const auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::FAILED);
  EXPECT_NE(job.message().find("2 times"), std::string::npos) << job.message();
}

TEST_F(JobStoreTest, HeartbeatsKeepALeaseAndCarryCancel) {
  StoreLimits limits;
  limits.lease = std::chrono::milliseconds(100);
  auto store = Open(limits);
  const auto id = store->Submit("acme", Spec("a cat"), 0, "").job_id;
  const auto lease = store->LeaseNext("g", {"wan"});
  v1::HeartbeatRequest beat;
  beat.set_job_id(id);
  beat.set_lease_id(lease->lease_id);
  beat.set_stage("denoising");
  for (int i = 0; i < 5; ++i) {
    beat.set_step(i + 1);
    EXPECT_FALSE(store->Heartbeat(beat).cancel());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
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
  EXPECT_THROW(store->Cancel("acme", id), Error);
}

TEST_F(JobStoreTest, CompletionNeedsTheVideoAndTheLease) {
  auto store = Open();
  const auto id = store->Submit("acme", Spec("a cat"), 0, "").job_id;
  const auto lease = store->LeaseNext("g", {"wan"});
  v1::CompleteJobRequest done;
  done.set_job_id(id);
  done.set_lease_id(lease->lease_id);
  EXPECT_THROW(store->Complete(done), Error);  // no video yet
  store->AttachArtifact(id, lease->lease_id, {"/videos/a.mp4", "abc", "video/mp4", 42});
  store->Complete(done);
  const auto job = store->Get("acme", id);
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.video_bytes(), 42);
  EXPECT_EQ(store->Artifact("acme", id).path, "/videos/a.mp4");
  // Retention forgets the video but not the job.
  EXPECT_EQ(store->ExpireArtifacts(std::chrono::system_clock::now() + std::chrono::seconds(1)),
            std::vector<std::string>{"/videos/a.mp4"});
  EXPECT_THROW(store->Artifact("acme", id), Error);
  EXPECT_EQ(store->Get("acme", id).state(), v1::SUCCEEDED);
}

TEST_F(JobStoreTest, RetryableFailuresRequeueWhileAttemptsRemain) {
  StoreLimits limits;
  limits.max_attempts = 2;
  auto store = Open(limits);
  const auto id = store->Submit("acme", Spec("a cat"), 0, "").job_id;
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
  for (int i = 0; i < 7; ++i) ids.insert(store->Submit("acme", Spec(fmt::format("prompt {}", i)), 0, "").job_id);
  try {
    store->Submit("acme", Spec("one too many"), 0, "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
    EXPECT_NE(std::string(e.what()).find("retry"), std::string::npos);
  }
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
  EXPECT_THROW(store->List("acme", request), Error);
}

}  // namespace
}  // namespace vidgen::server
