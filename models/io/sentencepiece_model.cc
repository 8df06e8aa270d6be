#include "models/io/sentencepiece_model.h"

#include <cstring>
#include <string>

#include "common/error.h"

namespace vidgen::io {
namespace {

// Protocol buffer wire format: just enough to walk ModelProto { 3: normalizer_spec, 5: denormalizer_spec } and
// NormalizerSpec { 2: precompiled_charsmap }.
class WireReader {
 public:
  WireReader(std::span<const std::uint8_t> bytes, std::string_view source) : bytes_(bytes), source_(source) {}

  bool Done() const { return at_ == bytes_.size(); }

  // The next field: its number and, for length-delimited fields, the payload (other kinds are skipped).
  std::uint64_t Next(std::span<const std::uint8_t>& payload) {
    const std::uint64_t tag = Varint();
    const std::uint64_t field = tag >> 3;
    payload = {};
    switch (tag & 7) {
      case 0: Varint(); break;
      case 1: Skip(8); break;
      case 5: Skip(4); break;
      case 2: {
        const std::uint64_t size = Varint();
        if (size > bytes_.size() - at_) Bad("a field runs past the end");
        payload = bytes_.subspan(at_, size);
        at_ += size;
        break;
      }
      default: Bad("a field of an unknown wire type");
    }
    return field;
  }

  std::size_t offset_of(std::span<const std::uint8_t> inner) const {
    return static_cast<std::size_t>(inner.data() - bytes_.data());
  }

 private:
  [[noreturn]] void Bad(std::string_view what) const {
    Fail(ErrorCode::kInvalidArgument, "sentencepiece model '{}' is malformed: {} (at byte {})", source_, what, at_);
  }
  std::uint64_t Varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ == bytes_.size()) Bad("it is truncated");
      const std::uint8_t byte = bytes_[at_++];
      value |= std::uint64_t{byte & 0x7Fu} << shift;
      if (!(byte & 0x80)) return value;
    }
    Bad("a varint longer than 10 bytes");
  }
  void Skip(std::size_t size) {
    if (size > bytes_.size() - at_) Bad("it is truncated");
    at_ += size;
  }

  std::span<const std::uint8_t> bytes_;
  std::string_view source_;
  std::size_t at_ = 0;
};

// darts-clone's unit layout.
std::uint32_t Offset(std::uint32_t unit) {
  return (unit >> 10) << ((unit & (1u << 9)) >> 6);
}
bool HasLeaf(std::uint32_t unit) {
  return (unit >> 8) & 1;
}
std::uint32_t Label(std::uint32_t unit) {
  return unit & ((1u << 31) | 0xFF);
}
std::uint32_t Value(std::uint32_t unit) {
  return unit & ((1u << 31) - 1);
}

// sentencepiece's layout: <trie size: 4 bytes LE><trie units><replacement strings, NUL-terminated>. The walk
// follows commonPrefixSearch: from a node's base, child b ^ c for an input byte c; a child whose label is c moves on
// to child ^ offset, and a leaf there holds the replacement's position.
void CheckCharsMap(std::span<const std::uint8_t> map, std::string_view source, std::string_view spec) {
  auto bad = [&](std::string_view what) {
    Fail(ErrorCode::kInvalidArgument, "sentencepiece model '{}': the {} character map is corrupt: {}", source, spec,
         what);
  };
  if (map.empty()) return;  // no rules
  if (map.size() <= 4) bad("it is shorter than its length prefix");
  // The walk costs 256 steps a node: bound the nodes (the released maps are about 250 KB).
  if (map.size() > kMaxCharsMapBytes) bad(fmt::format("it is {} bytes, over the {}-byte limit", map.size(), kMaxCharsMapBytes));
  std::uint32_t trie_bytes = 0;
  std::memcpy(&trie_bytes, map.data(), 4);
  if (trie_bytes > map.size() - 4 || trie_bytes % 4 != 0 || trie_bytes == 0) {
    bad(fmt::format("its trie of {} bytes does not fit the {}-byte map in whole units", trie_bytes, map.size()));
  }
  const std::size_t units = trie_bytes / 4;
  auto unit = [&](std::size_t i) {
    std::uint32_t u = 0;
    std::memcpy(&u, map.data() + 4 + 4 * i, 4);
    return u;
  };
  const auto strings = map.subspan(4 + trie_bytes);

  std::vector<bool> visited(units, false);
  std::vector<std::size_t> bases = {Offset(unit(0))};
  while (!bases.empty()) {
    const std::size_t base = bases.back();
    bases.pop_back();
    if ((base | 0xFF) >= units) bad(fmt::format("a node's children at {} lie outside its {} units", base, units));
    if (visited[base]) continue;
    visited[base] = true;
    for (std::uint32_t c = 0; c < 256; ++c) {
      const std::size_t child = base ^ c;
      const std::uint32_t u = unit(child);
      if (Label(u) != c) continue;
      const std::size_t next = child ^ Offset(u);
      if (HasLeaf(u)) {
        if (next >= units) bad(fmt::format("a leaf at {} lies outside its {} units", next, units));
        const std::size_t at = Value(unit(next));
        if (at >= strings.size()) bad(fmt::format("a replacement at {} lies past its {} bytes", at, strings.size()));
        const std::size_t room = std::min(strings.size() - at, kMaxNormalizedReplacement + 1);
        if (!std::memchr(strings.data() + at, '\0', room)) {
          bad(fmt::format("the replacement at {} does not end within {} bytes", at, kMaxNormalizedReplacement));
        }
      }
      bases.push_back(next);  // its bounds are checked when it is walked
    }
  }
}

}  // namespace

std::vector<CharsMapSpan> CheckSentencePieceModel(std::span<const std::uint8_t> bytes, std::string_view source) {
  if (bytes.size() > kMaxSentencePieceModelBytes) {
    Fail(ErrorCode::kInvalidArgument, "sentencepiece model '{}' is {} bytes, over the {}-byte limit", source,
         bytes.size(), kMaxSentencePieceModelBytes);
  }
  std::vector<CharsMapSpan> checked;
  WireReader model(bytes, source);
  while (!model.Done()) {
    std::span<const std::uint8_t> spec;
    const auto field = model.Next(spec);
    if (field != 3 && field != 5) continue;
    WireReader normalizer(spec, source);
    while (!normalizer.Done()) {
      std::span<const std::uint8_t> map;
      if (normalizer.Next(map) != 2) continue;
      CheckCharsMap(map, source, field == 3 ? "normaliser's" : "denormaliser's");
      checked.push_back({model.offset_of(spec) + normalizer.offset_of(map), map.size()});
    }
  }
  return checked;
}

}  // namespace vidgen::io
