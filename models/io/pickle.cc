#include "models/io/pickle.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <optional>

#include "common/error.h"
#include "models/io/safetensors_format.h"

namespace vidgen::io::pickle {
namespace {

// The globals that torch.save writes for state dicts. Everything else is refused.
struct StorageType {
  std::string_view name;
  DType dtype;
};
constexpr std::array<StorageType, 10> kStorageTypes = {{
    {"DoubleStorage", DType::kF64},
    {"FloatStorage", DType::kF32},
    {"HalfStorage", DType::kF16},
    {"BFloat16Storage", DType::kBF16},
    {"LongStorage", DType::kI64},
    {"IntStorage", DType::kI32},
    {"ShortStorage", DType::kI16},
    {"CharStorage", DType::kI8},
    {"ByteStorage", DType::kU8},
    {"BoolStorage", DType::kBool},
}};
constexpr std::array<std::string_view, 5> kAllowedCalls = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
};

std::optional<DType> StorageDType(const Global& global) {
  if (global.module != "torch") return std::nullopt;
  for (const auto& type : kStorageTypes) {
    if (type.name == global.name) return type.dtype;
  }
  return std::nullopt;
}

// Pickle opcodes (Python's Lib/pickletools.py documents them).
enum Opcode : std::uint8_t {
  kMark = '(',
  kStop = '.',
  kPop = '0',
  kPopMark = '1',
  kDup = '2',
  kBinFloat = 'G',
  kBinInt = 'J',
  kBinInt1 = 'K',
  kBinInt2 = 'M',
  kNone = 'N',
  kBinPersId = 'Q',
  kReduce = 'R',
  kBinString = 'T',
  kShortBinString = 'U',
  kBinUnicode = 'X',
  kEmptyList = ']',
  kAppend = 'a',
  kBuild = 'b',
  kGlobal = 'c',
  kAppends = 'e',
  kBinGet = 'h',
  kLongBinGet = 'j',
  kList = 'l',
  kBinPut = 'q',
  kLongBinPut = 'r',
  kSetItem = 's',
  kTuple = 't',
  kSetItems = 'u',
  kEmptyDict = '}',
  kDict = 'd',
  kEmptyTuple = ')',
  kBinBytes = 'B',
  kShortBinBytes = 'C',
  kProto = 0x80,
  kNewObj = 0x81,
  kTuple1 = 0x85,
  kTuple2 = 0x86,
  kTuple3 = 0x87,
  kNewTrue = 0x88,
  kNewFalse = 0x89,
  kLong1 = 0x8a,
  kShortBinUnicode = 0x8c,
  kBinUnicode8 = 0x8d,
  kStackGlobal = 0x93,
  kMemoize = 0x94,
  kFrame = 0x95,
};

// Keys other than strings and integers (floats, bools, None; tuples are compared by identity, as nothing we load
// uses them).
bool SameOtherKey(const Value& a, const Value& b) {
  if (a.index() != b.index()) return false;
  if (const auto* d = std::get_if<double>(&a)) return *d == std::get<double>(b);
  if (const auto* f = std::get_if<bool>(&a)) return *f == std::get<bool>(b);
  if (const auto* l = std::get_if<List*>(&a)) return *l == std::get<List*>(b);
  return std::holds_alternative<std::monostate>(a);
}

}  // namespace

class Unpickler {
 public:
  Unpickler(std::span<const std::uint8_t> bytes, std::string_view source) : bytes_(bytes), source_(source) {
    if (bytes.size() > kMaxPickleBytes) {
      Fail(ErrorCode::kInvalidArgument, "pickle '{}' is {} bytes, over the {}-byte limit", source, bytes.size(),
           kMaxPickleBytes);
    }
  }

  Document Run() {
    while (true) {
      const std::uint64_t at = position_;
      const std::uint8_t opcode = Next<std::uint8_t>();
      if (opcode == kStop) break;
      Step(opcode, at);
    }
    if (stack_.size() != 1 || !marks_.empty()) Bad("the pickle does not end with exactly one value");
    document_.root_ = std::move(stack_.back());
    return std::move(document_);
  }

 private:
  [[noreturn]] void Bad(std::string_view what) const {
    Fail(ErrorCode::kInvalidArgument, "pickle '{}' is malformed: {} (at byte {})", source_, what, position_);
  }

  template <typename T>
  T Next() {
    if (bytes_.size() - position_ < sizeof(T)) Bad("it is truncated");
    T value;
    std::memcpy(&value, bytes_.data() + position_, sizeof(T));
    position_ += sizeof(T);
    return value;
  }
  SharedString NextBytes(std::uint64_t size) {
    if (bytes_.size() - position_ < size) Bad("it is truncated");
    auto text = std::make_shared<const PickleString>(
        std::string(reinterpret_cast<const char*>(bytes_.data() + position_), size));
    position_ += size;
    return text;
  }
  // GLOBAL's module and name lines; every allowed name is short.
  std::string NextLine() {
    std::string line;
    while (true) {
      const auto c = static_cast<char>(Next<std::uint8_t>());
      if (c == '\n') return line;
      if (line.size() == 256) Bad("a global's name is longer than 256 bytes");
      line.push_back(c);
    }
  }

  // Every value comes onto the stack first: counting pushes bounds everything a pickle builds.
  void Push(Value value) {
    if (++values_ > kMaxValues) {
      Fail(ErrorCode::kInvalidArgument, "pickle '{}' builds more than {} values", source_, kMaxValues);
    }
    stack_.push_back(std::move(value));
  }

  Value Pop() {
    if (stack_.size() <= Floor()) Bad("the stack is empty");
    Value value = std::move(stack_.back());
    stack_.pop_back();
    return value;
  }
  Value& Top() {
    if (stack_.size() <= Floor()) Bad("the stack is empty");
    return stack_.back();
  }
  std::size_t Floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Value> PopMark() {
    if (marks_.empty()) Bad("no mark to pop to");
    std::vector<Value> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back())),
                             std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }

  template <typename T>
  T* As(const Value& value, std::string_view what) {
    const auto* p = std::get_if<T*>(&value);
    if (!p) Bad(fmt::format("{} has the wrong type", what));
    return *p;
  }
  List* NewList(bool is_tuple, std::vector<Value> items = {}) {
    auto& list = document_.lists_.emplace_back();
    list.is_tuple = is_tuple;
    list.items = std::move(items);
    return &list;
  }
  Dict* NewDict() { return &document_.dicts_.emplace_back(); }
  List* MutableList(const Value& value) {
    auto list = As<List>(value, "an append target");
    if (list->is_tuple) Bad("append to a tuple");
    return list;
  }

  void SetItem(Dict* dict, Value key, Value value) {
    if (!dict->Set(std::move(key), std::move(value))) {
      Bad(fmt::format("a dict with more than {} keys that are neither strings nor integers", Dict::kMaxOtherKeys));
    }
  }

  // Memo indices come from the file and may be sparse; each entry is a value, counted like the stack's.
  void Memoize(std::uint64_t index) {
    if (++values_ > kMaxValues) {
      Fail(ErrorCode::kInvalidArgument, "pickle '{}' builds more than {} values", source_, kMaxValues);
    }
    memo_.insert_or_assign(index, Top());
  }
  void Recall(std::uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) Bad(fmt::format("memo entry {} was never stored", index));
    Push(Value(it->second));
  }

  void PushGlobal(std::string module, std::string name) {
    auto global = std::make_shared<const Global>(Global{std::move(module), std::move(name)});
    const std::string full = global->module + "." + global->name;
    const bool allowed = StorageDType(*global).has_value() ||
                         std::find(kAllowedCalls.begin(), kAllowedCalls.end(), full) != kAllowedCalls.end();
    if (!allowed) {
      Fail(ErrorCode::kInvalidArgument,
           "pickle '{}' refers to the global '{}', which is not allowed: vidgen loads only tensors and plain data "
           "from checkpoints and never runs code from them",
           source_, full);
    }
    Push(std::move(global));
  }

  void Call(const Value& callable, const List* args) {
    const auto* global = std::get_if<std::shared_ptr<const Global>>(&callable);
    if (!global || !args->is_tuple) Bad("call of something that is not an allowed global");
    const std::string full = (*global)->module + "." + (*global)->name;
    auto& a = args->items;
    if (full == "collections.OrderedDict") {
      if (!a.empty()) Bad("OrderedDict called with arguments");
      Push(NewDict());
    } else if (full == "torch._utils._rebuild_tensor" || full == "torch._utils._rebuild_tensor_v2") {
      if (a.size() < 4) Bad(full + " called with too few arguments");
      auto tensor = std::make_shared<TensorRef>();
      const auto* storage = std::get_if<StorageRef>(&a[0]);
      const auto* offset = std::get_if<std::int64_t>(&a[1]);
      if (!storage || !offset) Bad(full + " called without a storage and an offset");
      tensor->storage = *storage;
      tensor->offset = *offset;
      tensor->sizes = Ints(a[2], "tensor sizes");
      tensor->strides = Ints(a[3], "tensor strides");
      if (tensor->sizes.size() != tensor->strides.size()) Bad("tensor sizes and strides differ in length");
      if (tensor->sizes.size() > kMaxTensorDims) Bad(fmt::format("a tensor of more than {} dimensions", kMaxTensorDims));
      Push(std::shared_ptr<const TensorRef>(std::move(tensor)));
    } else if (full == "torch._utils._rebuild_parameter" || full == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || !std::holds_alternative<std::shared_ptr<const TensorRef>>(a[0])) {
        Bad(full + " called without a tensor");
      }
      Push(a[0]);
    } else {
      Bad("call of the storage type " + full);
    }
  }

  std::vector<std::int64_t> Ints(const Value& value, std::string_view what) {
    std::vector<std::int64_t> ints;
    for (const auto& item : As<List>(value, what)->items) {
      const auto* i = std::get_if<std::int64_t>(&item);
      if (!i) Bad(fmt::format("{} are not integers", what));
      ints.push_back(*i);
    }
    return ints;
  }

  // torch.save's persistent ids: ('storage', storage_type, key, location, numel).
  StorageRef PersistentStorage(const Value& pid) {
    const List* tuple = As<List>(pid, "a persistent id");
    const auto& a = tuple->items;
    const auto* tag = a.empty() ? nullptr : AsString(a[0]);
    if (!tag || *tag != "storage" || a.size() != 5) Bad("a persistent id that is not a storage");
    const auto* type = std::get_if<std::shared_ptr<const Global>>(&a[1]);
    const auto* key = std::get_if<SharedString>(&a[2]);
    const auto* numel = std::get_if<std::int64_t>(&a[4]);
    const auto dtype = type ? StorageDType(**type) : std::nullopt;
    if (!dtype || !key || !numel || *numel < 0) Bad("a storage persistent id with bad fields");
    return StorageRef{*key, *dtype, static_cast<std::uint64_t>(*numel)};
  }

  void Step(std::uint8_t opcode, std::uint64_t at) {
    switch (opcode) {
      case kProto: Next<std::uint8_t>(); break;
      case kFrame: Next<std::uint64_t>(); break;
      case kMark: marks_.push_back(stack_.size()); break;
      case kPop: Pop(); break;
      case kPopMark: PopMark(); break;
      case kDup: Push(Value(Top())); break;
      case kNone: Push(std::monostate{}); break;
      case kNewTrue: Push(true); break;
      case kNewFalse: Push(false); break;
      case kBinInt: Push(std::int64_t{Next<std::int32_t>()}); break;
      case kBinInt1: Push(std::int64_t{Next<std::uint8_t>()}); break;
      case kBinInt2: Push(std::int64_t{Next<std::uint16_t>()}); break;
      case kLong1: {
        const auto size = Next<std::uint8_t>();
        if (size > 8) Bad("an integer wider than 64 bits");
        const std::string digits = NextBytes(size)->text;
        std::uint64_t value = 0;
        for (std::size_t i = size; i-- > 0;) value = (value << 8) | static_cast<std::uint8_t>(digits[i]);
        if (size > 0 && size < 8 && (static_cast<std::uint8_t>(digits[size - 1]) & 0x80)) {
          value |= ~std::uint64_t{0} << (8 * size);  // sign-extend
        }
        Push(static_cast<std::int64_t>(value));
        break;
      }
      case kBinFloat: {
        const auto raw = __builtin_bswap64(Next<std::uint64_t>());  // big-endian on the wire
        Push(std::bit_cast<double>(raw));
        break;
      }
      case kShortBinUnicode:
      case kShortBinString:
      case kShortBinBytes: Push(NextBytes(Next<std::uint8_t>())); break;
      case kBinUnicode:
      case kBinString:
      case kBinBytes: Push(NextBytes(Next<std::uint32_t>())); break;
      case kBinUnicode8: Push(NextBytes(Next<std::uint64_t>())); break;
      case kEmptyList: Push(NewList(/*is_tuple=*/false)); break;
      case kEmptyTuple: Push(NewList(/*is_tuple=*/true)); break;
      case kEmptyDict: Push(NewDict()); break;
      case kTuple1:
      case kTuple2:
      case kTuple3: {
        const std::size_t n = opcode - kTuple1 + 1;
        if (stack_.size() < Floor() + n) Bad("the stack is empty");
        std::vector<Value> items(std::make_move_iterator(stack_.end() - static_cast<std::ptrdiff_t>(n)),
                                 std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - n);
        Push(NewList(/*is_tuple=*/true, std::move(items)));
        break;
      }
      case kTuple: Push(NewList(/*is_tuple=*/true, PopMark())); break;
      case kList: Push(NewList(/*is_tuple=*/false, PopMark())); break;
      case kDict: {
        auto items = PopMark();
        if (items.size() % 2 != 0) Bad("a dict with an odd number of items");
        Dict* dict = NewDict();
        for (std::size_t i = 0; i < items.size(); i += 2) SetItem(dict, std::move(items[i]), std::move(items[i + 1]));
        Push(dict);
        break;
      }
      case kAppend: {
        Value item = Pop();
        MutableList(Top())->items.push_back(std::move(item));
        break;
      }
      case kAppends: {
        auto items = PopMark();
        auto& list = MutableList(Top())->items;
        list.insert(list.end(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
        break;
      }
      case kSetItem: {
        Value value = Pop();
        Value key = Pop();
        SetItem(As<Dict>(Top(), "a setitem target"), std::move(key), std::move(value));
        break;
      }
      case kSetItems: {
        auto items = PopMark();
        if (items.size() % 2 != 0) Bad("setitems with an odd number of items");
        Dict* dict = As<Dict>(Top(), "a setitems target");
        for (std::size_t i = 0; i < items.size(); i += 2) SetItem(dict, std::move(items[i]), std::move(items[i + 1]));
        break;
      }
      case kBinPut: Memoize(Next<std::uint8_t>()); break;
      case kLongBinPut: Memoize(Next<std::uint32_t>()); break;
      case kMemoize: Memoize(memo_.size()); break;
      case kBinGet: Recall(Next<std::uint8_t>()); break;
      case kLongBinGet: Recall(Next<std::uint32_t>()); break;
      case kGlobal: {
        std::string module = NextLine();
        std::string name = NextLine();
        PushGlobal(std::move(module), std::move(name));
        break;
      }
      case kStackGlobal: {
        Value name = Pop();
        Value module = Pop();
        const auto* m = AsString(module);
        const auto* n = AsString(name);
        if (!m || !n) Bad("STACK_GLOBAL without two strings");
        PushGlobal(*m, *n);
        break;
      }
      case kReduce:
      case kNewObj: {
        const List* args = As<List>(Pop(), "call arguments");
        const Value callable = Pop();
        Call(callable, args);
        break;
      }
      case kBuild: {
        // OrderedDict state dicts carry attributes such as `_metadata`; they describe nothing we load.
        Pop();
        As<Dict>(Top(), "a BUILD target");
        break;
      }
      case kBinPersId: Push(PersistentStorage(Pop())); break;
      default:
        Fail(ErrorCode::kInvalidArgument, "pickle '{}' uses opcode 0x{:02x} at byte {}, which vidgen does not support",
             source_, opcode, at);
    }
  }

  std::span<const std::uint8_t> bytes_;
  std::string_view source_;
  std::uint64_t position_ = 0;
  std::vector<Value> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Value> memo_;
  std::uint64_t values_ = 0;
  Document document_;
};

bool Dict::Set(Value key, Value value) {
  if (const auto* text = std::get_if<SharedString>(&key)) {
    const auto [it, inserted] = string_keys_.emplace(text->get(), items.size());
    if (!inserted) {
      items[it->second].second = std::move(value);
      return true;
    }
  } else if (const auto* number = std::get_if<std::int64_t>(&key)) {
    const auto [it, inserted] = int_keys_.emplace(*number, items.size());
    if (!inserted) {
      items[it->second].second = std::move(value);
      return true;
    }
  } else {
    for (auto& item : items) {
      if (SameOtherKey(item.first, key)) {
        item.second = std::move(value);
        return true;
      }
    }
    if (++other_keys_ > kMaxOtherKeys) return false;
  }
  items.emplace_back(std::move(key), std::move(value));
  return true;
}

const Value* Dict::Find(std::string_view key) const {
  const PickleString probe{std::string(key)};
  const auto it = string_keys_.find(&probe);
  return it == string_keys_.end() ? nullptr : &items[it->second].second;
}

Document Load(std::span<const std::uint8_t> bytes, std::string_view source) {
  return Unpickler(bytes, source).Run();
}

}  // namespace vidgen::io::pickle
