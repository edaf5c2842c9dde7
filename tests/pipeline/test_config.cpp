// Config: defaults, file + overrides merge, unknown keys with suggestions, type and range errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/pipeline/validate.hpp"

using namespace apricot;
using nlohmann::json;

namespace {

// Runs f, expects an apricot::Error with `code` whose message or hint contains every needle.
template <typename F>
void expect_error(F f, ExitCode code, std::vector<std::string> needles) {
  try {
    f();
    FAIL() << "no error thrown";
  } catch (const Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code)) << e.what();
    std::string all = std::string(e.what()) + " | " + e.hint();
    for (const auto& n : needles) EXPECT_NE(all.find(n), std::string::npos) << "missing '" << n << "' in: " << all;
  }
}

std::string temp_file(const std::string& name, const std::string& content) {
  auto dir = std::filesystem::temp_directory_path() / ("apricot-test-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << content;
  return p.string();
}

}  // namespace

TEST(Config, DefaultsAreValidAndRoundTrip) {
  Config c = load_config("", {});
  EXPECT_EQ(c.model.arch, "small");
  EXPECT_EQ(c.adapt.batch_size, 20);
  EXPECT_DOUBLE_EQ(c.adapt.step, 0.001);
  Config again = config_from_json(to_json(c), "roundtrip");
  EXPECT_EQ(to_json(again), to_json(c));
}

TEST(Config, FileThenOverrides) {
  auto path = temp_file("a.json", R"({"train": {"epochs": 7, "lr": 0.5}, "model": {"arch": "cnn1"}})");
  Config c = load_config(path, {"train.epochs=9", "data.root=/some/where", "adapt.strategies=[1,\"none\"]"});
  EXPECT_EQ(c.train.epochs, 9);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.5);
  EXPECT_EQ(c.model.arch, "cnn1");
  EXPECT_EQ(c.data.root, "/some/where");
  EXPECT_EQ(c.adapt.strategies, (std::vector<std::string>{"1", "none"}));
  EXPECT_EQ(c.train.batch_size, 128);  // untouched default
}

TEST(Config, UnknownKeySuggestsNearest) {
  expect_error([] { config_from_json(json{{"train", {{"epoch", 3}}}}, "f.json"); }, ExitCode::kUsage,
               {"train.epoch", "f.json", "did you mean 'epochs'"});
  expect_error([] { config_from_json(json{{"dat", json::object()}}, "f.json"); }, ExitCode::kUsage,
               {"'dat'", "did you mean 'data'"});
  expect_error([] { load_config("", {"train.bach_size=3"}); }, ExitCode::kUsage, {"train.bach_size", "batch_size"});
}

TEST(Config, WrongKindsAreErrors) {
  expect_error([] { config_from_json(json{{"train", {{"epochs", "ten"}}}}, "f"); }, ExitCode::kUsage,
               {"train.epochs", "integer"});
  expect_error([] { config_from_json(json{{"train", {{"epochs", 2.5}}}}, "f"); }, ExitCode::kUsage,
               {"train.epochs", "integer"});
  expect_error([] { config_from_json(json{{"train", 3}}, "f"); }, ExitCode::kUsage, {"train", "object"});
  expect_error([] { config_from_json(json{{"seed", -1}}, "f"); }, ExitCode::kUsage, {"seed", "non-negative"});
}

TEST(Config, OutOfRangeNamesKey) {
  expect_error([] { load_config("", {"train.epochs=0"}); }, ExitCode::kUsage, {"train.epochs", ">= 1"});
  expect_error([] { load_config("", {"train.epochs=-3"}); }, ExitCode::kUsage, {"train.epochs"});
  expect_error([] { load_config("", {"train.batch_size=0"}); }, ExitCode::kUsage, {"train.batch_size"});
  expect_error([] { load_config("", {"train.lr=0"}); }, ExitCode::kUsage, {"train.lr", "> 0"});
  expect_error([] { load_config("", {"train.lr=-0.1"}); }, ExitCode::kUsage, {"train.lr"});
  expect_error([] { load_config("", {"adapt.step=0"}); }, ExitCode::kUsage, {"adapt.step"});
}

TEST(Config, ScheduleAndEarlyStoppingKeysAreChecked) {
  expect_error([] { load_config("", {"train.lr_schedule=\"linear\""}); }, ExitCode::kUsage,
               {"train.lr_schedule", "cosine"});
  expect_error([] { load_config("", {"train.patience=-1"}); }, ExitCode::kUsage, {"train.patience", ">= 0"});
  expect_error([] { load_config("", {"train.lr_min=1"}); }, ExitCode::kUsage, {"train.lr_min", "train.lr"});
  expect_error([] { config_from_json(json{{"train", {{"lr_schedule", "cosine"}, {"lr_steps", {3}}}}}, "f"); },
               ExitCode::kUsage, {"train.lr_steps", "cosine"});
  expect_error([] { load_config("", {"rdlm.init=\"base-early\"", "rdlm.init_epochs=3", "train.patience=2"}); },
               ExitCode::kUsage, {"train.patience", "rdlm.init_epochs"});
  Config c = load_config("", {"train.lr_schedule=\"cosine\"", "train.lr_min=0.0001", "train.patience=3"});
  EXPECT_EQ(c.train.lr_schedule, "cosine");
  EXPECT_EQ(c.train.patience, 3);
  // At their defaults the new keys are not changes: stored results from before they existed still match.
  json j = to_json(load_config("", {}));
  drop_added_defaults(j);
  for (const char* k : {"lr_schedule", "lr_min", "patience"}) EXPECT_FALSE(j["train"].contains(k)) << k;
}

TEST(Config, EnumsSuggestNearestValue) {
  expect_error([] { load_config("", {"model.arch=resnet21"}); }, ExitCode::kUsage,
               {"model.arch", "resnet21", "did you mean", "cnn1", "resnet32"});
  expect_error([] { load_config("", {"data.format=cifar"}); }, ExitCode::kUsage, {"did you mean 'cifar10'"});
  expect_error([] { load_config("", {"adapt.strategies=[4]"}); }, ExitCode::kUsage, {"adapt.strategies", "none"});
  expect_error([] { load_config("", {"device=gpu"}); }, ExitCode::kUsage, {"device", "cuda:N"});
}

TEST(Config, MalformedFile) {
  auto bad = temp_file("bad.json", "{\"train\": {\"epochs\": 3,}");
  expect_error([&] { load_config(bad, {}); }, ExitCode::kUsage, {"bad.json", "not valid JSON"});
  expect_error([] { load_config("/nonexistent/dir/x.json", {}); }, ExitCode::kData, {"/nonexistent/dir/x.json"});
  expect_error([] { load_config("", {"noequals"}); }, ExitCode::kUsage, {"key.path=value"});
}

TEST(Config, Nearest) {
  EXPECT_EQ(nearest("epoch", {"epochs", "lr", "batch_size"}), "epochs");
  EXPECT_EQ(nearest("zzzzzzzz", {"epochs", "lr"}), "");
}

TEST(Config, PresetsParse) {
  for (const char* name : {"quickstart", "smoke", "cnn1", "cnn2", "cnn3", "resnet20", "resnet32"}) {
    std::string path = std::string(APRICOT_SOURCE_DIR) + "/configs/" + name + ".json";
    EXPECT_NO_THROW(load_config(path, {})) << path;
  }
  Config c = load_config(std::string(APRICOT_SOURCE_DIR) + "/configs/cnn1.json", {});
  EXPECT_EQ(c.train.epochs, 20);
  EXPECT_EQ(c.train.batch_size, 256);
  EXPECT_EQ(c.rdlm.epochs, 30);
  EXPECT_EQ(c.rdlm.count, 20);
}

// Found by tests/fuzz/fuzz_config.cpp: each of these escaped as something other than a config error
// (a json::out_of_range, undefined behaviour in a double -> int64 cast, a wrapped integer, a
// json::type_error when the message was built) or, for the device, overflowed the stack.
TEST(Config, HostileValuesAreConfigErrors) {
  expect_error([] { parse_config_text("{\"train\": {\"lr\": 1e400}}", "big.json"); }, ExitCode::kUsage,
               {"big.json", "not valid JSON", "1e400"});
  expect_error([] { parse_config_text("{\"threads\": 1e300}", "f.json"); }, ExitCode::kUsage,
               {"threads", "must be an integer"});
  expect_error([] { parse_config_text("{\"threads\": -9.3e18}", "f.json"); }, ExitCode::kUsage,
               {"threads", "must be an integer"});
  expect_error([] { parse_config_text("{\"train\": {\"epochs\": 18446744073709551615}}", "f.json"); },
               ExitCode::kUsage, {"train.epochs", "below 2^63"});
  expect_error([] { load_config("", {"train.lr=1e400"}); }, ExitCode::kUsage, {"train.lr", "must be a number"});
  expect_error([] { load_config("", {"data.root=\xff\xfe"}); }, ExitCode::kUsage, {"data.root", "UTF-8"});
  // Found by fuzz_config in a 30-second run: a key that is not UTF-8 under a non-object key.
  expect_error([] { load_config("", {"train.epochs.sh\xefift=0.125"}); }, ExitCode::kUsage, {"key", "UTF-8"});
  // Was a stack overflow in std::regex_match; now a plain scan.
  Config c = parse_config_text("{\"device\": \"cuda:" + std::string(200000, '7') + "\"}", "long.json");
  EXPECT_EQ(c.device.size(), 200005u);
  expect_error([] { parse_config_text("{\"device\": \"cuda:" + std::string(200000, '7') + "x\"}", "f.json"); },
               ExitCode::kUsage, {"device", "cuda:N"});
  expect_error([] { parse_config_text("{\"device\": \"cuda:\"}", "f.json"); }, ExitCode::kUsage, {"device"});
  EXPECT_EQ(parse_config_text("{\"threads\": 3.0, \"adapt\": {\"strategies\": [1, \"none\"]}}", "ok.json").threads, 3);
}

TEST(Config, TextAndFileParseAlike) {
  const std::string path = std::string(APRICOT_SOURCE_DIR) + "/configs/quickstart.json";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(to_json(parse_config_text(text.str(), path, {"train.epochs=2"})), to_json(load_config(path, {"train.epochs=2"})));
  expect_error([] { parse_config_text("[1, 2]", "list.json"); }, ExitCode::kUsage, {"list.json", "JSON object"});
}
