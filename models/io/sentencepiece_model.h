// The parts of a sentencepiece `.model` file (a serialized ModelProto) that libsentencepiece trusts without checking,
// checked before it sees them: the normaliser's precompiled character map, a darts-clone double-array trie whose
// units the normaliser indexes without bounds checks, over replacement strings it reads as C strings. A corrupted
// map would crash a worker on its first prompt, or make every prompt take a minute. LibTorch-free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace vidgen::io {

// sentencepiece models are a few MB (umT5's is 4.3 MB).
inline constexpr std::size_t kMaxSentencePieceModelBytes = std::size_t{64} << 20;
// The released normalisation rules compile to maps of about 250 KB.
inline constexpr std::size_t kMaxCharsMapBytes = std::size_t{4} << 20;
// The longest replacement of the released normalisation rules is 33 bytes.
inline constexpr std::size_t kMaxNormalizedReplacement = 256;

// Where a character map lies in the file, for what the check looked at.
struct CharsMapSpan {
  std::size_t offset = 0, size = 0;
};

// Walks the ModelProto's normalizer_spec and denormalizer_spec and checks each precompiled_charsmap: its length
// prefix, a trie of whole 4-byte units, every unit any input can reach inside the trie (all 256 children of each
// reachable node), and every replacement a leaf names inside the map, NUL-terminated within
// kMaxNormalizedReplacement bytes. Returns the maps it checked. Throws Error(INVALID_ARGUMENT) naming `source`.
std::vector<CharsMapSpan> CheckSentencePieceModel(std::span<const std::uint8_t> bytes, std::string_view source);

}  // namespace vidgen::io
