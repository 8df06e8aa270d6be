#include "models/text/bpe.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <limits>

#include "common/error.h"

namespace vidgen::text {
namespace {

std::string Utf8(char32_t code) {
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

// The UTF-8 characters of a string (symbols before any merge).
std::vector<std::string> Characters(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    out.push_back(text.substr(i, length));
    i += length;
  }
  return out;
}

}  // namespace

const std::array<std::string, 256>& ByteSymbols() {
  static const std::array<std::string, 256> symbols = [] {
    // Printable Latin-1 bytes stand for themselves; the others map to 256, 257, ... in byte order.
    std::array<std::string, 256> table;
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      table[static_cast<std::size_t>(b)] = Utf8(printable ? static_cast<char32_t>(b) : next++);
    }
    return table;
  }();
  return symbols;
}

namespace {

// BERT's _is_chinese_char: the CJK Unified Ideographs blocks and their extensions and compatibility forms.
bool IsCjkIdeograph(UChar32 c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BERT's _is_whitespace: the four ASCII spaces and the Zs category.
bool IsSpace(UChar32 c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_charType(c) == U_SPACE_SEPARATOR; }

// BERT's _is_control: the C categories but the ASCII spaces.
bool IsControl(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  const auto type = u_charType(c);
  return type == U_CONTROL_CHAR || type == U_FORMAT_CHAR || type == U_PRIVATE_USE_CHAR || type == U_SURROGATE ||
         type == U_UNASSIGNED;
}

}  // namespace

std::string ClipNormalize(const std::string& text) {
  // _clean_text and _tokenize_chinese_chars, then NFC.
  const auto input = icu::UnicodeString::fromUTF8(text);
  icu::UnicodeString cleaned;
  for (int32_t i = 0; i < input.length(); i = input.moveIndex32(i, 1)) {
    const UChar32 c = input.char32At(i);
    if (c == 0 || c == 0xFFFD || IsControl(c)) continue;
    if (IsSpace(c)) {
      cleaned.append(UChar32{' '});
    } else if (IsCjkIdeograph(c)) {
      cleaned.append(UChar32{' '}).append(c).append(UChar32{' '});
    } else {
      cleaned.append(c);
    }
  }
  UErrorCode status = U_ZERO_ERROR;
  const auto* nfc = icu::Normalizer2::getNFCInstance(status);
  const auto normalized = U_SUCCESS(status) ? nfc->normalize(cleaned, status) : cleaned;
  if (U_FAILURE(status)) Fail(ErrorCode::kInvalidArgument, "cannot normalise the text: {}", u_errorName(status));
  // whitespace_tokenize, each word lower-cased. Of what Python's str.split breaks at, only the line and paragraph
  // separators are left after the clean-up (the other ones are control characters).
  std::string out;
  auto add_word = [&](const icu::UnicodeString& word) {
    if (word.isEmpty()) return;
    icu::UnicodeString lower(word);
    lower.toLower(icu::Locale::getRoot());
    if (!out.empty()) out += ' ';
    lower.toUTF8String(out);
  };
  icu::UnicodeString word;
  for (int32_t i = 0; i < normalized.length(); i = normalized.moveIndex32(i, 1)) {
    const UChar32 c = normalized.char32At(i);
    const auto type = u_charType(c);
    if (IsSpace(c) || type == U_LINE_SEPARATOR || type == U_PARAGRAPH_SEPARATOR) {
      add_word(word);
      word.remove();
    } else {
      word.append(c);
    }
  }
  add_word(word);
  return out;
}

struct RegexSplitter::Impl {
  std::unique_ptr<icu::RegexPattern> pattern;
};

RegexSplitter::RegexSplitter(const std::string& pattern, bool case_insensitive) : impl_(std::make_unique<Impl>()) {
  UErrorCode status = U_ZERO_ERROR;
  UParseError where;
  impl_->pattern.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(pattern),
                                                  case_insensitive ? UREGEX_CASE_INSENSITIVE : 0, where, status));
  if (U_FAILURE(status)) {
    Fail(ErrorCode::kInvalidArgument, "tokenizer regex does not compile at offset {}: {}", where.offset,
         u_errorName(status));
  }
}

RegexSplitter::~RegexSplitter() = default;

std::vector<std::string> RegexSplitter::Split(const std::string& text, bool keep_gaps) const {
  const auto input = icu::UnicodeString::fromUTF8(text);
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> matcher(impl_->pattern->matcher(input, status));
  std::vector<std::string> pieces;
  auto add = [&](int32_t from, int32_t to) {
    if (to <= from) return;
    std::string piece;
    input.tempSubStringBetween(from, to).toUTF8String(piece);
    pieces.push_back(std::move(piece));
  };
  int32_t last = 0;
  while (matcher->find(status) && U_SUCCESS(status)) {
    const int32_t start = matcher->start(status), end = matcher->end(status);
    if (keep_gaps) add(last, start);
    add(start, end);
    last = end;
  }
  if (keep_gaps) add(last, input.length());
  return pieces;
}

BytePairEncoder::BytePairEncoder(std::unordered_map<std::string, std::int64_t> vocab,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  for (std::size_t i = 0; i < merges.size(); ++i) {
    ranks_.emplace(merges[i].first + '\x01' + merges[i].second, static_cast<int>(i));
  }
}

std::int64_t BytePairEncoder::Id(const std::string& token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) Fail(ErrorCode::kNotFound, "the tokenizer has no token '{}'", token);
  return it->second;
}

std::vector<std::int64_t> BytePairEncoder::Encode(std::string_view piece) const {
  const std::string key(piece);
  {
    std::lock_guard lock(mutex_);
    if (const auto it = cache_.find(key); it != cache_.end()) return it->second;
  }
  std::string mapped;
  for (const char c : piece) mapped += ByteSymbols()[static_cast<unsigned char>(c)];
  if (options_.ignore_merges) {
    if (const auto it = vocab_.find(mapped + options_.end_of_word); it != vocab_.end()) return {it->second};
  }
  auto symbols = Characters(mapped);
  if (symbols.empty()) return {};
  symbols.back() += options_.end_of_word;
  // Merge the lowest-ranked adjacent pair until none is in the table.
  while (symbols.size() > 1) {
    int best = std::numeric_limits<int>::max();
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = ranks_.find(symbols[i] + '\x01' + symbols[i + 1]);
      if (it != ranks_.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == std::numeric_limits<int>::max()) break;
    // Merge every occurrence of that pair, left to right, as the reference does.
    const std::string left = symbols[at], right = symbols[at + 1];
    std::vector<std::string> merged;
    for (std::size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        ++i;
      } else {
        merged.push_back(symbols[i]);
      }
    }
    symbols = std::move(merged);
  }
  std::vector<std::int64_t> ids;
  for (const auto& symbol : symbols) {
    const auto it = vocab_.find(symbol);
    if (it == vocab_.end()) Fail(ErrorCode::kInvalidArgument, "the tokenizer's vocabulary lacks the symbol '{}'", symbol);
    ids.push_back(it->second);
  }
  std::lock_guard lock(mutex_);
  if (cache_.size() < 100000) cache_.emplace(key, ids);
  return ids;
}

}  // namespace vidgen::text
