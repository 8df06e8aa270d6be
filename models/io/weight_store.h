// WeightStore: named tensors gathered from one or more checkpoint files, renamed to a module's parameter names and
// loaded into it with a report of everything that does not fit.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace torch::nn {
class Module;
}

namespace vidgen::io {

// A key map: pairs of (checkpoint spelling, module spelling) substituted in one left-to-right pass over each name,
// the first pair that matches at a position winning. One pass lets a map swap names ("norm2" <-> "norm3").
using KeyMap = std::vector<std::pair<std::string, std::string>>;
std::string ApplyKeyMap(const KeyMap& map, std::string_view name);
// A key map written as a table: a pair a line, its two spellings apart by spaces; '#' starts a comment.
KeyMap KeyTable(std::string_view table);
// The map the other way: swapped pairs, longest pattern first so that prefixes do not shadow.
KeyMap InverseKeyMap(const KeyMap& map);

class WeightStore {
 public:
  // Adds every tensor of `path`: a .safetensors file, a sharded `*.safetensors.index.json`, or a torch.save archive
  // (.pt, .pth, .bin). Throws Error naming the file on a bad file, and naming both files when a tensor name is
  // already in the store.
  void AddFile(const std::string& path);
  // Adds a model's weights in folder `dir` named `stem`: its sharded index `<stem>.safetensors.index.json` when there
  // is one, else every `<stem>*.safetensors` in name order. Throws Error(NOT_FOUND) naming the folder when none.
  void AddSafetensors(const std::string& dir, const std::string& stem);
  // Adds one tensor; `source` names where it came from in errors.
  void Add(std::string name, at::Tensor tensor, std::string source);
  // Adds the concatenation of `parts` along dimension 0 (a fused projection of separate checkpoint tensors), which
  // is never made: LoadInto writes the parts one by one into their rows of the parameter, and Get gives a tensor of
  // its shape and the first part's dtype on the meta device. Throws Error(INVALID_ARGUMENT) naming `source` when the
  // parts do not line up.
  void AddConcatenation(std::string name, std::vector<at::Tensor> parts, std::string source);

  // Keeps only names under `prefix` and removes the prefix from them ("module." of HunyuanVideo's checkpoint).
  void SelectPrefix(std::string_view prefix);
  // Removes `prefix` from every name that has it, keeping the others ("vae." in some VAE files).
  void StripPrefix(std::string_view prefix);
  // Renames every tensor through `map` or `rename`; throws Error(INVALID_ARGUMENT) when two names collide.
  void Rename(const KeyMap& map);
  void Rename(const std::function<std::string(const std::string&)>& rename);
  // Drops a tensor if present (a tied copy, say).
  void Erase(std::string_view name);

  bool Contains(std::string_view name) const;
  // Throws Error(NOT_FOUND) naming the tensor.
  const at::Tensor& Get(std::string_view name) const;
  std::vector<std::string> Names() const;
  std::size_t size() const { return tensors_.size(); }

  struct LoadOptions {
    // Names in the store that the module does not have are an error unless this is set.
    bool allow_unexpected = false;
    // What the module is, for errors ("the Wan DiT"); its C++ name when empty.
    std::string_view what;
    // Where the parameters go; where each already is when unset.
    std::optional<c10::Device> device;
  };
  // Gives every parameter and buffer of `module` (placeholders of layers::DeferredInit included) the tensor of the
  // same name, converted to the parameter's dtype and to the device, one tensor at a time: a tensor that already
  // fits is used as it is, straight from the mapped file, and the file pages of one that is converted are let go,
  // so that loading holds about the final weights and one tensor more. A parameter that already has its memory on
  // the device (built without DeferredInit, or a view into a fused matrix) is written in place. Checks everything first
  // and throws one Error(INVALID_ARGUMENT) that lists every missing, unexpected and mis-shaped name, in which case the
  // module is left untouched.
  void LoadInto(torch::nn::Module& module, const LoadOptions& options) const;
  void LoadInto(torch::nn::Module& module) const { LoadInto(module, LoadOptions{}); }

 private:
  struct Entry {
    at::Tensor tensor;              // a concatenation's: its shape on the meta device
    std::vector<at::Tensor> parts;  // a concatenation's parts, in order
    std::string source;
  };
  void Insert(std::string name, Entry entry);
  void Rebuild(const std::function<std::optional<std::string>(const std::string&)>& rename);

  std::map<std::string, Entry, std::less<>> tensors_;
};

}  // namespace vidgen::io
