#include "server/http_json.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <regex>

#include "common/json.h"
#include "proto/spec_proto.h"
#include "spec/json.h"

namespace vidgen::server {
namespace {

nlohmann::json Seconds(std::int64_t unix_ms) {
  return unix_ms > 0 ? nlohmann::json(static_cast<double>(unix_ms) / 1000) : nlohmann::json();
}

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// "832x480" -> width, height.
std::pair<int, int> ParseSize(const std::string& size) {
  const auto x = size.find('x');
  int width = 0, height = 0;
  const char* end = size.data() + size.size();
  const bool parsed = x != std::string::npos &&
                      std::from_chars(size.data(), size.data() + x, width).ptr == size.data() + x &&
                      std::from_chars(size.data() + x + 1, end, height).ptr == end;
  if (!parsed || width < 1 || height < 1) {
    Fail(ErrorCode::kInvalidArgument, "size '{}' is not WIDTHxHEIGHT", size.substr(0, 40));
  }
  return {width, height};
}

// An image in a JSON body: base64 (RFC 4648, padding optional, line breaks as `base64` writes them skipped), or a
// data URL of it ("data:image/png;base64,...").
std::string DecodeImage(const nlohmann::json& value, const char* field) {
  if (!value.is_string()) Fail(ErrorCode::kInvalidArgument, "spec.{} must be a base64 string", field);
  std::string_view text = value.get_ref<const std::string&>();
  if (text.starts_with("data:")) {
    const auto comma = text.find(',');
    if (comma == std::string_view::npos || !text.substr(0, comma).ends_with(";base64")) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} is a data URL without ';base64,'", field);
    }
    text.remove_prefix(comma + 1);
  }
  while (!text.empty() && (text.back() == '=' || std::isspace(static_cast<unsigned char>(text.back())))) {
    text.remove_suffix(1);
  }
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  bytes.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t bits = 0;
  int count = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' || text[i] == '\r') continue;
    const auto digit = kAlphabet.find(text[i]);
    if (digit == std::string_view::npos) {
      Fail(ErrorCode::kInvalidArgument, "spec.{} is not base64: byte {} is 0x{:02x}", field, i,
           static_cast<unsigned char>(text[i]));
    }
    bits = (bits << 6) | static_cast<std::uint32_t>(digit);
    if (++count == 4) {
      for (const int shift : {16, 8, 0}) bytes.push_back(static_cast<char>((bits >> shift) & 0xFF));
      bits = 0;
      count = 0;
    }
  }
  if (count == 1) Fail(ErrorCode::kInvalidArgument, "spec.{} is not base64: its length is cut", field);
  if (count > 1) {  // 2 digits: one byte, 3 digits: two
    bits <<= 6 * (4 - count);
    bytes.push_back(static_cast<char>((bits >> 16) & 0xFF));
    if (count == 3) bytes.push_back(static_cast<char>((bits >> 8) & 0xFF));
  }
  return bytes;
}

}  // namespace

nlohmann::json JobJson(const v1::Job& job) {
  nlohmann::json json = {
      {"id", job.id()},
      {"object", "video"},
      {"model", job.spec().model()},
      {"status", Lower(v1::JobState_Name(job.state()))},
      {"stage", job.stage()},
      {"step", job.step()},
      {"total_steps", job.total_steps()},
      {"progress", job.total_steps() > 0 ? static_cast<double>(job.step()) / job.total_steps() : 0.0},
      {"eta_seconds", job.eta_seconds()},
      {"queue_position", job.queue_position()},
      {"priority", job.priority()},
      {"attempts", job.attempts()},
      {"created_at", Seconds(job.created_unix_ms())},
      {"started_at", Seconds(job.started_unix_ms())},
      {"finished_at", Seconds(job.finished_unix_ms())},
      {"error", nullptr},
      {"spec", spec::ToJson(rpc::FromProto(job.spec()))},
      {"video", nullptr},
  };
  if (job.state() == v1::SUCCEEDED && job.video_bytes() > 0) {
    json["video"] = {{"bytes", job.video_bytes()},
                     {"sha256", job.video_sha256()},
                     {"mime_type", job.video_mime_type()},
                     {"url", "/v1/videos/" + job.id() + "/content"}};
  }
  if (!job.message().empty()) json["error"] = {{"message", job.message()}};
  return json;
}

nlohmann::json ModelsJson(const v1::ListModelsResponse& models) {
  nlohmann::json data = nlohmann::json::array();
  for (const auto& model : models.models()) {
    // A LoRA's own values for the fields a job that names it leaves unset (a step-distilled LoRA's schedule).
    nlohmann::json lora_defaults = nlohmann::json::object();
    for (const auto& [lora, defaults] : model.lora_defaults())
      lora_defaults[lora] = spec::ToJson(rpc::FromProto(defaults));
    data.push_back({{"id", model.name()},
                    {"object", "model"},
                    {"family", model.family()},
                    {"task", model.task().empty() ? "t2v" : model.task()},
                    {"worker_groups", model.worker_groups()},
                    {"max_world_size", model.max_world_size()},
                    {"side_multiple", model.side_multiple()},
                    {"loras", model.loras()},
                    {"lora_defaults", lora_defaults},
                    {"defaults", model.has_defaults() ? spec::ToJson(rpc::FromProto(model.defaults()))
                                                      : nlohmann::json::object()}});
  }
  return {{"object", "list"}, {"data", data}};
}

v1::SubmitJobRequest SubmitRequestFromJson(const std::string& body, const std::string& idempotency_key) {
  auto json = ParseJson(body, "the request body");
  if (!json.is_object()) Fail(ErrorCode::kInvalidArgument, "the request body is not a JSON object");
  v1::SubmitJobRequest request;
  request.set_idempotency_key(idempotency_key);
  // The HTTP API's own fields, taken out before the spec's reader (which refuses fields it does not know).
  const auto take = [&](const char* key) {
    const auto it = json.find(key);
    if (it == json.end()) return nlohmann::json();
    auto value = std::move(*it);
    json.erase(key);
    return value;
  };
  const auto size = take("size"), seconds = take("seconds"), priority = take("priority");
  const auto image = take("image"), last_image = take("last_image");
  auto job = spec::JobRequestFromJson(json, "spec");
  if (!image.is_null()) job.image = DecodeImage(image, "image");
  if (!last_image.is_null()) job.last_image = DecodeImage(last_image, "last_image");
  if (!size.is_null()) {
    if (!size.is_string()) Fail(ErrorCode::kInvalidArgument, "spec.size must be a string \"WIDTHxHEIGHT\"");
    std::tie(job.width, job.height) = ParseSize(size.get<std::string>());
  }
  if (!seconds.is_null()) {
    if (!seconds.is_number() || !(seconds.get<double>() > 0) || seconds.get<double>() > 600) {
      Fail(ErrorCode::kInvalidArgument, "spec.seconds must be a number in (0, 600]");
    }
    if (job.frames != 0) Fail(ErrorCode::kInvalidArgument, "spec.seconds and spec.frames are exclusive");
    if (job.output.fps <= 0) Fail(ErrorCode::kInvalidArgument, "spec.seconds needs output.fps");
    // The first frame, then groups of four (the VAE's temporal stride).
    const double frames = seconds.get<double>() * job.output.fps;
    job.frames = 1 + 4 * static_cast<int>(std::ceil(std::max(0.0, frames - 1) / 4));
  }
  if (!priority.is_null()) {
    if (!priority.is_number_integer()) Fail(ErrorCode::kInvalidArgument, "spec.priority must be an integer");
    request.set_priority(static_cast<int>(std::clamp<std::int64_t>(priority.get<std::int64_t>(), -1, 101)));
  }
  *request.mutable_spec() = rpc::ToProto(job);
  return request;
}

v1::JobState StateFromName(const std::string& name, const std::string& field) {
  for (const auto state : {v1::QUEUED, v1::RUNNING, v1::SUCCEEDED, v1::FAILED, v1::CANCELLED}) {
    if (Lower(v1::JobState_Name(state)) == name) return state;
  }
  Fail(ErrorCode::kInvalidArgument, "{} '{}' is not queued, running, succeeded, failed or cancelled", field,
       name.substr(0, 40));
}

int HttpStatus(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition:
    case ErrorCode::kAborted: return 409;
    // A full queue clears with time; a job too large for every group does not.
    case ErrorCode::kResourceExhausted: return error.reason() == kReasonQueueFull ? 429 : 413;
    case ErrorCode::kOutOfRange: return 416;
    case ErrorCode::kUnimplemented: return 501;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kDeadlineExceeded: return 504;
    case ErrorCode::kCancelled: return 499;
    case ErrorCode::kInternal:
    case ErrorCode::kDataLoss: return 500;
  }
  return 500;
}

nlohmann::json ErrorJson(const Error& error) {
  const bool internal = error.code() == ErrorCode::kInternal;
  const std::string message = internal ? "internal error (the server's log has the details)" : error.what();
  // Refusals of a request field name it first ("spec.width must be ...", "spec.cache.order ...").
  nlohmann::json field = nullptr;
  static const std::regex kField(R"(^spec\.([a-z_]+(\.[a-z_]+)*))");
  if (std::smatch match; !internal && std::regex_search(message, match, kField)) field = match[1].str();
  return {{"error", {{"code", Lower(ErrorCodeName(error.code()))}, {"message", message}, {"field", field}}}};
}

}  // namespace vidgen::server
