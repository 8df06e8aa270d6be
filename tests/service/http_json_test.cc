// The HTTP API's JSON without a server: submit bodies, the fields of its own ("size", "seconds", images in base64)
// and the spec's (LoRAs among them), mapped to the request the gRPC API takes, refusals naming the field; the models.
#include "server/http_json.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/expect_error.h"

namespace vidgen::server {
namespace {

v1::SubmitJobRequest Submit(nlohmann::json body) {
  body["model"] = "wan-i2v";
  body["prompt"] = "a cat";
  return SubmitRequestFromJson(body.dump(), "key-1");
}

TEST(HttpJsonTest, LorasAndImagesReachTheRequest) {
  const auto request = Submit({{"loras", {{{"name", "distill"}}, {{"name", "anime"}, {"scale", 0.7}}}},
                               {"image", "iVBORw0KGgo="},                                  // padded
                               {"last_image", "data:image/jpeg;base64,/9j/4AAQSkZJRg"}});  // a data URL, unpadded
  EXPECT_EQ(request.idempotency_key(), "key-1");
  ASSERT_EQ(request.spec().loras_size(), 2);
  EXPECT_EQ(request.spec().loras(0).name(), "distill");
  EXPECT_EQ(request.spec().loras(0).scale(), 1.0);
  EXPECT_EQ(request.spec().loras(1).name(), "anime");
  EXPECT_EQ(request.spec().loras(1).scale(), 0.7);
  EXPECT_EQ(request.spec().image(), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(request.spec().last_image(), std::string("\xff\xd8\xff\xe0\x00\x10JFIF", 10));
  // Every length of a base64 tail: 2 and 3 digits are 1 and 2 bytes.
  EXPECT_EQ(Submit({{"image", "YQ"}}).spec().image(), "a");
  EXPECT_EQ(Submit({{"image", "YWI="}}).spec().image(), "ab");
  EXPECT_EQ(Submit({{"image", "YWJj"}}).spec().image(), "abc");
  EXPECT_EQ(Submit({{"image", "YWJj\nZGVm\r\nZw==\n"}}).spec().image(), "abcdefg");  // as `base64` wraps lines
}

// A model's LoRAs come with their own defaults (what a page fills in when one is ticked), the unset fields left out.
TEST(HttpJsonTest, ModelsCarryTheirLorasDefaults) {
  v1::ListModelsResponse models;
  auto& model = *models.add_models();
  model.set_name("demo");
  model.set_task("t2v");
  model.add_loras("distill");
  model.add_loras("style");
  auto& schedule = (*model.mutable_lora_defaults())["distill"];
  schedule.set_solver("euler");
  schedule.set_guidance(1.0);
  for (const int t : {1000, 750, 500, 250}) schedule.add_timesteps(t);
  const auto json = ModelsJson(models).at("data").at(0);
  EXPECT_EQ(json.at("loras"), nlohmann::json({"distill", "style"}));
  EXPECT_EQ(json.at("lora_defaults"), nlohmann::json::parse(R"({"distill": {"solver": "euler", "guidance": 1.0,
                                                  "timesteps": [1000, 750, 500, 250]}})"));
}

TEST(HttpJsonTest, BadImagesAndLorasAreRefusedByField) {
  using testing::FailsWith;
  EXPECT_TRUE(FailsWith(
      [] {
        Submit({{"image", 42}});
      },
      ErrorCode::kInvalidArgument, "spec.image must be a base64 string"));
  EXPECT_TRUE(FailsWith(
      [] {
        Submit({{"image", "YWJj*A=="}});
      },
      ErrorCode::kInvalidArgument, "spec.image is not base64: byte 4 is 0x2a"));
  EXPECT_TRUE(FailsWith(
      [] {
        Submit({{"last_image", "YWJjZ"}});
      },
      ErrorCode::kInvalidArgument, "spec.last_image is not base64: its length is cut"));
  EXPECT_TRUE(FailsWith(
      [] {
        Submit({{"image", "data:image/png,YWJj"}});
      },
      ErrorCode::kInvalidArgument, "spec.image is a data URL without ';base64,'"));
  EXPECT_TRUE(FailsWith(
      [] {
        Submit({{"loras", {{{"name", "a"}, {"strength", 2}}}}});
      },
      ErrorCode::kInvalidArgument, "spec.loras[0] has an unknown field 'strength'"));
  try {
    Submit({{"image", "%%%%"}});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(HttpStatus(error), 400);
    EXPECT_EQ(ErrorJson(error).at("error").at("field"), "image");
  }
}

}  // namespace
}  // namespace vidgen::server
