// A complete tiny HunyuanVideo checkpoint for tests: the golden transformer beside a random tiny VAE, LLaMA and CLIP
// text encoders and their tokenizer files, written in the released layouts and sized to fit the transformer.
#pragma once

#include <filesystem>

namespace vidgen::testing {

// The LLaMA-3 pre-tokenizer regex, as its tokenizer.json spells it.
extern const char* const kLlama3Pattern;

// Writes the checkpoint into `dir` (created) and returns it. Throws when the golden transformer is missing.
std::filesystem::path MakeTinyHunyuanCheckpoint(const std::filesystem::path& dir);

}  // namespace vidgen::testing
