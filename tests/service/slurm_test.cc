// The Slurm deployment on a real one-node cluster: deploy/slurm/vidgen-worker.sbatch submitted with sbatch as a
// 2-task worker group that joins a local server and finishes a job; its job step killed with scancel mid-job, so that
// the lease lapses and the job goes back to the queue, and a second group finishes it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/rank_launch.h"
#include "tests/service/cluster.h"
#include "tests/service/slurm_node.h"

namespace vidgen::testing {
namespace {

TEST(SlurmTest, TheSbatchScriptsGroupFinishesAJobAndAScancelledStepsJobIsRequeued) {
  if (const auto why = SlurmNode::Unavailable(); !why.empty()) GTEST_SKIP() << why;
  Cluster cluster;
  cluster.StartServer({"--lease-seconds", "3", "--max-steps", "1000"});
  SlurmNode slurm;
  ASSERT_FALSE(::testing::Test::HasFailure());

  // The script as users submit it, with what it serves given through the environment.
  int groups = 0;
  const auto submit_group = [&] {
    const std::string command = fmt::format(
        "VIDGEN_SERVER={server} VIDGEN_MODEL_DIR={model} VIDGEN_MODEL_NAME={name} VIDGEN_WORKER_BIN={worker} "
        "VIDGEN_WORKER_TOKEN_FILE={dir}/worker.token VIDGEN_WORK_DIR={dir}/slurm-work VIDGEN_WORKER_FLAGS='--device "
        "cpu --dtype fp32 --threads 1' MASTER_PORT={port} sbatch --parsable --ntasks-per-node=2 --gpus-per-task=0 "
        "--output={dir}/slurm-group{n}.log {script}",
        fmt::arg("server", cluster.address()), fmt::arg("model", VIDGEN_TINY_MODEL), fmt::arg("name", Cluster::kModel),
        fmt::arg("worker", VIDGEN_WORKER_BIN), fmt::arg("dir", cluster.dir()), fmt::arg("port", FreeLoopbackPort()),
        fmt::arg("n", groups++), fmt::arg("script", VIDGEN_SBATCH_SCRIPT));
    std::string output;
    EXPECT_EQ(slurm.Run(command, &output), 0) << output;
    return output.substr(0, output.find_first_of(";\n"));
  };
  const std::string first_group = submit_group();
  cluster.WaitForGroups(Cluster::kModel, 1);
  v1::ListModelsResponse models;
  ASSERT_TRUE(cluster.Client()->ListModels(Cluster::Context().get(), {}, &models).ok());
  ASSERT_EQ(models.models(0).max_world_size(), 2);  // one group of Slurm's two tasks

  std::string done;
  ASSERT_TRUE(cluster.Submit(Cluster::SmallSpec(), &done).ok());
  const auto finished = cluster.WaitForEnd(done);
  ASSERT_EQ(finished.state(), v1::SUCCEEDED) << finished.message() << slurm.Logs();
  const std::string video = cluster.dir() + "/done.mp4";
  std::string output;
  ASSERT_EQ(cluster.RunClient(fmt::format("download {} --out {}", done, video), &output), 0) << output;
  auto probe = Probe(video);
  EXPECT_EQ(probe["codec_name"], "h264");
  EXPECT_EQ(probe["width"], "96");
  EXPECT_EQ(probe["nb_read_frames"], "9");

  // Killing the group's job step mid-job: nobody reports, the lease lapses, the job is queued again.
  auto long_spec = Cluster::LongSpec(60);
  std::string requeued;
  ASSERT_TRUE(cluster.Submit(long_spec, &requeued).ok());
  cluster.WaitFor(requeued, [](const v1::Job& job) { return job.step() >= 2; });
  ASSERT_EQ(slurm.Run(fmt::format("scancel --signal=KILL {}.0", first_group), &output), 0) << output;
  const auto queued = cluster.WaitFor(
      requeued, [](const v1::Job& job) { return job.state() == v1::QUEUED; }, std::chrono::seconds(60));
  EXPECT_EQ(queued.attempts(), 1);
  EXPECT_NE(queued.message().find("stopped answering"), std::string::npos) << queued.message();
  EXPECT_EQ(cluster.Get(requeued).state(), v1::QUEUED);  // no group left to take it

  submit_group();
  const auto second = cluster.WaitForEnd(requeued, std::chrono::seconds(300));
  ASSERT_EQ(second.state(), v1::SUCCEEDED) << second.message() << slurm.Logs();
  EXPECT_EQ(second.attempts(), 2);
}

}  // namespace
}  // namespace vidgen::testing
