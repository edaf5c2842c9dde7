// The field set (data/field.hpp): read as npy and as an image folder, split per class into the
// repair part (fit and pick) and the hold-out, and refused with a clear message when it does not fit the data.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "apricot/core/config.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/data/field.hpp"
#include "cli_util.hpp"
#include "image_files.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;

namespace {

DataConfig synthetic_data() {
  DataConfig d;
  d.format = "synthetic";
  d.synthetic_train = 200, d.synthetic_test = 50, d.val_size = 40;
  d.synthetic_shape = {1, 8, 8};
  d.synthetic_classes = 4;
  return d;
}

// n gray images of h x w with labels 0, 1, ..., classes-1 in turn, as x_field.npy and y_field.npy.
void write_field_npy(const fs::path& dir, int n, int h, int w, int classes) {
  std::string pixels;
  std::vector<int64_t> labels;
  for (int i = 0; i < n; ++i) {
    const auto px = pattern(h, w, 1, i);
    pixels.append(px.begin(), px.end());
    labels.push_back(i % classes);
  }
  write_npy(dir / "x_field.npy", "|u1", {n, h, w}, pixels);
  write_npy(dir / "y_field.npy", "<i8", {n}, bytes_of(labels));
}

FieldConfig npy_field(const fs::path& dir) {
  FieldConfig f;
  f.format = "npy";
  f.root = dir.string();
  return f;
}

int code_of(const FieldConfig& f, const DataConfig& d, const Dataset& data, std::string* msg) {
  return exit_code_of([&] { load_field(f, d, data, 0); }, msg);
}

}  // namespace

TEST(FieldData, NpyFieldIsSplitPerClassSeededAndDisjoint) {
  const auto dir = fresh_dir("field-npy");
  write_field_npy(dir, 40, 8, 8, 4);
  const DataConfig d = synthetic_data();
  const Dataset data = load_dataset(d, 0);
  const FieldSet a = load_field(npy_field(dir), d, data, 0);
  ASSERT_EQ(a.sel.size(), 20);
  ASSERT_EQ(a.holdout.size(), 20);
  for (int64_t c = 0; c < 4; ++c) {  // 10 a class: 5 held out, 5 to repair on
    EXPECT_EQ(a.holdout.y.eq(c).sum().item<int64_t>(), 5) << c;
    EXPECT_EQ(a.sel.y.eq(c).sum().item<int64_t>(), 5) << c;
  }
  // Disjoint: no selection image is a hold-out image (the 40 patterns all differ).
  const auto sel = a.sel.x.reshape({20, 1, -1}), hold = a.holdout.x.reshape({1, 20, -1});
  EXPECT_FALSE(sel.eq(hold).all(2).any().item<bool>());
  EXPECT_EQ(a.sel.x.sizes(), torch::IntArrayRef({20, 1, 8, 8}));
  // The same seed, the same split; another seed, another split (the fingerprint says so too).
  const FieldSet b = load_field(npy_field(dir), d, data, 0);
  EXPECT_TRUE(torch::equal(a.holdout.x, b.holdout.x));
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  const FieldSet c = load_field(npy_field(dir), d, data, 1);
  EXPECT_FALSE(torch::equal(a.holdout.x, c.holdout.x));
  EXPECT_NE(a.fingerprint, c.fingerprint);
  FieldConfig more = npy_field(dir);
  more.holdout = 0.2;
  EXPECT_EQ(load_field(more, d, data, 0).holdout.size(), 8);
  fs::remove_all(dir);
}

// field.select: the repair part split again, per class and seeded, into what is trained on (fit) and
// what is chosen on (pick); 0 keeps the recipe of results made before it (both are the repair part).
TEST(FieldData, SelectHoldsBackAPickPartNeverTrainedOn) {
  const auto dir = fresh_dir("field-select");
  write_field_npy(dir, 80, 8, 8, 4);
  const DataConfig d = synthetic_data();
  const Dataset data = load_dataset(d, 0);
  FieldConfig f = npy_field(dir);
  f.select = 0.4;
  const FieldSet a = load_field(f, d, data, 0);
  ASSERT_EQ(a.sel.size(), 40);
  ASSERT_EQ(a.pick.size(), 16);  // 4 of each class's 10
  ASSERT_EQ(a.fit.size(), 24);
  for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(a.pick.y.eq(c).sum().item<int64_t>(), 4) << c;
  const auto fit = a.fit.x.reshape({24, 1, -1}), pick = a.pick.x.reshape({1, 16, -1});
  EXPECT_FALSE(fit.eq(pick).all(2).any().item<bool>());
  // The hold-out and the fingerprint do not depend on the select share; the pick part on the seed.
  f.select = 0;
  const FieldSet old = load_field(f, d, data, 0);
  EXPECT_TRUE(torch::equal(old.holdout.x, a.holdout.x));
  EXPECT_EQ(old.fingerprint, a.fingerprint);
  EXPECT_TRUE(torch::equal(old.fit.x, old.sel.x));
  EXPECT_TRUE(torch::equal(old.pick.x, old.sel.x));
  f.select = 0.4;
  EXPECT_FALSE(torch::equal(load_field(f, d, data, 1).pick.x, a.pick.x));
  // A share that leaves nothing to choose on is refused, naming the key.
  write_field_npy(dir, 8, 8, 8, 4);  // 1 image a class in the repair part
  f.select = 0.3;
  std::string msg;
  EXPECT_EQ(code_of(f, d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("field.select"), std::string::npos) << msg;
  f.select = 1.0;
  EXPECT_EQ(exit_code_of([&] { validate(f); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.select"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(FieldData, ImageFolderFieldTakesTheTrainingClassNames) {
  const auto dir = fresh_dir("field-folder");
  // The training data: an image folder with classes ant, bee, cat (8 x 8 RGB).
  for (const char* cls : {"ant", "bee", "cat"})
    for (int i = 0; i < 6; ++i) {
      write_png(dir / "data" / "train" / cls / (std::to_string(i) + ".png"), pattern(8, 8, 3, i), 8, 8, 3);
      if (i < 2) write_png(dir / "data" / "test" / cls / (std::to_string(i) + ".png"), pattern(8, 8, 3, 50 + i), 8, 8, 3);
    }
  DataConfig d;
  d.format = "imagefolder";
  d.root = (dir / "data").string();
  d.val_size = 3;
  const Dataset data = load_dataset(d, 0);
  for (int i = 0; i < 4; ++i) write_png(dir / "field" / "cat" / (std::to_string(i) + ".png"), pattern(8, 8, 3, 90 + i), 8, 8, 3);
  FieldConfig f;
  f.format = "imagefolder";
  f.root = (dir / "field").string();
  const FieldSet field = load_field(f, d, data, 0);
  EXPECT_EQ(field.sel.size() + field.holdout.size(), 4);
  EXPECT_TRUE(field.sel.y.eq(2).all().item<bool>());  // cat is the third class
  EXPECT_TRUE(field.holdout.y.eq(2).all().item<bool>());
  // A class the training data does not have: named, with the classes it has.
  write_png(dir / "field" / "zebra" / "0.png", pattern(8, 8, 3, 7), 8, 8, 3);
  std::string msg;
  EXPECT_EQ(code_of(f, d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("zebra"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ant, bee, cat"), std::string::npos) << msg;
  fs::remove_all(dir / "field" / "zebra");
  // An image of another size: named.
  write_png(dir / "field" / "bee" / "big.png", pattern(9, 8, 3, 7), 9, 8, 3);
  EXPECT_EQ(code_of(f, d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("big.png"), std::string::npos) << msg;
  fs::remove_all(dir);
}

TEST(FieldData, BadFieldDataIsAClearError) {
  const auto dir = fresh_dir("field-bad");
  const DataConfig d = synthetic_data();
  const Dataset data = load_dataset(d, 0);
  std::string msg;
  // A folder that is not there.
  EXPECT_EQ(code_of(npy_field(dir / "nowhere"), d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("nowhere"), std::string::npos) << msg;
  // A folder without the files.
  fs::create_directories(dir / "empty");
  EXPECT_EQ(code_of(npy_field(dir / "empty"), d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("x_field.npy"), std::string::npos) << msg;
  // Images of another size than the training images (8 x 8).
  write_field_npy(dir / "size", 8, 6, 6, 4);
  EXPECT_EQ(code_of(npy_field(dir / "size"), d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("1x6x6"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1x8x8"), std::string::npos) << msg;
  // A label outside the data's classes.
  write_field_npy(dir / "label", 8, 8, 8, 5);
  EXPECT_EQ(code_of(npy_field(dir / "label"), d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("label 4"), std::string::npos) << msg;
  // One image a class and a small hold-out share: nothing is held out.
  write_field_npy(dir / "few", 4, 8, 8, 4);
  FieldConfig few = npy_field(dir / "few");
  few.holdout = 0.3;
  EXPECT_EQ(code_of(few, d, data, &msg), static_cast<int>(ExitCode::kData));
  EXPECT_NE(msg.find("hold-out is empty"), std::string::npos) << msg;
  // The keys' ranges.
  FieldConfig bad = npy_field(dir);
  bad.holdout = 1.0;
  EXPECT_EQ(exit_code_of([&] { validate(bad); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.holdout"), std::string::npos) << msg;
  bad = npy_field(dir);
  bad.format = "cifar10";
  EXPECT_EQ(exit_code_of([&] { validate(bad); }, &msg), static_cast<int>(ExitCode::kUsage));
  EXPECT_NE(msg.find("field.format"), std::string::npos) << msg;
  fs::remove_all(dir);
}
