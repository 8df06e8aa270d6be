#include "models/io/weight_store.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"

namespace vidgen::io {
namespace {

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string ShapeText(const at::Tensor& tensor) {
  return fmt::format("[{}]", fmt::join(tensor.sizes(), ", "));
}

// One category of load problems, formatted as "missing (2): a, b". A crafted file can name thousands of tensors,
// or very long ones: the message shows the first 100, each cut to 200 characters.
void AppendProblems(std::string& message, std::string_view what, const std::vector<std::string>& names) {
  if (names.empty()) return;
  constexpr std::size_t kShown = 100, kLength = 200;
  std::vector<std::string> shown;
  for (std::size_t i = 0; i < std::min(names.size(), kShown); ++i) {
    std::string name = names[i];
    if (name.size() > kLength) {
      name.resize(kLength);
      name.append("...");
    }
    shown.push_back(std::move(name));
  }
  message += fmt::format("\n  {} ({}): {}", what, names.size(), fmt::join(shown, ", "));
  if (names.size() > kShown) message += fmt::format(", and {} more", names.size() - kShown);
}

}  // namespace

KeyMap InverseKeyMap(const KeyMap& map) {
  KeyMap inverse;
  for (const auto& [from, to] : map) inverse.emplace_back(to, from);
  std::stable_sort(inverse.begin(), inverse.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return inverse;
}

std::string ApplyKeyMap(const KeyMap& map, std::string_view name) {
  std::string out;
  for (std::size_t at = 0; at < name.size();) {
    const auto match = std::find_if(map.begin(), map.end(), [&](const auto& pair) {
      return !pair.first.empty() && name.substr(at, pair.first.size()) == pair.first;
    });
    if (match == map.end()) {
      out.push_back(name[at++]);
    } else {
      out += match->second;
      at += match->first.size();
    }
  }
  return out;
}

KeyMap KeyTable(std::string_view table) {
  KeyMap map;
  std::istringstream lines{std::string(table)};
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line.substr(0, line.find('#')));
    std::string from, to, extra;
    if (!(fields >> from)) continue;
    if (!(fields >> to) || fields >> extra) Fail(ErrorCode::kInternal, "key table line '{}' is not a pair", line);
    map.emplace_back(std::move(from), std::move(to));
  }
  return map;
}

void WeightStore::AddSafetensors(const std::string& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  const auto index = fs::path(dir) / (stem + ".safetensors.index.json");
  if (fs::exists(index)) {
    AddFile(index.string());
    return;
  }
  std::vector<std::string> files;
  if (fs::is_directory(dir)) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      const auto name = entry.path().filename().string();
      if (name.starts_with(stem) && name.ends_with(".safetensors")) files.push_back(entry.path().string());
    }
  }
  if (files.empty()) Fail(ErrorCode::kNotFound, "no {}*.safetensors in '{}'", stem, dir);
  std::sort(files.begin(), files.end());
  for (const auto& file : files) AddFile(file);
}

void WeightStore::AddFile(const std::string& path) {
  NamedTensors tensors;
  if (EndsWith(path, ".index.json")) {
    std::map<std::string, std::string> weight_map;
    for (const auto& shard : ReadSafetensorsIndex(path, &weight_map)) {
      const SafetensorsFile file(shard);
      for (auto& [name, tensor] : file.Tensors()) Add(name, std::move(tensor), shard);
    }
    for (const auto& [name, shard] : weight_map) {
      const auto it = tensors_.find(name);
      if (it == tensors_.end() || it->second.source != shard) {
        Fail(ErrorCode::kInvalidArgument, "safetensors index '{}' puts tensor '{}' in '{}', which does not hold it",
             path, name, shard);
      }
    }
    return;
  }
  if (EndsWith(path, ".safetensors")) {
    tensors = SafetensorsFile(path).Tensors();
  } else {
    tensors = ReadTorchCheckpoint(path);
  }
  for (auto& [name, tensor] : tensors) Add(std::move(name), std::move(tensor), path);
}

void WeightStore::Add(std::string name, at::Tensor tensor, std::string source) {
  Insert(std::move(name), {std::move(tensor), {}, std::move(source)});
}

void WeightStore::Insert(std::string name, Entry entry) {
  const auto it = tensors_.find(name);
  if (it != tensors_.end()) {
    Fail(ErrorCode::kInvalidArgument, "tensor '{}' is in both '{}' and '{}'", name, it->second.source, entry.source);
  }
  tensors_.emplace(std::move(name), std::move(entry));
}

void WeightStore::AddConcatenation(std::string name, std::vector<at::Tensor> parts, std::string source) {
  if (parts.empty()) Fail(ErrorCode::kInternal, "'{}' is a concatenation of no tensors", name);
  const auto& first = parts.front();
  std::int64_t rows = 0;
  for (const auto& part : parts) {
    if (part.dim() == 0 || part.dim() != first.dim() || part.sizes().slice(1) != first.sizes().slice(1)) {
      Fail(ErrorCode::kInvalidArgument, "the parts of '{}' in '{}' do not stack: {} and {}", name, source,
           ShapeText(first), ShapeText(part));
    }
    rows += part.size(0);
  }
  std::vector<std::int64_t> shape(first.sizes().begin(), first.sizes().end());
  shape[0] = rows;
  Insert(std::move(name), {at::empty(shape, first.options().device(c10::kMeta)), std::move(parts), std::move(source)});
}

void WeightStore::Rebuild(const std::function<std::optional<std::string>(const std::string&)>& rename) {
  std::map<std::string, Entry, std::less<>> renamed;
  for (auto& [name, entry] : tensors_) {
    auto new_name = rename(name);
    if (!new_name) continue;
    const auto [it, inserted] = renamed.emplace(*new_name, entry);
    if (!inserted) {
      Fail(ErrorCode::kInvalidArgument, "renaming tensors gives two the name '{}' (one is '{}' from '{}')", *new_name,
           name, entry.source);
    }
  }
  tensors_ = std::move(renamed);
}

void WeightStore::SelectPrefix(std::string_view prefix) {
  Rebuild([&](const std::string& name) -> std::optional<std::string> {
    if (!name.starts_with(prefix)) return std::nullopt;
    return name.substr(prefix.size());
  });
}

void WeightStore::StripPrefix(std::string_view prefix) {
  Rebuild([&](const std::string& name) { return name.starts_with(prefix) ? name.substr(prefix.size()) : name; });
}

void WeightStore::Rename(const KeyMap& map) {
  Rebuild([&](const std::string& name) { return ApplyKeyMap(map, name); });
}

void WeightStore::Rename(const std::function<std::string(const std::string&)>& rename) {
  Rebuild([&](const std::string& name) { return rename(name); });
}

void WeightStore::Erase(std::string_view name) {
  const auto it = tensors_.find(name);
  if (it != tensors_.end()) tensors_.erase(it);
}

bool WeightStore::Contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

const at::Tensor& WeightStore::Get(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) Fail(ErrorCode::kNotFound, "no tensor '{}' in the loaded checkpoint files", name);
  return it->second.tensor;
}

std::vector<std::string> WeightStore::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, entry] : tensors_) names.push_back(name);
  return names;
}

void WeightStore::LoadInto(torch::nn::Module& module, const LoadOptions& options) const {
  std::vector<std::pair<torch::Tensor, const Entry*>> copies;
  std::vector<std::string> missing, misshaped, unexpected;
  std::set<std::string, std::less<>> wanted;
  auto plan = [&](const std::string& name, torch::Tensor& target) {
    wanted.insert(name);
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      missing.push_back(name);
    } else if (it->second.tensor.sizes() != target.sizes()) {
      misshaped.push_back(fmt::format("{} (checkpoint {} in '{}', module {})", name, ShapeText(it->second.tensor),
                                      it->second.source, ShapeText(target)));
    } else {
      copies.emplace_back(target, &it->second);
    }
  };
  for (auto& item : module.named_parameters(/*recurse=*/true)) plan(item.key(), item.value());
  for (auto& item : module.named_buffers(/*recurse=*/true)) plan(item.key(), item.value());
  if (!options.allow_unexpected) {
    for (const auto& [name, entry] : tensors_) {
      if (!wanted.contains(name)) unexpected.push_back(name);
    }
  }

  if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
    std::string message = fmt::format("cannot load the checkpoint into {}:",
                                      options.what.empty() ? module.name() : std::string(options.what));
    AppendProblems(message, "missing", missing);
    AppendProblems(message, "wrong shape", misshaped);
    AppendProblems(message, "unexpected", unexpected);
    throw Error(ErrorCode::kInvalidArgument, message);
  }
  torch::NoGradGuard no_grad;
  // The entry's values converted into `into`: a concatenation part by part, into its rows.
  auto write = [](const Entry& entry, at::Tensor& into) {
    if (entry.parts.empty()) {
      into.copy_(entry.tensor);
      ReleaseFilePages(entry.tensor);
      return;
    }
    std::int64_t row = 0;
    for (const auto& part : entry.parts) {
      into.narrow(0, row, part.size(0)).copy_(part);
      ReleaseFilePages(part);
      row += part.size(0);
    }
  };
  for (auto& [target, entry] : copies) {
    const auto device = options.device.value_or(target.device());
    // A parameter that already has its memory there (a module built without DeferredInit, or a view into a fused
    // matrix) is written in place and stays what it is; a placeholder gets a tensor of its own.
    if (target.device() == device && target.storage().nbytes() >= target.nbytes()) {
      write(*entry, target);
      continue;
    }
    if (entry->parts.empty()) {  // used as it is where it already fits
      auto value = entry->tensor.to(device, target.scalar_type());
      if (!value.is_same(entry->tensor)) ReleaseFilePages(entry->tensor);
      target.set_data(value);
      continue;
    }
    auto value = torch::empty(target.sizes(), torch::TensorOptions().dtype(target.scalar_type()).device(device));
    write(*entry, value);
    target.set_data(value);
  }
}

}  // namespace vidgen::io
