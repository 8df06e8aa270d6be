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

// Strings are shared, never copied, and hashed once when read: a pickle can refer to one string from many places
// (DUP, the memo), and each reference must cost what a pointer costs, also as a dict key.
struct PickleString {
  explicit PickleString(std::string value) : text(std::move(value)), hash(std::hash<std::string>{}(text)) {}
  std::string text;
  std::size_t hash;
};
using SharedString = std::shared_ptr<const PickleString>;

// A storage that the pickle refers to by key; its bytes live in the archive entry `data/<key>`.
struct StorageRef {
  SharedString key;
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
using Value = std::variant<std::monostate, bool, std::int64_t, double, SharedString, List*, Dict*,
                           std::shared_ptr<const TensorRef>, StorageRef, std::shared_ptr<const Global>>;

// The string a value holds, or nullptr.
inline const std::string* AsString(const Value& value) {
  const auto* shared = std::get_if<SharedString>(&value);
  return shared ? &(*shared)->text : nullptr;
}

// Lists and tuples.
struct List {
  bool is_tuple = false;
  std::vector<Value> items;
};

// Dicts and OrderedDicts, in insertion order.
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  // Replaces the value of an equal key, as Python does; in constant time for string and integer keys. Returns false
  // when the dict would hold more than kMaxOtherKeys keys of other kinds (compared one by one).
  bool Set(Value key, Value value);
  // nullptr when `key` is not a string key of this dict.
  const Value* Find(std::string_view key) const;

  static constexpr std::size_t kMaxOtherKeys = 64;

 private:
  struct KeyHash {
    std::size_t operator()(const PickleString* key) const { return key->hash; }
  };
  struct KeyEqual {
    bool operator()(const PickleString* a, const PickleString* b) const { return a == b || a->text == b->text; }
  };
  std::unordered_map<const PickleString*, std::size_t, KeyHash, KeyEqual> string_keys_;  // the items' own keys
  std::unordered_map<std::int64_t, std::size_t> int_keys_;
  std::size_t other_keys_ = 0;
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

// Bounds on what one pickle may build, far above any state dict's (a few hundred thousand values for the largest
// checkpoints) and far below what would exhaust a worker: values pushed (each costs tens of bytes), and nesting.
inline constexpr std::uint64_t kMaxValues = 1'000'000;
inline constexpr std::size_t kMaxPickleBytes = std::size_t{256} << 20;

// Unpickles `bytes` in time and memory linear in their size. Throws Error(INVALID_ARGUMENT) naming `source` for a
// malformed pickle, an unsupported opcode, a global that is not on the allowed list, or one past the bounds above.
Document Load(std::span<const std::uint8_t> bytes, std::string_view source);

}  // namespace vidgen::io::pickle
