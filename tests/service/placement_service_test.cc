// Groups of several sizes for one model: a job goes to the group whose layout its parallel hints ask for when that
// group is idle; a group's registered layout must multiply to its world size; a job goes only where its memory
// estimate fits, and one that fits no group is refused at submit with the numbers.
#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/service/cluster.h"

namespace vidgen::testing {
namespace {

TEST(PlacementServiceTest, ParallelHintsChooseBetweenGroupsOfOneAndTwoRanks) {
  Cluster cluster;
  cluster.StartServer();
  const auto one = cluster.StartWorker(1, {}, VIDGEN_DEMO_MODEL, "demo");
  const auto two = cluster.StartWorker(2, {}, VIDGEN_DEMO_MODEL, "demo");
  cluster.WaitForGroups("demo", 2);

  std::vector<std::string> on_one, on_two;
  for (int i = 0; i < 6; ++i) {
    v1::JobSpec spec;
    spec.set_model("demo");
    spec.set_prompt("a red circle moving left on a gray background");
    spec.set_steps(4);
    const bool wants_two = i % 2 == 0;
    spec.mutable_parallel()->set_ulysses(wants_two ? 2 : 1);
    std::string id;
    ASSERT_TRUE(cluster.Submit(spec, &id).ok());
    const auto job = cluster.WaitForEnd(id);
    ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.message();
    (wants_two ? on_two : on_one).push_back(id);
    // Both groups back in LeaseJob (idle) before the next job comes.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const auto one_log = ReadFile(one.log), two_log = ReadFile(two.log);
  for (const auto& id : on_one) {
    EXPECT_NE(one_log.find(id + " done"), std::string::npos) << id << " asked for ulysses 1";
    EXPECT_EQ(two_log.find(id), std::string::npos) << id << " asked for ulysses 1";
  }
  for (const auto& id : on_two) {
    EXPECT_NE(two_log.find(id + " done"), std::string::npos) << id << " asked for ulysses 2";
    EXPECT_EQ(one_log.find(id), std::string::npos) << id << " asked for ulysses 2";
  }

  // A layout that is not the group's world is refused at registration.
  v1::RegisterGroupRequest bad;
  bad.set_name("bad");
  bad.set_world_size(2);
  bad.mutable_layout()->set_ulysses(1);
  bad.add_models()->set_name("demo");
  v1::RegisterGroupResponse response;
  const auto status =
      cluster.WorkerClient()->RegisterGroup(Cluster::Context(cluster.worker_token()).get(), bad, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("is not the world size 2"), std::string::npos) << status.error_message();
}

TEST(PlacementServiceTest, AJobGoesOnlyWhereItFitsAndOneThatFitsNowhereIsRefused) {
  Cluster cluster;
  cluster.StartServer();
  // The small group's ranks have 1 MiB each (less than the weights); the large one's 4 GiB.
  const auto small = cluster.StartWorker(1, {"--device-memory", "1MiB"}, VIDGEN_DEMO_MODEL, "demo");
  const auto large = cluster.StartWorker(2, {"--device-memory", "4GiB"}, VIDGEN_DEMO_MODEL, "demo");
  cluster.WaitForGroups("demo", 2);

  // Without hints the smaller group would be the place; it cannot hold the job, so the larger one runs it.
  v1::JobSpec spec;
  spec.set_model("demo");
  spec.set_prompt("a red circle moving left on a gray background");
  spec.set_steps(4);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  const auto job = cluster.WaitForEnd(id);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.message();
  EXPECT_NE(ReadFile(large.log).find(id + " done"), std::string::npos);
  EXPECT_EQ(ReadFile(small.log).find(id), std::string::npos);

  // 2048×2048 frames decode in more than 4 GiB on this model: refused at submit, naming what it needs and has.
  spec.set_width(2048);
  spec.set_height(2048);
  spec.set_frames(9);
  const auto status = cluster.Submit(spec, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  for (const auto fragment : {"per rank", "decoding", "4.00 GiB per rank", "no worker group of model 'demo'"}) {
    EXPECT_NE(status.error_message().find(fragment), std::string::npos) << status.error_message();
  }
}

}  // namespace
}  // namespace vidgen::testing
