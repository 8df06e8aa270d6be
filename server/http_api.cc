#include "server/http_api.h"

#include <httplib.h>

#include <charconv>
#include <fstream>

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/host_port.h"
#include "server/http_json.h"
#include "server/web_page.h"

namespace vidgen::server {
namespace {

constexpr const char* kJson = "application/json";
// How long one events stream lasts; a client reconnects for more (EventSource does by itself).
constexpr auto kEventsStreamLimit = std::chrono::minutes(30);

void Reply(httplib::Response& response, int status, const nlohmann::json& body) {
  response.status = status;
  response.set_content(body.dump(), kJson);
}

// Runs a route's body, turning vidgen::Error into its status and JSON error and anything else into a 500.
template <typename Body>
void Handle(const ServerState& state, const char* route, httplib::Response& response, Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInternal || e.code() == ErrorCode::kDataLoss) spdlog::error("{}: {}", route, e.what());
    if (e.reason() == kReasonQueueFull) response.set_header("Retry-After", std::to_string(RetryAfterSeconds(state)));
    Reply(response, HttpStatus(e), ErrorJson(e));
  } catch (const std::exception& e) {
    spdlog::error("{}: {}", route, e.what());
    Reply(response, 500, ErrorJson(Error(ErrorCode::kInternal, e.what())));
  }
}

std::string Tenant(const ServerState& state, const httplib::Request& request) {
  const std::string header = request.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!header.empty() && !header.starts_with(kBearer)) {
    Fail(ErrorCode::kUnauthenticated, "the Authorization header must be 'Bearer <api key>'");
  }
  return state.auth.TenantOfKey(header.empty() ? header : header.substr(kBearer.size()));
}

std::string EventText(const char* event, const nlohmann::json& data) {
  return fmt::format("event: {}\ndata: {}\n\n", event, data.dump());
}

bool Terminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// One events stream: the job's snapshots as they change, a comment every few seconds to keep proxies from closing
// it, then "end" with the final snapshot.
struct EventStream {
  EventStream(ServerState& state, std::string tenant, std::string job_id)
      : state(state), tenant(std::move(tenant)), job_id(job_id), changes(state.jobs.events(), std::move(job_id)) {}

  // The next piece of the stream; false once it ended.
  bool Next(httplib::DataSink& sink) {
    if (ended || std::chrono::steady_clock::now() > deadline || state.jobs.events().stopped()) {
      sink.done();
      return true;
    }
    const auto seen = changes.version();
    const v1::Job job = state.jobs.Get(tenant, job_id);
    std::string text;
    if (std::string bytes = job.SerializeAsString(); bytes != last) {
      last = std::move(bytes);
      text = EventText(Terminal(job.state()) ? "end" : "snapshot", JobJson(job));
      ended = Terminal(job.state());
    }
    if (!ended) {
      changes.Wait(seen, std::chrono::seconds(5));
      if (text.empty()) text = ": waiting\n\n";
    }
    return sink.write(text.data(), text.size());
  }

  ServerState& state;
  const std::string tenant, job_id;
  JobEvents::Subscription changes;
  std::string last;
  bool ended = false;
  const std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + kEventsStreamLimit;
};

}  // namespace

HttpApi::HttpApi(ServerState& state, const std::string& listen)
    : state_(state), server_(std::make_unique<httplib::Server>()) {
  const auto [host, port] = ParseHostPort(listen, "HTTP address");
  server_->set_payload_max_length(static_cast<std::size_t>(state_.max_request_bytes));
  // Event streams hold a thread each: enough for many watchers, bounded still.
  server_->new_task_queue = [] { return new httplib::ThreadPool(64); };
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(10, 0);
  server_->set_keep_alive_timeout(5);
  Route();
  // httplib's own refusals (no such route, a body over the limit, a range outside the video) come without a body.
  const httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const auto [code, message] =
        response.status == 413   ? std::pair{ErrorCode::kResourceExhausted,
                                           fmt::format("the request is over {} bytes", state_.max_request_bytes)}
        : response.status == 416 ? std::pair{ErrorCode::kOutOfRange, std::string("the range is outside the video")}
        : response.status == 404 ? std::pair{ErrorCode::kNotFound, std::string("no such path")}
                                 : std::pair{ErrorCode::kInvalidArgument, std::string("the request does not parse")};
    response.set_content(ErrorJson(Error(code, message)).dump(), kJson);
    return httplib::Server::HandlerResponse::Handled;
  };
  server_->set_error_handler(on_error);
  port_ = port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) Fail(ErrorCode::kUnavailable, "cannot serve HTTP on {}: is the address in use?", listen);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpApi::~HttpApi() {
  server_->stop();
  thread_.join();
}

void HttpApi::Route() {
  using httplib::Request;
  using httplib::Response;
  auto& s = state_;
  server_->Get("/", [](const Request&, Response& response) {
    response.set_content(std::string(kWebPage), "text/html; charset=utf-8");
  });
  server_->Get("/healthz", [](const Request&, Response& response) { response.set_content("ok\n", "text/plain"); });

  server_->Post("/v1/videos", [&s](const Request& request, Response& response) {
    Handle(s, "POST /v1/videos", response, [&] {
      const std::string tenant = Tenant(s, request);
      const auto submitted =
          SubmitJob(s, tenant, SubmitRequestFromJson(request.body, request.get_header_value("Idempotency-Key")));
      Reply(response, submitted.existing() ? 200 : 202, JobJson(s.jobs.Get(tenant, submitted.job_id())));
    });
  });
  server_->Get("/v1/videos", [&s](const Request& request, Response& response) {
    Handle(s, "GET /v1/videos", response, [&] {
      const std::string tenant = Tenant(s, request);
      v1::ListJobsRequest list;
      if (request.has_param("status")) {
        std::string states = request.get_param_value("status");
        for (std::size_t start = 0; start <= states.size();) {
          const auto comma = std::min(states.find(',', start), states.size());
          list.add_states(StateFromName(states.substr(start, comma - start), "status"));
          start = comma + 1;
        }
      }
      list.set_model(request.get_param_value("model"));
      list.set_page_token(request.get_param_value("after"));
      if (request.has_param("limit")) {
        const std::string limit = request.get_param_value("limit");
        int value = 0;
        const auto [end, error] = std::from_chars(limit.data(), limit.data() + limit.size(), value);
        if (error != std::errc() || end != limit.data() + limit.size() || value < 1 || value > 500) {
          Fail(ErrorCode::kInvalidArgument, "limit '{}' must be 1 to 500", limit.substr(0, 20));
        }
        list.set_page_size(value);
      }
      const auto jobs = s.jobs.List(tenant, list);
      nlohmann::json data = nlohmann::json::array();
      for (const auto& job : jobs.jobs()) data.push_back(JobJson(job));
      Reply(response, 200,
            {{"object", "list"},
             {"data", data},
             {"has_more", !jobs.next_page_token().empty()},
             {"next_page_token", jobs.next_page_token()}});
    });
  });
  server_->Get(R"(/v1/videos/([^/]+))", [&s](const Request& request, Response& response) {
    Handle(s, "GET /v1/videos/{id}", response,
           [&] { Reply(response, 200, JobJson(s.jobs.Get(Tenant(s, request), request.matches[1]))); });
  });
  server_->Delete(R"(/v1/videos/([^/]+))", [&s](const Request& request, Response& response) {
    Handle(s, "DELETE /v1/videos/{id}", response, [&] {
      const std::string tenant = Tenant(s, request);
      const auto job = s.jobs.Cancel(tenant, request.matches[1]);
      spdlog::info("{} cancelled {} ({})", tenant, job.id(), v1::JobState_Name(job.state()));
      Reply(response, 200, JobJson(job));
    });
  });
  server_->Get(R"(/v1/videos/([^/]+)/content)", [&s](const Request& request, Response& response) {
    Handle(s, "GET /v1/videos/{id}/content", response, [&] {
      const auto artifact = s.jobs.Artifact(Tenant(s, request), request.matches[1]);
      const std::string etag = "\"" + artifact.sha256 + "\"";
      response.set_header("ETag", etag);
      response.set_header("Accept-Ranges", "bytes");
      response.set_header("Cache-Control", "private, max-age=31536000, immutable");
      if (request.get_header_value("If-None-Match") == etag) {
        response.status = 304;
        return;
      }
      // A range that starts past the end (or an empty suffix) is refused here, with the size to ask within.
      for (const auto& [first, last] : request.ranges) {
        if (first >= artifact.bytes || (first < 0 && last <= 0)) {
          response.set_header("Content-Range", fmt::format("bytes */{}", artifact.bytes));
          Fail(ErrorCode::kOutOfRange, "the range {}-{} is outside the video's {} bytes", first, last, artifact.bytes);
        }
      }
      auto file = std::make_shared<std::ifstream>(artifact.path, std::ios::binary);
      if (!*file) Fail(ErrorCode::kDataLoss, "the video of job '{}' is missing on the server", artifact.path);
      // httplib serves the requested ranges (206, Content-Range; 416 outside the file) from this provider.
      response.set_content_provider(static_cast<std::size_t>(artifact.bytes), artifact.mime_type,
                                    [file](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                      std::string buffer(std::min<std::size_t>(length, 1 << 20), '\0');
                                      file->seekg(static_cast<std::streamoff>(offset));
                                      file->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
                                      if (file->gcount() <= 0) return false;
                                      return sink.write(buffer.data(), static_cast<std::size_t>(file->gcount()));
                                    });
    });
  });
  server_->Get(R"(/v1/videos/([^/]+)/events)", [&s](const Request& request, Response& response) {
    Handle(s, "GET /v1/videos/{id}/events", response, [&] {
      const std::string tenant = Tenant(s, request);
      const std::string id = request.matches[1];
      s.jobs.Get(tenant, id);  // NOT_FOUND before the stream starts
      auto stream = std::make_shared<EventStream>(s, tenant, id);
      response.set_header("Cache-Control", "no-cache");
      response.set_chunked_content_provider(
          "text/event-stream", [stream](std::size_t, httplib::DataSink& sink) { return stream->Next(sink); });
    });
  });
  server_->Get("/v1/models", [&s](const Request& request, Response& response) {
    Handle(s, "GET /v1/models", response, [&] {
      Tenant(s, request);
      Reply(response, 200, ModelsJson(s.groups.ListModels()));
    });
  });
}

}  // namespace vidgen::server
