// Reading the config.json files of checkpoints: one parse with errors that name the file, and typed fields that
// keep their defaults when absent.
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace vidgen::io {

class JsonConfig {
 public:
  // `what` names the kind of file in errors ("Wan config"). Throws Error(NOT_FOUND) when the file cannot be read,
  // Error(INVALID_ARGUMENT) when it is not a JSON object.
  JsonConfig(const std::string& path, std::string what) : path_(path), what_(std::move(what)) {
    std::ifstream in(path);
    if (!in) Fail(ErrorCode::kNotFound, "cannot read {} '{}'", what_, path);
    try {
      json_ = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      Fail(ErrorCode::kInvalidArgument, "{} '{}' is not valid JSON: {}", what_, path, e.what());
    }
    if (!json_.is_object()) Fail(ErrorCode::kInvalidArgument, "{} '{}' is not a JSON object", what_, path);
  }

  // Reads `key` into `field` when present and not null; throws Error(INVALID_ARGUMENT) naming it on a wrong type.
  template <typename T>
  void Read(const char* key, T& field) const {
    const auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return;
    try {
      it->get_to(field);
    } catch (const nlohmann::json::exception&) {
      Fail(ErrorCode::kInvalidArgument, "{} '{}': '{}' has the wrong type ({})", what_, path_, key, it->dump());
    }
  }

  // Continues reading inside an object member (a CLIP model's "text_config"), when there is one.
  void Descend(const char* key) {
    if (json_.contains(key) && json_.at(key).is_object()) json_ = nlohmann::json(json_.at(key));
  }

  const nlohmann::json& json() const { return json_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, what_;
  nlohmann::json json_;
};

}  // namespace vidgen::io
