// Prometheus metrics of the server and of a worker group's leader, scraped over HTTP while a job runs.
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/service/cluster.h"

namespace vidgen::testing {
namespace {

// The port a process wrote to `path` (waits up to 60 s for it).
int ReadPort(const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::stoi(ReadFile(path));
}

std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  const auto response = client.Get("/metrics");
  if (!response) {
    ADD_FAILURE() << "no answer from port " << port;
    return "";
  }
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  return response->body;
}

// The value of one series ("name{labels}" exactly as rendered); NaN when it is absent.
double Sample(const std::string& text, const std::string& series) {
  for (std::size_t at = 0; (at = text.find(series + " ", at)) != std::string::npos; at += series.size()) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
  }
  return std::nan("");
}

TEST(MetricsServiceTest, BothEndpointsFollowAJobFromQueueToSuccess) {
  Cluster cluster;
  const auto server_port_file = cluster.dir() + "/server.metrics", worker_port_file = cluster.dir() + "/worker.metrics";
  cluster.StartServer({"--metrics-listen", "127.0.0.1:0", "--metrics-port-file", server_port_file});
  const int server_port = ReadPort(server_port_file);
  const std::string model = fmt::format("model=\"{}\"", Cluster::kModel);

  // A model the server was told about shows zeros before any job.
  auto scraped = Scrape(server_port);
  EXPECT_EQ(Sample(scraped, "vidgen_queue_depth{" + model + "}"), 0) << scraped;
  EXPECT_EQ(Sample(scraped, "vidgen_jobs{" + model + ",state=\"queued\"}"), 0);
  EXPECT_EQ(Sample(scraped, "vidgen_worker_groups{" + model + "}"), 0);

  auto spec = Cluster::LongSpec(120);
  std::string id;
  ASSERT_TRUE(cluster.Submit(spec, &id).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  scraped = Scrape(server_port);
  EXPECT_EQ(Sample(scraped, "vidgen_queue_depth{" + model + "}"), 1);
  EXPECT_EQ(Sample(scraped, "vidgen_jobs{" + model + ",state=\"queued\"}"), 1);
  EXPECT_EQ(Sample(scraped, "vidgen_jobs_submitted_total{" + model + "}"), 1);
  EXPECT_GE(Sample(scraped, "vidgen_queue_oldest_seconds{" + model + "}"), 1.0);
  EXPECT_LT(Sample(scraped, "vidgen_queue_oldest_seconds{" + model + "}"), 30.0);

  cluster.StartWorker(1, {"--metrics-listen", "127.0.0.1:0", "--metrics-port-file", worker_port_file});
  const int worker_port = ReadPort(worker_port_file);
  cluster.WaitFor(id, [](const v1::Job& job) { return job.step() >= 3; });
  scraped = Scrape(server_port);
  const auto worker_scraped = Scrape(worker_port);
  if (cluster.Get(id).state() == v1::RUNNING) {  // it was running throughout the scrape
    EXPECT_EQ(Sample(scraped, "vidgen_jobs{" + model + ",state=\"running\"}"), 1) << scraped;
    EXPECT_EQ(Sample(scraped, "vidgen_jobs{" + model + ",state=\"queued\"}"), 0);
    EXPECT_EQ(Sample(scraped, "vidgen_queue_depth{" + model + "}"), 0);
    EXPECT_EQ(Sample(scraped, "vidgen_worker_groups{" + model + "}"), 1);
    EXPECT_TRUE(std::isnan(Sample(worker_scraped, "vidgen_worker_jobs_total{outcome=\"succeeded\"}")));  // none yet
  } else {
    ADD_FAILURE() << "the job ended before the scrape; make it longer";
  }
  EXPECT_EQ(Sample(scraped, "vidgen_jobs_leased_total{" + model + "}"), 1);
  EXPECT_EQ(Sample(scraped, "vidgen_queue_wait_seconds_count{" + model + "}"), 1);
  EXPECT_GE(Sample(scraped, "vidgen_queue_wait_seconds_sum{" + model + "}"), 1.0);
  const std::string layout = "family=\"wan2.1\",layout=\"ulysses1_ring1_cfg1\"";
  const double steps_then = Sample(worker_scraped, "vidgen_worker_step_seconds_count{" + layout + "}");
  EXPECT_GE(steps_then, 3) << worker_scraped;
  EXPECT_GT(Sample(worker_scraped, "vidgen_worker_load_seconds"), 0);

  const auto job = cluster.WaitForEnd(id, std::chrono::seconds(300));
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.message();
  scraped = Scrape(server_port);
  EXPECT_EQ(Sample(scraped, "vidgen_jobs{" + model + ",state=\"succeeded\"}"), 1) << scraped;
  EXPECT_EQ(Sample(scraped, "vidgen_jobs{" + model + ",state=\"running\"}"), 0);
  EXPECT_EQ(Sample(scraped, "vidgen_jobs_completed_total{" + model + "}"), 1);
  EXPECT_EQ(Sample(scraped, "vidgen_job_seconds_count{" + model + "}"), 1);
  EXPECT_EQ(Sample(scraped, "vidgen_job_seconds_bucket{" + model + ",le=\"+Inf\"}"), 1);
  EXPECT_EQ(Sample(scraped, "vidgen_steps_total{" + model + ",kind=\"full\"}") +
                Sample(scraped, "vidgen_steps_total{" + model + ",kind=\"predicted\"}"),
            120);
  EXPECT_EQ(Sample(scraped, "vidgen_predicted_step_share{" + model + "}"), 0);  // no cache asked
  EXPECT_EQ(Sample(scraped, "vidgen_upload_bytes_total"), static_cast<double>(job.video_bytes()));
  // Heartbeats come at most every 200 ms: the server times the steps between them, not each one.
  EXPECT_GE(Sample(scraped, "vidgen_step_seconds_count{" + model + "}"), 100);
  EXPECT_LE(Sample(scraped, "vidgen_step_seconds_count{" + model + "}"), 120);
  EXPECT_GT(Sample(scraped, "vidgen_step_seconds_sum{" + model + "}"), 0);

  const auto worker_end = Scrape(worker_port);
  EXPECT_EQ(Sample(worker_end, "vidgen_worker_step_seconds_count{" + layout + "}"), 120);
  EXPECT_EQ(Sample(worker_end, "vidgen_worker_jobs_total{outcome=\"succeeded\"}"), 1);
  EXPECT_EQ(Sample(worker_end, "vidgen_worker_encode_seconds_count"), 1);
  EXPECT_GT(Sample(worker_end, "vidgen_worker_encode_seconds_sum"), 0);
  EXPECT_EQ(Sample(worker_end, "vidgen_worker_job_peak_memory_bytes_count"), 1);
  EXPECT_GT(Sample(worker_end, "vidgen_worker_job_peak_memory_bytes_sum"), 1 << 20);
  EXPECT_EQ(Sample(worker_end, "vidgen_worker_cache_bytes"), 0);

  // Anything but GET /metrics is not served.
  httplib::Client client("127.0.0.1", server_port);
  const auto other = client.Get("/jobs");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

}  // namespace
}  // namespace vidgen::testing
