// The demo model's synthetic world: deterministic clips, the prompt grammar, the split, and an analysis that reads
// colour, shape and direction back from ground-truth clips.

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "models/demo/world.h"
#include "models/text/sentencepiece.h"
#include "models/text/t5_tokenizer.h"
#include "tests/support/expect_error.h"

namespace vidgen::demo {
namespace {

TEST(DemoWorldTest, PromptsFollowTheGrammar) {
  EXPECT_EQ(Prompt({Shape::kCircle, 0, Direction::kLeft, 1, false}), "a red circle moving left on a dark blue background");
  EXPECT_EQ(Prompt({Shape::kTriangle, 3, Direction::kUp, 0, true}), "a yellow triangle moving up quickly on a black background");
  ClipSpec diagonal{Shape::kSquare, 2, Direction::kDown, 3, false};
  diagonal.horizontal = Direction::kRight;
  EXPECT_EQ(Prompt(diagonal), "a blue square moving southeast on a gray background");
  std::set<std::string> prompts;
  for (const auto& clip : AllClips()) prompts.insert(Prompt(clip));
  for (const auto& clip : DiagonalClips()) prompts.insert(Prompt(clip));
  EXPECT_EQ(prompts.size(), 2 * AllClips().size());  // every combination says something different
}

TEST(DemoWorldTest, RenderingIsDeterministicPerSeed) {
  const ClipSpec spec{Shape::kSquare, 1, Direction::kRight, 2, false};
  const auto a = Render(spec, 7), b = Render(spec, 7), c = Render(spec, 8);
  EXPECT_EQ(a.sizes(), (std::vector<std::int64_t>{17, 64, 64, 3}));
  EXPECT_EQ(a.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  RenderOptions options;
  options.frames = 9;
  options.size = 32;
  EXPECT_EQ(Render(spec, 7, options).sizes(), (std::vector<std::int64_t>{9, 32, 32, 3}));
}

TEST(DemoWorldTest, TheSplitHoldsOutAFifthAndKeepsEveryValueInTraining) {
  int held = 0, total = 0;
  std::set<int> train_colours, train_backgrounds;
  std::set<Shape> train_shapes;
  std::set<Direction> train_directions;
  for (const auto& clip : AllClips()) {
    ++total;
    if (HeldOut(clip)) {
      ++held;
      continue;
    }
    train_colours.insert(clip.colour);
    train_backgrounds.insert(clip.background);
    train_shapes.insert(clip.shape);
    train_directions.insert(clip.direction);
  }
  EXPECT_GT(held, total / 10);
  EXPECT_LT(held, total * 3 / 10);
  EXPECT_EQ(train_colours.size(), ObjectColours().size());
  EXPECT_EQ(train_backgrounds.size(), BackgroundColours().size());
  EXPECT_EQ(train_shapes.size(), 3u);
  EXPECT_EQ(train_directions.size(), 4u);
}

TEST(DemoWorldTest, TheAnalysisReadsGroundTruthClips) {
  int colour = 0, direction = 0, shape = 0, background = 0, total = 0;
  auto clips = AllClips();
  for (const auto& clip : DiagonalClips()) clips.push_back(clip);  // the motion the demo LoRA teaches is read back too
  for (const auto& clip : clips) {
    for (const std::uint64_t seed : {1, 2}) {
      const auto analysis = Analyze(Render(clip, seed));
      ++total;
      if (!analysis.found) continue;
      colour += analysis.colour == clip.colour;
      direction += MovesAsPrompted(analysis, clip) && analysis.diagonal == clip.horizontal.has_value();
      shape += analysis.shape == clip.shape;
      background += analysis.background == clip.background;
    }
  }
  EXPECT_EQ(colour, total);
  EXPECT_EQ(direction, total);
  EXPECT_EQ(background, total);
  EXPECT_GE(shape, total * 95 / 100);
  // A clip of background alone has no object.
  const auto empty = torch::zeros({5, 32, 32, 3}, torch::kUInt8);
  EXPECT_FALSE(Analyze(empty).found);
}

}  // namespace
}  // namespace vidgen::demo

namespace vidgen::demo {
namespace {

std::string Bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

TEST(DemoWorldTest, ATokenizerTrainsOnTheGrammar) {
  std::vector<std::string> prompts;
  for (const auto& clip : AllClips()) prompts.push_back(Prompt(clip));
  const auto dir = std::filesystem::temp_directory_path() / ("vidgen-spm-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  text::SentencePieceTraining options;
  options.vocab_size = 48;
  text::TrainSentencePiece(prompts, (dir / "a.model").string(), options);
  const auto first = Bytes(dir / "a.model");
  text::TrainSentencePiece(prompts, (dir / "a.model").string(), options);
  EXPECT_TRUE(Bytes(dir / "a.model") == first);  // one thread, same sentences: the same model
  EXPECT_FALSE(std::filesystem::exists(dir / "a.sentences.txt"));

  // In the T5 layout the Wan tokenizer expects: every prompt encodes without unknown pieces, ending in </s>.
  const text::T5Tokenizer tokenizer((dir / "a.model").string(), 32);
  const text::SentencePiece model((dir / "a.model").string());
  EXPECT_LE(model.vocab_size(), 48);
  for (const auto& prompt : {prompts.front(), prompts.back()}) {
    const auto ids = model.Encode(prompt);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 0) << prompt;  // no <unk>
  }
  const auto batch = tokenizer.Encode({prompts.front()});
  const auto length = batch.mask.sum().item<std::int64_t>();
  EXPECT_EQ(batch.ids[0][length - 1].item<std::int64_t>(), 1);  // </s>
  EXPECT_FAILS(text::TrainSentencePiece(prompts, (dir / "bad.txt").string(), options), kInvalidArgument, "must end in .model");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vidgen::demo
