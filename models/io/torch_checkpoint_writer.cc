// torch.save's zip format, written: "<name>/data.pkl" (pickle protocol 2 of an OrderedDict of tensors rebuilt by
// torch._utils._rebuild_tensor_v2 from persistent storages), "<name>/data/<i>" (each tensor's bytes, 64-byte aligned
// as PyTorch aligns them), "<name>/version". Stored, not compressed; CRC-32 from zlib.
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "common/error.h"
#include "models/io/tensor_file.h"

namespace vidgen::io {
namespace {

// Pickle protocol 2, only what a state dict needs.
class Pickler {
 public:
  Pickler() { bytes_ += "\x80\x02"; }
  void Global(const std::string& module, const std::string& name) { bytes_ += "c" + module + "\n" + name + "\n"; }
  void Mark() { bytes_ += '('; }
  void Tuple() { bytes_ += 't'; }
  void EmptyTuple() { bytes_ += ')'; }
  void Reduce() { bytes_ += 'R'; }
  void SetItems() { bytes_ += 'u'; }
  void PersistentId() { bytes_ += 'Q'; }
  void False() { bytes_ += '\x89'; }
  void Stop() { bytes_ += '.'; }
  void String(const std::string& text) {
    bytes_ += 'X';
    Raw<std::uint32_t>(static_cast<std::uint32_t>(text.size()));
    bytes_ += text;
  }
  void Int(std::int64_t value) {
    if (value >= INT32_MIN && value <= INT32_MAX) {
      bytes_ += 'J';
      Raw<std::int32_t>(static_cast<std::int32_t>(value));
    } else {
      bytes_ += '\x8a';  // LONG1: 8 little-endian two's-complement bytes
      bytes_ += '\x08';
      Raw<std::int64_t>(value);
    }
  }
  void IntTuple(at::IntArrayRef values) {
    Mark();
    for (const auto v : values) Int(v);
    Tuple();
  }
  const std::string& bytes() const { return bytes_; }

 private:
  template <typename T>
  void Raw(T value) {
    char raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));  // little-endian hosts only, as torch.save's own byteorder
    bytes_.append(raw, sizeof(T));
  }
  std::string bytes_;
};

const char* StorageType(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "FloatStorage";
    case c10::kDouble: return "DoubleStorage";
    case c10::kHalf: return "HalfStorage";
    case c10::kBFloat16: return "BFloat16Storage";
    case c10::kLong: return "LongStorage";
    case c10::kInt: return "IntStorage";
    case c10::kShort: return "ShortStorage";
    case c10::kChar: return "CharStorage";
    case c10::kByte: return "ByteStorage";
    case c10::kBool: return "BoolStorage";
    default: Fail(ErrorCode::kUnimplemented, "cannot write a {} tensor to a torch checkpoint", c10::toString(dtype));
  }
}

class ZipWriter {
 public:
  explicit ZipWriter(const std::string& path) : out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_) Fail(ErrorCode::kUnavailable, "cannot write '{}'", path);
  }

  void Add(const std::string& name, const std::string& data) {
    const std::uint32_t crc = static_cast<std::uint32_t>(
        crc32(0L, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const std::uint64_t offset = written_;
    // Pad the local header's extra field so the data starts on a 64-byte boundary.
    const std::uint64_t header = 30 + name.size() + 4;
    const std::uint16_t padding = static_cast<std::uint16_t>((64 - (offset + header) % 64) % 64);
    Put<std::uint32_t>(0x04034b50);
    Put<std::uint16_t>(20);  // version needed
    Put<std::uint16_t>(0);   // flags
    Put<std::uint16_t>(0);   // stored
    Put<std::uint16_t>(0);   // time
    Put<std::uint16_t>(0);   // date
    Put<std::uint32_t>(crc);
    Put<std::uint32_t>(static_cast<std::uint32_t>(data.size()));
    Put<std::uint32_t>(static_cast<std::uint32_t>(data.size()));
    Put<std::uint16_t>(static_cast<std::uint16_t>(name.size()));
    Put<std::uint16_t>(static_cast<std::uint16_t>(4 + padding));
    Write(name);
    Put<std::uint16_t>(0x4246);  // "FB": PyTorch's padding record
    Put<std::uint16_t>(padding);
    Write(std::string(padding, 'Z'));
    Write(data);
    entries_.push_back({name, crc, data.size(), offset});
  }

  void Finish() {
    const std::uint64_t directory = written_;
    for (const auto& entry : entries_) {
      Put<std::uint32_t>(0x02014b50);
      Put<std::uint16_t>(20);
      Put<std::uint16_t>(20);
      Put<std::uint16_t>(0);
      Put<std::uint16_t>(0);
      Put<std::uint16_t>(0);
      Put<std::uint16_t>(0);
      Put<std::uint32_t>(entry.crc);
      Put<std::uint32_t>(static_cast<std::uint32_t>(entry.size));
      Put<std::uint32_t>(static_cast<std::uint32_t>(entry.size));
      Put<std::uint16_t>(static_cast<std::uint16_t>(entry.name.size()));
      Put<std::uint16_t>(0);  // extra
      Put<std::uint16_t>(0);  // comment
      Put<std::uint16_t>(0);  // disk
      Put<std::uint16_t>(0);  // internal attributes
      Put<std::uint32_t>(0);  // external attributes
      Put<std::uint32_t>(static_cast<std::uint32_t>(entry.offset));
      Write(entry.name);
    }
    const std::uint64_t size = written_ - directory;
    Put<std::uint32_t>(0x06054b50);
    Put<std::uint16_t>(0);
    Put<std::uint16_t>(0);
    Put<std::uint16_t>(static_cast<std::uint16_t>(entries_.size()));
    Put<std::uint16_t>(static_cast<std::uint16_t>(entries_.size()));
    Put<std::uint32_t>(static_cast<std::uint32_t>(size));
    Put<std::uint32_t>(static_cast<std::uint32_t>(directory));
    Put<std::uint16_t>(0);
    out_.flush();
    if (!out_) Fail(ErrorCode::kUnavailable, "writing the torch checkpoint failed");
    if (written_ > 0xFFFFFFFFull || entries_.size() > 0xFFFF) {
      Fail(ErrorCode::kUnimplemented, "torch checkpoints over 4 GiB or 65535 tensors need zip64, not written here");
    }
  }

 private:
  struct Entry {
    std::string name;
    std::uint32_t crc;
    std::uint64_t size, offset;
  };
  template <typename T>
  void Put(T value) {
    char raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));
    out_.write(raw, sizeof(T));
    written_ += sizeof(T);
  }
  void Write(const std::string& bytes) {
    out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    written_ += bytes.size();
  }
  std::ofstream out_;
  std::uint64_t written_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace

void WriteTorchCheckpoint(const std::string& path, const NamedTensors& tensors) {
  Pickler pickle;
  pickle.Global("collections", "OrderedDict");
  pickle.EmptyTuple();
  pickle.Reduce();
  pickle.Mark();
  std::vector<std::string> storages;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    pickle.String(name);
    pickle.Global("torch._utils", "_rebuild_tensor_v2");
    pickle.Mark();
    // The storage: a persistent id ('storage', type, key, location, numel).
    pickle.Mark();
    pickle.String("storage");
    pickle.Global("torch", StorageType(t.scalar_type()));
    pickle.String(std::to_string(i));
    pickle.String("cpu");
    pickle.Int(t.numel());
    pickle.Tuple();
    pickle.PersistentId();
    pickle.Int(0);  // storage offset
    pickle.IntTuple(t.sizes());
    pickle.IntTuple(t.strides());
    pickle.False();  // requires_grad
    pickle.Global("collections", "OrderedDict");
    pickle.EmptyTuple();
    pickle.Reduce();  // backward hooks
    pickle.Tuple();
    pickle.Reduce();
    storages.emplace_back(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }
  pickle.SetItems();
  pickle.Stop();

  WriteTorchArchive(path, pickle.bytes(), storages);
}

void WriteTorchArchive(const std::string& path, const std::string& pickle, const std::vector<std::string>& storages) {
  const std::string stem = std::filesystem::path(path).stem().string();
  const std::string prefix = (stem.empty() ? "archive" : stem) + "/";
  // Through a temporary name, so `path` is the old file or the whole new one.
  const std::string temporary = path + ".tmp";
  {
    ZipWriter zip(temporary);
    zip.Add(prefix + "data.pkl", pickle);
    for (std::size_t i = 0; i < storages.size(); ++i) zip.Add(prefix + "data/" + std::to_string(i), storages[i]);
    zip.Add(prefix + "version", "3\n");
    zip.Finish();
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) Fail(ErrorCode::kUnavailable, "cannot rename '{}' to '{}': {}", temporary, path, error.message());
}

}  // namespace vidgen::io
