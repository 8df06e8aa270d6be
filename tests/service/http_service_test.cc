// The HTTP/JSON API (/v1/videos) against a real server and worker group, through cpp-httplib's client: statuses,
// the job object, idempotency, tenants, a resumed Range download to the same SHA-256, and the events stream's order.
#include <httplib.h>

#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/sha.h>

#include "tests/service/cluster.h"

namespace vidgen::testing {
namespace {

class HttpServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(); }

  void StartServer(std::vector<std::string> flags = {}) {
    std::filesystem::remove(cluster_.dir() + "/http.port");
    flags.insert(flags.end(), {"--http-listen", "127.0.0.1:0", "--http-port-file", cluster_.dir() + "/http.port"});
    cluster_.StartServer(flags);
    // Written once the HTTP side is bound, which may be just after gRPC answers.
    for (int i = 0; i < 100 && ReadFile(cluster_.dir() + "/http.port").empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    port_ = std::stoi(ReadFile(cluster_.dir() + "/http.port"));
  }

  httplib::Client Client(const std::string& key = Cluster::kAcmeKey) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(120, 0);
    if (!key.empty()) client.set_bearer_token_auth(key.c_str());
    return client;
  }

  // POSTs a job body; the response.
  httplib::Result Post(const nlohmann::json& body, const std::string& key = Cluster::kAcmeKey,
                       const httplib::Headers& headers = {}) const {
    return Client(key).Post("/v1/videos", headers, body.dump(), "application/json");
  }

  static nlohmann::json SmallBody(int steps = 6) {
    return {{"model", Cluster::kModel},
            {"prompt", "a red ball bouncing on a wooden floor"},
            {"size", "96x64"},
            {"frames", 9},
            {"steps", steps}};
  }

  // Polls GET /v1/videos/{id} until its status is terminal.
  nlohmann::json WaitForEnd(const std::string& id) const {
    for (int i = 0; i < 600; ++i) {
      const auto response = Client().Get("/v1/videos/" + id);
      const auto job = nlohmann::json::parse(response->body);
      const std::string status = job.at("status");
      if (status == "succeeded" || status == "failed" || status == "cancelled") return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << id << " did not end";
    return {};
  }

  Cluster cluster_;
  int port_ = 0;
};

// A response's status, or the client's error as a negative number.
int StatusOf(const httplib::Result& result) {
  return result ? result->status : -static_cast<int>(result.error());
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  std::string hex;
  for (const auto byte : digest) hex += fmt::format("{:02x}", byte);
  return hex;
}

TEST_F(HttpServiceTest, ErrorsAreJsonWithTheStatusOfTheirCode) {
  const auto check = [](const httplib::Result& response, int status, const std::string& code,
                        const nlohmann::json& field = nullptr) {
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(response->status, status) << response->body;
    EXPECT_EQ(response->get_header_value("Content-Type"), "application/json");
    const auto error = nlohmann::json::parse(response->body).at("error");
    EXPECT_EQ(error.at("code"), code) << response->body;
    EXPECT_FALSE(error.at("message").get<std::string>().empty());
    EXPECT_EQ(error.at("field"), field) << response->body;
  };
  check(Post(SmallBody(), ""), 401, "unauthenticated");
  check(Post(SmallBody(), "not-a-key-0123456789"), 401, "unauthenticated");
  auto body = SmallBody();
  body["size"] = "96x65";  // not a multiple of 16
  check(Post(body), 400, "invalid_argument", "height");
  body = SmallBody();
  body["colour"] = "red";
  check(Post(body), 400, "invalid_argument");
  check(Client().Post("/v1/videos", "{\"model\":", "application/json"), 400, "invalid_argument");
  body = SmallBody();
  body["loras"] = {{{"name", "anime"}}};  // the group advertises none
  check(Post(body), 400, "invalid_argument", "loras");
  body = SmallBody();
  body["image"] = "iVBORw0KGgo=";  // a text-to-video model takes no image
  check(Post(body), 400, "invalid_argument", "image");
  body = SmallBody();
  body["model"] = "nobody-serves-this";
  check(Post(body), 404, "not_found");
  check(Client().Get("/v1/videos/job-does-not-exist"), 404, "not_found");
  check(Client().Get("/v1/videos?status=sleeping"), 400, "invalid_argument");
  check(Client().Get("/v1/videos?limit=0"), 400, "invalid_argument");
  check(Client().Post("/v1/videos", std::string(9 << 20, ' '), "application/json"), 413, "resource_exhausted");
}

TEST_F(HttpServiceTest, AJobFromSubmitToARangeResumedDownloadWithItsEventsInOrder) {
  cluster_.StartWorker();
  cluster_.WaitForGroups(Cluster::kModel, 1);
  const httplib::Headers idempotent = {{"Idempotency-Key", "http-test-1"}};
  const auto submitted = Post(SmallBody(), Cluster::kAcmeKey, idempotent);
  ASSERT_TRUE(submitted);
  ASSERT_EQ(submitted->status, 202) << submitted->body;
  const auto job = nlohmann::json::parse(submitted->body);
  const std::string id = job.at("id");
  EXPECT_EQ(job.at("object"), "video");
  EXPECT_EQ(job.at("model"), Cluster::kModel);
  EXPECT_EQ(job.at("spec").at("width"), 96);
  EXPECT_EQ(job.at("spec").at("steps"), 6);
  // The same key again: the same job, 200.
  const auto again = Post(SmallBody(), Cluster::kAcmeKey, idempotent);
  ASSERT_TRUE(again) << httplib::to_string(again.error());
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(nlohmann::json::parse(again->body).at("id"), id);

  // The events: snapshots whose steps never go back, the last one "end" with the finished job.
  std::string stream;
  const auto events = Client().Get("/v1/videos/" + id + "/events", [&](const char* data, std::size_t length) {
    stream.append(data, length);
    return true;
  });
  ASSERT_TRUE(events) << httplib::to_string(events.error());
  EXPECT_EQ(events->status, 200);
  EXPECT_EQ(events->get_header_value("Content-Type"), "text/event-stream");
  std::vector<std::pair<std::string, nlohmann::json>> messages;
  for (std::size_t start = 0, end; (end = stream.find("\n\n", start)) != std::string::npos; start = end + 2) {
    const std::string message = stream.substr(start, end - start);
    if (message.starts_with(":")) continue;  // a keep-alive comment
    const auto newline = message.find('\n');
    ASSERT_TRUE(message.starts_with("event: ") && newline != std::string::npos) << message;
    messages.emplace_back(message.substr(7, newline - 7), nlohmann::json::parse(message.substr(newline + 7)));
  }
  ASSERT_GE(messages.size(), 2u) << stream;
  int last_step = -1;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& [event, snapshot] = messages[i];
    EXPECT_EQ(event, i + 1 == messages.size() ? "end" : "snapshot") << i;
    EXPECT_GE(snapshot.at("step").get<int>(), last_step) << stream;
    last_step = snapshot.at("step");
  }
  const auto& done = messages.back().second;
  ASSERT_EQ(done.at("status"), "succeeded") << done.dump();
  EXPECT_EQ(done.at("step"), 6);
  const auto video = done.at("video");
  EXPECT_EQ(video.at("mime_type"), "video/mp4");

  // The whole video, then its second half again by Range: the same bytes, whose SHA-256 is the ETag.
  const auto content = Client().Get(video.at("url").get<std::string>());
  ASSERT_TRUE(content) << httplib::to_string(content.error());
  ASSERT_EQ(content->status, 200);
  EXPECT_EQ(content->get_header_value("Content-Type"), "video/mp4");
  EXPECT_EQ(static_cast<std::int64_t>(content->body.size()), video.at("bytes").get<std::int64_t>());
  EXPECT_EQ(Sha256Hex(content->body), video.at("sha256"));
  const std::string sha256 = video.at("sha256");
  EXPECT_EQ(content->get_header_value("ETag"), fmt::format("\"{}\"", sha256));
  const std::size_t half = content->body.size() / 2;
  const auto rest = Client().Get(video.at("url").get<std::string>(), {httplib::make_range_header({{half, -1}})});
  ASSERT_TRUE(rest) << httplib::to_string(rest.error());
  ASSERT_EQ(rest->status, 206);
  std::string resumed(content->body, 0, half);
  resumed.append(rest->body);
  EXPECT_EQ(Sha256Hex(resumed), video.at("sha256"));
  const auto unchanged =
      Client().Get(video.at("url").get<std::string>(), {{"If-None-Match", content->get_header_value("ETag")}});
  EXPECT_EQ(StatusOf(unchanged), 304);
  const auto beyond =
      Client().Get(video.at("url").get<std::string>(), {httplib::make_range_header({{content->body.size() + 10, -1}})});
  EXPECT_EQ(StatusOf(beyond), 416);

  // Another tenant sees none of it; the owner lists it.
  for (const auto& path : {"/v1/videos/" + id, "/v1/videos/" + id + "/content", "/v1/videos/" + id + "/events"}) {
    EXPECT_EQ(StatusOf(Client(Cluster::kZetaKey).Get(path)), 404) << path;
  }
  EXPECT_EQ(StatusOf(Client(Cluster::kZetaKey).Delete("/v1/videos/" + id)), 404);
  const auto zeta_list = nlohmann::json::parse(Client(Cluster::kZetaKey).Get("/v1/videos")->body);
  EXPECT_TRUE(zeta_list.at("data").empty()) << zeta_list.dump();
  const auto list = nlohmann::json::parse(Client().Get("/v1/videos?status=succeeded&limit=10")->body);
  ASSERT_EQ(list.at("data").size(), 1u) << list.dump();
  EXPECT_EQ(list.at("data")[0].at("id"), id);
  EXPECT_TRUE(nlohmann::json::parse(Client().Get("/v1/videos?status=queued,running")->body).at("data").empty());

  // The models, with the worker group's count.
  const auto models = nlohmann::json::parse(Client().Get("/v1/models")->body);
  ASSERT_EQ(models.at("data").size(), 1u) << models.dump();
  EXPECT_EQ(models.at("data")[0].at("id"), Cluster::kModel);
  EXPECT_EQ(models.at("data")[0].at("worker_groups"), 1);
}

TEST_F(HttpServiceTest, DeleteCancelsAQueuedJobAndSecondsBecomeFrames) {
  // No worker: the job stays queued, and DELETE ends it as cancelled.
  auto body = SmallBody();
  body.erase("frames");
  body["seconds"] = 1;
  body["output"] = {{"fps", 8}};
  const auto submitted = Post(body);
  ASSERT_EQ(submitted->status, 202) << submitted->body;
  const auto job = nlohmann::json::parse(submitted->body);
  EXPECT_EQ(job.at("spec").at("frames"), 9);  // 8 frames a second for 1 s: the model's 4k+1 just above
  EXPECT_EQ(job.at("status"), "queued");
  EXPECT_EQ(job.at("queue_position"), 1);
  const auto cancelled = Client().Delete("/v1/videos/" + job.at("id").get<std::string>());
  ASSERT_EQ(cancelled->status, 200) << cancelled->body;
  EXPECT_EQ(nlohmann::json::parse(cancelled->body).at("status"), "cancelled");
  const auto content = Client().Get("/v1/videos/" + job.at("id").get<std::string>() + "/content");
  EXPECT_EQ(content->status, 409) << content->body;
  // The page.
  const auto page = Client("").Get("/");
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<title>vidgen</title>"), std::string::npos);
}

TEST_F(HttpServiceTest, AFullQueueIs429WithRetryAfter) {
  cluster_.StopServer();
  StartServer({"--max-queue", "1"});
  ASSERT_EQ(StatusOf(Post(SmallBody())), 202);
  const auto refused = Post(SmallBody());
  ASSERT_EQ(StatusOf(refused), 429) << refused->body;
  EXPECT_EQ(nlohmann::json::parse(refused->body).at("error").at("code"), "resource_exhausted");
  EXPECT_GT(std::stoi(refused->get_header_value("Retry-After")), 0);
}

}  // namespace
}  // namespace vidgen::testing
