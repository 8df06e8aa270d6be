// The demo model's world: short clips of one coloured shape moving in a straight line over a plain background,
// rendered deterministically from a seed, with prompts from a small grammar ("a red circle moving left on a dark
// blue background"). The combinations are split into training and held-out sets, and an analysis of frames recovers
// colour, shape and direction, so that generated videos can be scored against their prompts.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace vidgen::demo {

enum class Shape { kCircle, kSquare, kTriangle };
enum class Direction { kLeft, kRight, kUp, kDown };

struct Colour {
  const char* name;
  std::array<std::uint8_t, 3> rgb;
};

// The palettes: object colours and background colours (disjoint, so an object never vanishes into its background).
const std::vector<Colour>& ObjectColours();
const std::vector<Colour>& BackgroundColours();
const char* ShapeName(Shape shape);
const char* DirectionName(Direction direction);

struct ClipSpec {
  Shape shape = Shape::kCircle;
  int colour = 0;  // into ObjectColours()
  Direction direction = Direction::kLeft;
  int background = 0;  // into BackgroundColours()
  bool fast = false;   // "quickly": twice the speed
  // A diagonal, "moving northwest" (direction kUp, horizontal kLeft): a motion the base world never has, what the
  // demo LoRA teaches. Both axes at the speed of the base world's motions ("up" and "left" at once).
  std::optional<Direction> horizontal{};
};

struct RenderOptions {
  int frames = 17;
  int size = 64;  // square frames
};

// "a red circle moving left on a dark blue background", with "quickly" before "on" when fast ("moving northwest"
// for a diagonal).
std::string Prompt(const ClipSpec& spec);
// Every combination of shape, colour, direction, background and speed, in a fixed order: the base world.
std::vector<ClipSpec> AllClips();
// The same with the four diagonals for directions.
std::vector<ClipSpec> DiagonalClips();
// About one combination in five of (shape, colour, direction, background), both speeds, is held out of training:
// chosen by a fixed hash, so every pair of attribute values still appears in training.
bool HeldOut(const ClipSpec& spec);

// [frames, size, size, 3] uint8. The seed picks the object's size and start, always so that it stays in the frame.
at::Tensor Render(const ClipSpec& spec, std::uint64_t seed, const RenderOptions& options = {});

struct ClipAnalysis {
  bool found = false;   // a foreground object was seen in most frames
  int colour = -1;      // nearest object colour of the foreground's mean
  int background = -1;  // nearest background colour of the border
  Shape shape = Shape::kCircle;
  Direction direction = Direction::kLeft;
  double travel = 0;  // centroid displacement first → last frame, in pixels
  // The path's two components, and whether it is diagonal (the smaller at least half the larger).
  Direction vertical = Direction::kUp, horizontal = Direction::kLeft;
  bool diagonal = false;
};

// Reads a clip [frames, H, W, 3] uint8: the background from each frame's border, the object as the pixels far from
// it, its colour from its core (the pixels farthest from the background), its shape from how much of its bounding
// box it fills, its direction from the centroid's path.
ClipAnalysis Analyze(const at::Tensor& frames);

// Whether the analysed motion is the prompt's: its direction, or for a diagonal both components and a diagonal path.
bool MovesAsPrompted(const ClipAnalysis& analysis, const ClipSpec& spec);

}  // namespace vidgen::demo
