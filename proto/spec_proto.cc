#include "proto/spec_proto.h"

namespace vidgen::rpc {

spec::JobRequest FromProto(const v1::JobSpec& p) {
  spec::JobRequest r;
  r.model = p.model();
  r.prompt = p.prompt();
  r.negative_prompt = p.negative_prompt();
  r.width = p.width();
  r.height = p.height();
  r.frames = p.frames();
  r.steps = p.steps();
  r.guidance = p.guidance();
  r.shift = p.shift();
  r.seed = p.seed();
  r.solver = p.solver();
  const auto& cache = p.cache();
  r.cache.preset = cache.preset();
  if (cache.has_interval()) r.cache.interval = cache.interval();
  if (cache.has_order()) r.cache.order = cache.order();
  if (cache.has_warmup()) r.cache.warmup = cache.warmup();
  if (cache.has_tail()) r.cache.tail = cache.tail();
  if (cache.has_expansion()) r.cache.expansion = cache.expansion();
  if (cache.has_guidance()) r.cache.guidance = cache.guidance();
  if (cache.has_calibrated()) r.cache.calibrated = cache.calibrated();
  r.parallel = {p.parallel().ulysses(), p.parallel().ring(), p.parallel().cfg_parallel()};
  r.output = {p.output().container(), p.output().codec(), p.output().fps(), p.output().quality()};
  r.image = p.image();
  r.last_image = p.last_image();
  for (const auto& lora : p.loras()) r.loras.push_back({lora.name(), lora.has_scale() ? lora.scale() : 1.0});
  r.timesteps.assign(p.timesteps().begin(), p.timesteps().end());
  return r;
}

v1::JobSpec ToProto(const spec::JobRequest& r) {
  v1::JobSpec p;
  p.set_model(r.model);
  p.set_prompt(r.prompt);
  p.set_negative_prompt(r.negative_prompt);
  p.set_width(r.width);
  p.set_height(r.height);
  p.set_frames(r.frames);
  p.set_steps(r.steps);
  p.set_guidance(r.guidance);
  p.set_shift(r.shift);
  p.set_seed(r.seed);
  p.set_solver(r.solver);
  auto& cache = *p.mutable_cache();
  cache.set_preset(r.cache.preset);
  if (r.cache.interval) cache.set_interval(*r.cache.interval);
  if (r.cache.order) cache.set_order(*r.cache.order);
  if (r.cache.warmup) cache.set_warmup(*r.cache.warmup);
  if (r.cache.tail) cache.set_tail(*r.cache.tail);
  if (r.cache.expansion) cache.set_expansion(*r.cache.expansion);
  if (r.cache.guidance) cache.set_guidance(*r.cache.guidance);
  if (r.cache.calibrated) cache.set_calibrated(*r.cache.calibrated);
  auto& parallel = *p.mutable_parallel();
  parallel.set_ulysses(r.parallel.ulysses);
  parallel.set_ring(r.parallel.ring);
  parallel.set_cfg_parallel(r.parallel.cfg_parallel);
  auto& output = *p.mutable_output();
  output.set_container(r.output.container);
  output.set_codec(r.output.codec);
  output.set_fps(r.output.fps);
  output.set_quality(r.output.quality);
  p.set_image(r.image);
  p.set_last_image(r.last_image);
  for (const int t : r.timesteps) p.add_timesteps(t);
  for (const auto& lora : r.loras) {
    auto& settings = *p.add_loras();
    settings.set_name(lora.name);
    settings.set_scale(lora.scale);
  }
  return p;
}

spec::ModelInfo ModelInfoFromProto(const v1::Model& model) {
  spec::ModelInfo info;
  info.name = model.name();
  info.family = spec::ParseFamily(model.family().empty() ? "wan2.1" : model.family());
  if (model.has_defaults()) info.defaults = FromProto(model.defaults());
  if (model.side_multiple() > 0) info.side_multiple = model.side_multiple();
  if (!model.task().empty()) info.task = spec::ParseTask(model.task());
  info.loras.assign(model.loras().begin(), model.loras().end());
  for (const auto& [name, defaults] : model.lora_defaults()) info.lora_defaults.emplace(name, FromProto(defaults));
  return info;
}

spec::MemoryProfile FromProto(const v1::MemoryProfile& p) {
  spec::MemoryProfile m;
  m.device_bytes = p.device_bytes();
  m.resident_bytes = p.resident_bytes();
  m.denoise_base = p.denoise_base();
  m.denoise_per_token = p.denoise_per_token();
  m.denoise_per_token_squared = p.denoise_per_token_squared();
  m.decode_base = p.decode_base();
  m.decode_per_pixel = p.decode_per_pixel();
  m.decode_per_pixel_frame = p.decode_per_pixel_frame();
  m.denoise_squared_bound = p.denoise_squared_bound();
  m.cache_branches = p.cache_branches();
  m.cache_values_per_token = p.cache_values_per_token();
  m.lite_values_per_token = p.lite_values_per_token();
  return m;
}

v1::MemoryProfile ToProto(const spec::MemoryProfile& m) {
  v1::MemoryProfile p;
  p.set_device_bytes(m.device_bytes);
  p.set_resident_bytes(m.resident_bytes);
  p.set_denoise_base(m.denoise_base);
  p.set_denoise_per_token(m.denoise_per_token);
  p.set_denoise_per_token_squared(m.denoise_per_token_squared);
  p.set_decode_base(m.decode_base);
  p.set_decode_per_pixel(m.decode_per_pixel);
  p.set_decode_per_pixel_frame(m.decode_per_pixel_frame);
  p.set_denoise_squared_bound(m.denoise_squared_bound);
  p.set_cache_branches(m.cache_branches);
  p.set_cache_values_per_token(m.cache_values_per_token);
  p.set_lite_values_per_token(m.lite_values_per_token);
  return p;
}

}  // namespace vidgen::rpc
