#include "models/demo/world.h"

#include <cmath>
#include <random>

#include <fmt/format.h>
#include <torch/torch.h>

namespace vidgen::demo {
namespace {

// A fixed 64-bit mix (splitmix64), the same on every machine.
std::uint64_t Mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

template <typename Palette>
int Nearest(const Palette& palette, const at::Tensor& rgb) {
  int best = -1;
  double best_distance = 1e30;
  for (std::size_t i = 0; i < palette.size(); ++i) {
    double distance = 0;
    for (int c = 0; c < 3; ++c) {
      const double d = rgb[c].item<double>() - palette[i].rgb[static_cast<std::size_t>(c)];
      distance += d * d;
    }
    if (distance < best_distance) {
      best_distance = distance;
      best = static_cast<int>(i);
    }
  }
  return best;
}

}  // namespace

// Far apart in RGB, so that a decoder's small colour errors do not turn one into another (an orange the first VAE
// drew yellowish was one in six held-out clips wrong).
const std::vector<Colour>& ObjectColours() {
  static const std::vector<Colour> colours = {{"red", {220, 40, 40}},     {"green", {50, 200, 60}},
                                              {"blue", {60, 90, 235}},    {"yellow", {235, 220, 50}},
                                              {"white", {245, 245, 245}}, {"magenta", {230, 50, 210}}};
  return colours;
}

const std::vector<Colour>& BackgroundColours() {
  static const std::vector<Colour> colours = {
      {"black", {10, 10, 10}}, {"dark blue", {20, 30, 90}}, {"dark green", {20, 70, 35}}, {"gray", {110, 110, 110}}};
  return colours;
}

const char* ShapeName(Shape shape) {
  switch (shape) {
    case Shape::kCircle: return "circle";
    case Shape::kSquare: return "square";
    case Shape::kTriangle: return "triangle";
  }
  return "?";
}

const char* DirectionName(Direction direction) {
  switch (direction) {
    case Direction::kLeft: return "left";
    case Direction::kRight: return "right";
    case Direction::kUp: return "up";
    case Direction::kDown: return "down";
  }
  return "?";
}

std::string Prompt(const ClipSpec& spec) {
  // Words of their own: "up and left" the base model already half-draws from the two it knows.
  const std::string motion = !spec.horizontal
                                 ? DirectionName(spec.direction)
                                 : fmt::format("{}{}", spec.direction == Direction::kUp ? "north" : "south",
                                               *spec.horizontal == Direction::kLeft ? "west" : "east");
  return fmt::format("a {} {} moving {}{} on a {} background",
                     ObjectColours()[static_cast<std::size_t>(spec.colour)].name, ShapeName(spec.shape), motion,
                     spec.fast ? " quickly" : "", BackgroundColours()[static_cast<std::size_t>(spec.background)].name);
}

std::vector<ClipSpec> AllClips() {
  std::vector<ClipSpec> clips;
  for (const auto shape : {Shape::kCircle, Shape::kSquare, Shape::kTriangle}) {
    for (int colour = 0; colour < static_cast<int>(ObjectColours().size()); ++colour) {
      for (const auto direction : {Direction::kLeft, Direction::kRight, Direction::kUp, Direction::kDown}) {
        for (int background = 0; background < static_cast<int>(BackgroundColours().size()); ++background) {
          for (const bool fast : {false, true}) clips.push_back({shape, colour, direction, background, fast});
        }
      }
    }
  }
  return clips;
}

std::vector<ClipSpec> DiagonalClips() {
  std::vector<ClipSpec> clips;
  for (auto clip : AllClips()) {
    if (clip.direction != Direction::kUp && clip.direction != Direction::kDown) continue;
    for (const auto horizontal : {Direction::kLeft, Direction::kRight}) {
      clip.horizontal = horizontal;
      clips.push_back(clip);
    }
  }
  return clips;
}

bool HeldOut(const ClipSpec& spec) {
  const std::uint64_t key =
      (spec.horizontal ? 10000 * (static_cast<std::uint64_t>(*spec.horizontal) + 1) : 0) +
      static_cast<std::uint64_t>(spec.shape) * 1000 + static_cast<std::uint64_t>(spec.colour) * 100 +
      static_cast<std::uint64_t>(spec.direction) * 10 + static_cast<std::uint64_t>(spec.background);
  return Mix(key) % 5 == 0;
}

at::Tensor Render(const ClipSpec& spec, std::uint64_t seed, const RenderOptions& options) {
  std::mt19937_64 random(Mix(seed));
  const int n = options.size, frames = options.frames;
  const double radius = n * (0.10 + 0.05 * std::uniform_real_distribution<double>(0, 1)(random));
  const double speed = n * (spec.fast ? 0.030 : 0.015);  // per axis: a diagonal moves on both at that speed
  const double travel = speed * (frames - 1);
  // Start where the whole path stays inside the frame, with a margin.
  const double margin = radius + 1;
  std::uniform_real_distribution<double> across(margin, n - margin);
  const double low = margin, high = n - margin - travel;
  std::uniform_real_distribution<double> start(low, std::max(low, high));
  const double along = start(random);
  double x0 = across(random), y0 = across(random), dx = 0, dy = 0;
  auto move = [&](Direction direction, double along) {
    switch (direction) {
      case Direction::kLeft:
        x0 = n - along;
        dx = -speed;
        break;
      case Direction::kRight:
        x0 = along;
        dx = speed;
        break;
      case Direction::kUp:
        y0 = n - along;
        dy = -speed;
        break;
      case Direction::kDown:
        y0 = along;
        dy = speed;
        break;
    }
  };
  move(spec.direction, along);
  if (spec.horizontal) move(*spec.horizontal, start(random));
  const auto& fg = ObjectColours()[static_cast<std::size_t>(spec.colour)].rgb;
  const auto& bg = BackgroundColours()[static_cast<std::size_t>(spec.background)].rgb;
  auto video = torch::empty({frames, n, n, 3}, torch::kUInt8);
  auto pixels = video.accessor<std::uint8_t, 4>();
  for (int f = 0; f < frames; ++f) {
    const double cx = x0 + dx * f, cy = y0 + dy * f;
    for (int y = 0; y < n; ++y) {
      for (int x = 0; x < n; ++x) {
        const double u = (x + 0.5 - cx) / radius, v = (y + 0.5 - cy) / radius;  // the shape in [−1, 1]²
        bool inside = false;
        switch (spec.shape) {
          case Shape::kCircle: inside = u * u + v * v <= 1; break;
          case Shape::kSquare: inside = std::abs(u) <= 0.85 && std::abs(v) <= 0.85; break;
          case Shape::kTriangle: inside = v <= 0.8 && v >= -1 + 2 * std::abs(u) * 0.9 - 0.1 && std::abs(u) <= 1; break;
        }
        for (int c = 0; c < 3; ++c)
          pixels[f][y][x][c] = inside ? fg[static_cast<std::size_t>(c)] : bg[static_cast<std::size_t>(c)];
      }
    }
  }
  return video;
}

ClipAnalysis Analyze(const at::Tensor& frames) {
  ClipAnalysis analysis;
  const auto video = frames.to(torch::kFloat);
  const std::int64_t count = video.size(0), h = video.size(1), w = video.size(2);
  std::vector<std::pair<double, double>> centroids;
  at::Tensor foreground_sum = torch::zeros({3}), background_sum = torch::zeros({3});
  double fill = 0;
  int seen = 0;
  for (std::int64_t f = 0; f < count; ++f) {
    const auto frame = video[f];
    // The border's median colour is the background.
    const auto border = torch::cat({frame[0], frame[h - 1], frame.select(1, 0), frame.select(1, w - 1)});
    const auto background = std::get<0>(border.median(0));
    const auto distance = (frame - background).pow(2).sum(-1).sqrt();
    const auto mask = distance > 60.0;
    const auto area = mask.sum().item<double>();
    background_sum += background;
    if (area < 4) continue;
    const auto ys = torch::arange(h, torch::kFloat).view({-1, 1}).expand({h, w});
    const auto xs = torch::arange(w, torch::kFloat).view({1, -1}).expand({h, w});
    const auto m = mask.to(torch::kFloat);
    centroids.emplace_back((xs * m).sum().item<double>() / area, (ys * m).sum().item<double>() / area);
    // The colour from the object's core: a decoder's soft rim mixes the object with the background.
    const auto core = (distance >= 0.7 * distance.max()).logical_and(mask).to(torch::kFloat);
    foreground_sum += (frame * core.unsqueeze(-1)).sum(at::IntArrayRef{0, 1}) / core.sum();
    // How much of its bounding box the object fills: square ~1, circle ~π/4, triangle ~1/2.
    const auto rows = mask.any(1).nonzero(), cols = mask.any(0).nonzero();
    const double box = static_cast<double>((rows.max().item<std::int64_t>() - rows.min().item<std::int64_t>() + 1) *
                                           (cols.max().item<std::int64_t>() - cols.min().item<std::int64_t>() + 1));
    fill += area / box;
    ++seen;
  }
  analysis.background = Nearest(BackgroundColours(), background_sum / static_cast<double>(count));
  if (seen * 2 < count) return analysis;
  analysis.found = true;
  analysis.colour = Nearest(ObjectColours(), foreground_sum / static_cast<double>(seen));
  fill /= seen;
  analysis.shape = fill > 0.9 ? Shape::kSquare : fill > 0.64 ? Shape::kCircle : Shape::kTriangle;
  const double dx = centroids.back().first - centroids.front().first;
  const double dy = centroids.back().second - centroids.front().second;
  analysis.travel = std::hypot(dx, dy);
  analysis.direction = std::abs(dx) >= std::abs(dy) ? (dx < 0 ? Direction::kLeft : Direction::kRight)
                                                    : (dy < 0 ? Direction::kUp : Direction::kDown);
  analysis.vertical = dy < 0 ? Direction::kUp : Direction::kDown;
  analysis.horizontal = dx < 0 ? Direction::kLeft : Direction::kRight;
  analysis.diagonal = std::min(std::abs(dx), std::abs(dy)) >= 0.5 * std::max(std::abs(dx), std::abs(dy));
  return analysis;
}

bool MovesAsPrompted(const ClipAnalysis& analysis, const ClipSpec& spec) {
  if (!spec.horizontal) return analysis.direction == spec.direction;
  return analysis.diagonal && analysis.vertical == spec.direction && analysis.horizontal == *spec.horizontal;
}

}  // namespace vidgen::demo
