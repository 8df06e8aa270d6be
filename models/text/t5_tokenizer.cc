#include "models/text/t5_tokenizer.h"

#include <array>
#include <cstdlib>

#include <torch/torch.h>

#include "common/error.h"
#include "models/text/sentencepiece.h"

namespace vidgen::text {
namespace {

void AppendUtf8(std::string& out, std::uint32_t code) {
  if (code < 0x80) {
    out.push_back(static_cast<char>(code));
  } else if (code < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code >> 6)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else if (code < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
  }
}

struct NamedEntity {
  std::string_view name;
  std::uint32_t code;
};
// The entities prompts meet in practice; Python's html.unescape knows all of HTML5's.
constexpr std::array<NamedEntity, 12> kEntities = {{{"amp", '&'},
                                                    {"lt", '<'},
                                                    {"gt", '>'},
                                                    {"quot", '"'},
                                                    {"apos", '\''},
                                                    {"nbsp", 0xA0},
                                                    {"ndash", 0x2013},
                                                    {"mdash", 0x2014},
                                                    {"lsquo", 0x2018},
                                                    {"rsquo", 0x2019},
                                                    {"ldquo", 0x201C},
                                                    {"rdquo", 0x201D}}};

std::string UnescapeHtml(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t semicolon = text[i] == '&' ? text.find(';', i) : std::string_view::npos;
    if (semicolon != std::string_view::npos && semicolon - i <= 10) {
      const std::string_view entity = text.substr(i + 1, semicolon - i - 1);
      std::uint32_t code = 0;
      if (entity.size() > 1 && entity[0] == '#') {
        const bool hex = entity[1] == 'x' || entity[1] == 'X';
        const std::string digits(entity.substr(hex ? 2 : 1));
        char* end = nullptr;
        const unsigned long value = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
        if (!digits.empty() && *end == '\0' && value > 0 && value <= 0x10FFFF) code = static_cast<std::uint32_t>(value);
      } else {
        for (const auto& named : kEntities) {
          if (named.name == entity) code = named.code;
        }
      }
      if (code != 0) {
        AppendUtf8(out, code);
        i = semicolon + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

// Bytes of the white-space character at text[i] (Python's str.isspace), or 0.
std::size_t SpaceBytes(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return i + k < text.size() ? static_cast<unsigned char>(text[i + k]) : 0u; };
  const unsigned char c = byte(0);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && (byte(1) == 0x85 || byte(1) == 0xA0)) return 2;  // U+0085, U+00A0
  if (c == 0xE1 && byte(1) == 0x9A && byte(2) == 0x80) return 3;    // U+1680
  if (c == 0xE2 && byte(1) == 0x80 && (byte(2) <= 0x8A || byte(2) == 0xA8 || byte(2) == 0xA9 || byte(2) == 0xAF)) {
    return 3;  // U+2000-200A, 2028, 2029, 202F
  }
  if (c == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;  // U+3000
  return 0;
}

}  // namespace

std::string CleanPrompt(std::string_view text) {
  const std::string unescaped = UnescapeHtml(UnescapeHtml(text));
  std::string out;
  bool pending_space = false;
  for (std::size_t i = 0; i < unescaped.size();) {
    if (const std::size_t n = SpaceBytes(unescaped, i)) {
      pending_space = !out.empty();
      i += n;
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(unescaped[i++]);
  }
  return out;
}

T5Tokenizer::T5Tokenizer(const std::string& model_path, std::int64_t text_len)
    : processor_(std::make_unique<SentencePiece>(model_path)), text_len_(text_len) {
  if (text_len < 1) Fail(ErrorCode::kInvalidArgument, "invalid value for 'text_len': {}", text_len);
}

T5Tokenizer::~T5Tokenizer() = default;

std::vector<int> T5Tokenizer::Ids(std::string_view text) const {
  std::vector<int> ids = processor_->Encode(CleanPrompt(text));
  ids.push_back(kEosId);
  return ids;
}

TokenizedText T5Tokenizer::Encode(const std::vector<std::string>& texts) const {
  const auto batch = static_cast<std::int64_t>(texts.size());
  TokenizedText out{torch::full({batch, text_len_}, kPadId, torch::kLong),
                    torch::zeros({batch, text_len_}, torch::kLong)};
  auto ids_view = out.ids.accessor<std::int64_t, 2>();
  auto mask_view = out.mask.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < batch; ++b) {
    auto ids = Ids(texts[static_cast<std::size_t>(b)]);
    if (static_cast<std::int64_t>(ids.size()) > text_len_) {
      ids.resize(static_cast<std::size_t>(text_len_));
      ids.back() = kEosId;  // truncation keeps </s>, as the reference tokenizer does
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
      ids_view[b][static_cast<std::int64_t>(i)] = ids[i];
      mask_view[b][static_cast<std::int64_t>(i)] = 1;
    }
  }
  return out;
}

int T5Tokenizer::vocab_size() const {
  return processor_->vocab_size();
}

}  // namespace vidgen::text
