// The restricted unpickler: the values torch.save writes, refused globals, and malformed input (also run under
// AddressSanitizer).
#include "models/io/pickle.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/error.h"
#include "models/io/mapped_file.h"

namespace vidgen::io::pickle {
namespace {

using namespace std::string_literals;  // pickles hold NUL bytes

std::span<const std::uint8_t> Bytes(const std::string& text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::string LoadError(const std::string& bytes) {
  try {
    Load(Bytes(bytes), "test.pkl");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  ADD_FAILURE() << "a bad pickle was accepted";
  return "";
}

const Value& Item(const Value& dict, const std::string& key) {
  const Value* value = std::get<Dict*>(dict)->Find(key);
  if (!value) throw std::runtime_error("no key " + key);
  return *value;
}

TEST(PickleTest, BuildsPlainValues) {
  // Written by Python's pickle, protocol 2, from the dict that make_fixtures.py shows.
  const auto file = MappedFile::Open(std::string(VIDGEN_FIXTURES_DIR) + "/plain_values.pkl");
  const Document document = Load(file->bytes(), "plain_values.pkl");
  const Value& root = document.root();
  EXPECT_EQ(std::get<std::int64_t>(Item(root, "i")), 300);
  EXPECT_EQ(std::get<std::int64_t>(Item(root, "neg")), -2);
  EXPECT_EQ(std::get<std::int64_t>(Item(root, "big")), std::int64_t{1} << 40);
  EXPECT_EQ(std::get<double>(Item(root, "f")), 0.5);
  EXPECT_EQ(*AsString(Item(root, "s")), "h\xc3\xa9");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(Item(root, "n")));
  EXPECT_TRUE(std::get<bool>(Item(root, "t")));
  const List* list = std::get<List*>(Item(root, "l"));
  EXPECT_FALSE(list->is_tuple);
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(std::get<std::int64_t>(list->items[1]), 2);
  EXPECT_TRUE(std::get<List*>(Item(root, "tup"))->is_tuple);
  EXPECT_EQ(std::get<std::int64_t>(Item(Item(root, "od"), "x")), 1);
}

TEST(PickleTest, NegativeLong1IsSignExtended) {
  const Document document = Load(Bytes(std::string("\x80\x02\x8a\x02\x00\xff.", 7)), "long.pkl");
  EXPECT_EQ(std::get<std::int64_t>(document.root()), -256);
}

TEST(PickleTest, RefusesOsSystem) {
  // protocol 2: GLOBAL 'os system', then REDUCE with ('echo pwned',)
  const std::string message =
      LoadError(std::string("\x80\x02\x63os\nsystem\nX\x0a\x00\x00\x00\x65\x63ho pwned\x85R.", 31));
  EXPECT_NE(message.find("'os.system'"), std::string::npos) << message;
  EXPECT_NE(message.find("not allowed"), std::string::npos) << message;
}

TEST(PickleTest, RefusesStackGlobalFromPythonPickle) {
  // Written by Python's pickle (protocol 4, STACK_GLOBAL) from an object whose __reduce__ returns os.system.
  const auto file = MappedFile::Open(std::string(VIDGEN_FIXTURES_DIR) + "/os_system.pkl");
  try {
    Load(file->bytes(), "os_system.pkl");
    FAIL() << "os.system was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'posix.system'"), std::string::npos) << e.what();
  }
}

TEST(PickleTest, RefusesOtherGlobals) {
  for (const std::string global : {"builtins\neval\n", "torch\nload\n", "torch.nn.modules.linear\nLinear\n",
                                   "collections\ndefaultdict\n", "torch._utils\n_rebuild_qtensor\n"}) {
    const std::string message = LoadError("\x80\x02\x63" + global + ").");
    EXPECT_NE(message.find("not allowed"), std::string::npos) << global << ": " << message;
  }
}

TEST(PickleTest, RefusesMalformedInput) {
  EXPECT_NE(LoadError("").find("truncated"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02K\x01").find("truncated"), std::string::npos);  // no STOP
  EXPECT_NE(LoadError("\x80\x02X\xff\x00\x00\x00"
                      "ab."s)
                .find("truncated"),
            std::string::npos);
  EXPECT_NE(LoadError("\x80\x02R.").find("stack is empty"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02h\x05.").find("never stored"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02(K\x01t\x8a\x09").find("wider than 64"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02)K\x01"
                      "a.")
                .find("append to a tuple"),
            std::string::npos);
  EXPECT_NE(LoadError("\x80\x02}(K\x01u.").find("odd number"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02(K\x01.").find("exactly one value"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02K\x01K\x02.").find("exactly one value"), std::string::npos);
  EXPECT_NE(LoadError("\x80\x02(I1\n.").find("opcode 0x49"), std::string::npos);  // text INT is not supported
  EXPECT_NE(LoadError("\x80\x02(K\x01\x31\x30.").find("stack is empty"), std::string::npos);  // MARK hides items
  EXPECT_NE(LoadError("\x80\x02K\x01Q.").find("wrong type"), std::string::npos);  // persistent id not a tuple
  EXPECT_NE(LoadError("\x80\x02\x63torch\nFloatStorage\n)R.").find("storage type"), std::string::npos);
}

TEST(PickleTest, SurvivesSelfReferenceAndDeepNesting) {
  // l = []; l.append(l): a cycle through the memo.
  const Document cycle = Load(Bytes("\x80\x02]q\x00h\x00"
                                    "a."s),
                              "cycle.pkl");
  const List* list = std::get<List*>(cycle.root());
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(std::get<List*>(list->items[0]), list);

  // 200000 lists each inside the next: building and destroying them must not recurse.
  const int depth = 200000;
  std::string bytes = "\x80\x02";
  for (int i = 0; i < depth; ++i) bytes += ']';
  for (int i = 1; i < depth; ++i) bytes += 'a';
  bytes += '.';
  const Document deep = Load(Bytes(bytes), "deep.pkl");
  EXPECT_EQ(std::get<List*>(deep.root())->items.size(), 1u);
}

}  // namespace
}  // namespace vidgen::io::pickle
