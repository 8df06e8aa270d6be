// vidgen-inspect: lists the tensors of checkpoint files (safetensors, sharded indexes, torch.save archives) the way
// vidgen's loaders read them: names, dtypes, shapes and, on request, value statistics.
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/error.h"
#include "common/tool_main.h"
#include "models/io/tensor_file.h"
#include "models/io/weight_store.h"

namespace {

bool IsCheckpoint(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  for (const char* suffix : {".safetensors", ".index.json", ".pt", ".pth", ".bin"}) {
    if (name.ends_with(suffix)) return true;
  }
  return false;
}

void Inspect(const std::string& path, bool stats, const std::string& filter) {
  vidgen::io::WeightStore store;
  store.AddFile(path);
  std::uint64_t bytes = 0;
  fmt::print("{}: {} tensors\n", path, store.size());
  if (path.ends_with(".safetensors")) {
    const vidgen::io::SafetensorsFile file(path);
    for (const auto& [key, value] : file.metadata()) {
      fmt::print("  metadata {} = {}\n", key, value.size() > 120 ? value.substr(0, 117) + "..." : value);
    }
  }
  for (const auto& name : store.Names()) {
    const auto& tensor = store.Get(name);
    bytes += tensor.nbytes();
    if (!filter.empty() && name.find(filter) == std::string::npos) continue;
    fmt::print("  {:<60} {:<9} [{}]", name, c10::toString(tensor.scalar_type()), fmt::join(tensor.sizes(), ", "));
    if (stats && tensor.numel() > 0 && tensor.is_floating_point()) {
      const auto values = tensor.to(torch::kFloat64);
      fmt::print("  mean {:+.4e} std {:.4e} min {:+.4e} max {:+.4e}", values.mean().item<double>(),
                 values.numel() > 1 ? values.std().item<double>() : 0.0, values.min().item<double>(),
                 values.max().item<double>());
    }
    fmt::print("\n");
  }
  fmt::print("  total {:.2f} MiB\n", static_cast<double>(bytes) / (1 << 20));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Lists the tensors in checkpoint files or folders as vidgen reads them."};
  std::vector<std::string> paths;
  bool stats = false;
  std::string filter;
  app.add_option("paths", paths, "checkpoint files or folders")->required();
  app.add_flag("--stats", stats, "print mean, std, min and max of each floating-point tensor");
  app.add_option("--filter", filter, "list only tensors whose name contains this text");
  CLI11_PARSE(app, argc, argv);

  return vidgen::RunTool("vidgen-inspect", [&] {
    for (const auto& path : paths) {
      if (!std::filesystem::is_directory(path)) {
        Inspect(path, stats, filter);
        continue;
      }
      std::vector<std::string> files;
      for (const auto& entry : std::filesystem::recursive_directory_iterator(path)) {
        if (entry.is_regular_file() && IsCheckpoint(entry.path())) files.push_back(entry.path().string());
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) Inspect(file, stats, filter);
    }
    return 0;
  });
}
