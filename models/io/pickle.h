// A restricted unpickler for the data.pkl inside torch.save archives, LibTorch-free. It builds only plain data
// (None, bools, ints, floats, strings, lists, tuples, dicts/OrderedDicts) and references to tensors and their
// storages. Any other global is refused with an error that names it: nothing in a checkpoint is ever run.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "models/io/dtype.h"

namespace vidgen::io::pickle {

struct List;
struct Dict;

// A storage that the pickle refers to by key; its bytes live in the archive entry `data/<key>`.
struct StorageRef {
  std::string key;
  DType dtype = DType::kF32;
  std::uint64_t numel = 0;
};

// What torch._utils._rebuild_tensor_v2 / _rebuild_parameter would have built.
struct TensorRef {
  StorageRef storage;
  std::int64_t offset = 0;  // in elements
  std::vector<std::int64_t> sizes;
  std::vector<std::int64_t> strides;
};

// One of the allowed globals, as a value on the stack before it is called.
struct Global {
  std::string module;
  std::string name;
};

// Containers are owned by their Document and referred to by pointer: the memo lets a pickle share one object
// between places, or even nest it in itself, and owning them apart from the tree keeps destruction flat.
using Value = std::variant<std::monostate, bool, std::int64_t, double, std::string, List*, Dict*,
                           std::shared_ptr<const TensorRef>, StorageRef, Global>;

// Lists and tuples.
struct List {
  bool is_tuple = false;
  std::vector<Value> items;
};

// Dicts and OrderedDicts, in insertion order.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  // Replaces the value of an equal key, as Python does.
  void Set(Value key, Value value);
  // nullptr when `key` is not a string key of this dict.
  const Value* Find(std::string_view key) const;

 private:
  std::unordered_map<std::string, std::size_t> string_keys_;
};

// The result of unpickling: a root value and the containers it refers to.
class Document {
 public:
  const Value& root() const { return root_; }

 private:
  friend class Unpickler;
  std::deque<List> lists_;  // deque: elements keep their address as it grows
  std::deque<Dict> dicts_;
  Value root_;
};

// Unpickles `bytes`. Throws Error(INVALID_ARGUMENT) naming `source` for a malformed pickle, an unsupported opcode,
// or a global that is not on the allowed list.
Document Load(std::span<const std::uint8_t> bytes, std::string_view source);

}  // namespace vidgen::io::pickle
