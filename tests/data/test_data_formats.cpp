// The users' own datasets: image folders (PNG and JPEG written here with libpng and libjpeg) and
// NumPy .npy files (written here byte by byte as numpy.save lays them out): exact pixels and labels,
// the row order, channel conversion and resizing, and a clear error naming the file for each kind
// of bad input. Where Debian's python3-pil is installed, the JPEG pixels are checked against PIL's.
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <chrono>
#include <functional>
#include <tuple>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/data/formats.hpp"
#include "cli_util.hpp"
#include "image_files.hpp"

using namespace apricot;
using namespace apricot::test;
namespace fs = std::filesystem;

namespace {

void write_jpeg(const fs::path& path, const std::vector<uint8_t>& px, int h, int w, int c, int quality = 90) {
  fs::create_directories(path.parent_path());
  jpeg_compress_struct info;
  jpeg_error_mgr err;
  info.err = jpeg_std_error(&err);
  jpeg_create_compress(&info);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buf, &size);
  info.image_width = w, info.image_height = h, info.input_components = c;
  info.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, quality, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(px.data()) + static_cast<size_t>(info.next_scanline) * w * c;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(buf), static_cast<std::streamsize>(size));
  free(buf);
  jpeg_destroy_compress(&info);
}

// (C, H, W) uint8 tensor of an H x W x C image.
torch::Tensor chw(const std::vector<uint8_t>& px, int h, int w, int c) {
  return torch::from_blob(const_cast<uint8_t*>(px.data()), {h, w, c}, torch::kUInt8).permute({2, 0, 1}).clone();
}

}  // namespace

TEST(ImageFolder, ReadsPngExactlyWithSortedClassesAndInterleavedRows) {
  auto root = fresh_dir("imagefolder");
  // Classes written out of order; "ant" has 3 training images, "cat" 1, "dog" 2.
  std::map<std::string, int> count = {{"dog", 2}, {"ant", 3}, {"cat", 1}};
  std::map<std::string, std::vector<std::vector<uint8_t>>> images;
  int seed = 0;
  for (const auto& [cls, n] : count)
    for (int i = 0; i < n; ++i) {
      images[cls].push_back(pattern(5, 7, 3, ++seed));
      write_png(root / "train" / cls / ("img" + std::to_string(i) + ".png"), images[cls].back(), 5, 7, 3);
    }
  write_png(root / "test" / "cat" / "a.png", pattern(5, 7, 3, 99), 5, 7, 3);  // the test split lacks "ant" and "dog"
  std::ofstream(root / "train" / "cat" / ".DS_Store") << "not an image";    // dot files are skipped
  Split train, test;
  std::vector<std::string> names;
  load_imagefolder(root.string(), 0, {}, train, test, &names);
  EXPECT_EQ(names, (std::vector<std::string>{"ant", "cat", "dog"}));
  ASSERT_EQ(train.x.sizes(), (std::vector<int64_t>{6, 3, 5, 7}));
  // Row order: file 0 of ant, cat, dog; file 1 of ant, dog; file 2 of ant.
  EXPECT_TRUE(torch::equal(train.y, torch::tensor({0, 1, 2, 0, 2, 0}, torch::kInt64)));
  const std::vector<std::pair<std::string, int>> rows = {{"ant", 0}, {"cat", 0}, {"dog", 0}, {"ant", 1}, {"dog", 1}, {"ant", 2}};
  for (size_t r = 0; r < rows.size(); ++r)
    EXPECT_TRUE(torch::equal(train.x[r], chw(images[rows[r].first][rows[r].second], 5, 7, 3))) << "row " << r;
  EXPECT_TRUE(torch::equal(test.y, torch::tensor({1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(test.x[0], chw(pattern(5, 7, 3, 99), 5, 7, 3)));

  // Through the config: classes, a validation split carved from train, the format in the fingerprint.
  DataConfig cfg;
  cfg.format = "imagefolder", cfg.root = root.string(), cfg.val_size = 2;
  Dataset ds = load_dataset(cfg, 1);
  EXPECT_EQ(ds.classes, 3);
  EXPECT_EQ(ds.channels, 3);
  EXPECT_EQ(ds.train.size() + ds.val.size(), 6);
  fs::remove_all(root);
}

TEST(ImageFolder, ChannelsAndResizing) {
  auto root = fresh_dir("imagefolder-channels");
  const auto rgb = pattern(4, 4, 3, 1);
  write_png(root / "train" / "a" / "0.png", rgb, 4, 4, 3);
  write_png(root / "train" / "b" / "0.png", std::vector<uint8_t>(16, 77), 4, 4, 1);  // gray
  write_png(root / "test" / "a" / "0.png", rgb, 4, 4, 3);
  Split train, test;
  load_imagefolder(root.string(), 1, {}, train, test);  // everything to gray, PIL's luma formula
  ASSERT_EQ(train.x.size(1), 1);
  const int r = rgb[0], g = rgb[1], b = rgb[2];
  EXPECT_EQ(train.x[0][0][0][0].item<int>(), (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
  EXPECT_EQ(train.x[1].min().item<int>(), 77);
  EXPECT_EQ(train.x[1].max().item<int>(), 77);
  load_imagefolder(root.string(), 3, {}, train, test);  // gray repeated into RGB
  EXPECT_TRUE(torch::equal(train.x[1], torch::full({3, 4, 4}, 77, torch::kUInt8)));

  // Mixed sizes: refused without data.image_size, naming the file; resized with it.
  write_png(root / "train" / "b" / "1.png", std::vector<uint8_t>(6 * 8 * 3, 200), 6, 8, 3);
  std::string msg;
  EXPECT_EQ(exit_code_of([&] { load_imagefolder(root.string(), 0, {}, train, test); }, &msg), exit_status(ExitCode::kData));
  EXPECT_NE(msg.find("1.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.image_size"), std::string::npos) << msg;
  load_imagefolder(root.string(), 0, {3, 2}, train, test);
  ASSERT_EQ(train.x.sizes(), (std::vector<int64_t>{3, 3, 3, 2}));
  EXPECT_TRUE(torch::equal(train.x[2], torch::full({3, 3, 2}, 200, torch::kUInt8)));  // a flat image stays flat
  fs::remove_all(root);
}

TEST(ImageFolder, JpegDecodesAsPilDoes) {
  auto root = fresh_dir("imagefolder-jpeg");
  std::vector<uint8_t> px(16 * 12 * 3);  // a smooth image (JPEG's case): gradients per channel
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 12; ++x)
      for (int c = 0; c < 3; ++c) px[(y * 12 + x) * 3 + c] = static_cast<uint8_t>(x * 8 + y * 5 + c * 30);
  write_jpeg(root / "train" / "x" / "0.jpg", px, 16, 12, 3, 75);
  write_jpeg(root / "test" / "x" / "0.jpg", pattern(16, 12, 1, 6), 16, 12, 1, 75);
  Split train, test;
  load_imagefolder(root.string(), 0, {}, train, test);
  ASSERT_EQ(train.x.sizes(), (std::vector<int64_t>{1, 3, 16, 12}));
  // Lossy, but close to what was written.
  EXPECT_LT((train.x[0].to(torch::kInt32) - chw(px, 16, 12, 3).to(torch::kInt32)).abs().to(torch::kFloat32).mean().item<float>(), 4.f);
  if (std::system("/usr/bin/python3 -c 'import PIL' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "python3-pil not installed: the exact comparison with PIL's decoder is skipped";
  const fs::path raw = root / "pil.bin";
  const std::string cmd = "/usr/bin/python3 -c \"import sys; from PIL import Image; "
                          "sys.stdout.buffer.write(Image.open('" + (root / "train" / "x" / "0.jpg").string() +
                          "').convert('RGB').tobytes())\" > " + raw.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string pil = slurp(raw.string());
  ASSERT_EQ(pil.size(), 16u * 12u * 3u);
  std::vector<uint8_t> pil_px(pil.begin(), pil.end());
  EXPECT_TRUE(torch::equal(train.x[0], chw(pil_px, 16, 12, 3))) << "JPEG pixels differ from PIL's";
  fs::remove_all(root);
}

TEST(ImageFolder, BadInputNamesTheFile) {
  auto root = fresh_dir("imagefolder-bad");
  auto fresh = [&] {
    fs::remove_all(root);
    write_png(root / "train" / "a" / "0.png", pattern(4, 4, 3, 1), 4, 4, 3);
    write_png(root / "train" / "b" / "0.png", pattern(4, 4, 3, 2), 4, 4, 3);
    write_png(root / "test" / "a" / "0.png", pattern(4, 4, 3, 3), 4, 4, 3);
  };
  Split train, test;
  auto expect_error = [&](const std::string& needle, const std::string& what) {
    std::string msg;
    EXPECT_EQ(exit_code_of([&] { load_imagefolder(root.string(), 0, {}, train, test); }, &msg), exit_status(ExitCode::kData)) << what;
    EXPECT_NE(msg.find(needle), std::string::npos) << what << ": " << msg;
  };
  fresh();
  fs::create_directories(root / "train" / "empty");
  expect_error("empty", "an empty class folder");
  fresh();
  std::ofstream(root / "train" / "a" / "notes.txt") << "hello";
  expect_error("notes.txt", "a non-image file");
  fresh();
  {
    std::string png = slurp((root / "train" / "b" / "0.png").string());
    std::ofstream(root / "train" / "b" / "0.png", std::ios::binary) << png.substr(0, png.size() / 2);
  }
  expect_error("0.png", "a truncated PNG");
  fresh();
  write_jpeg(root / "train" / "b" / "1.jpg", pattern(4, 4, 3, 4), 4, 4, 3);
  {
    std::string jpg = slurp((root / "train" / "b" / "1.jpg").string());
    std::ofstream(root / "train" / "b" / "1.jpg", std::ios::binary) << jpg.substr(0, jpg.size() - 40);
  }
  expect_error("1.jpg", "a truncated JPEG");
  fresh();
  write_png(root / "test" / "zebra" / "0.png", pattern(4, 4, 3, 5), 4, 4, 3);
  expect_error("zebra", "a test class the training split lacks");
  fresh();
  fs::remove_all(root / "test");
  expect_error("no such directory", "no test split");
  fs::remove_all(root);
}

TEST(Npy, ReadsEveryLayoutAndLabelType) {
  auto root = fresh_dir("npy");
  // 3 training images 2 x 4 x 5 (C, H, W) written N x H x W x C, labels int64; test N x C x H x W, uint8 labels.
  std::vector<uint8_t> nchw(3 * 2 * 4 * 5);
  for (size_t i = 0; i < nchw.size(); ++i) nchw[i] = static_cast<uint8_t>(i * 7 % 251);
  auto t = torch::from_blob(nchw.data(), {3, 2, 4, 5}, torch::kUInt8).clone();
  auto nhwc = t.permute({0, 2, 3, 1}).contiguous();
  write_npy(root / "x_train.npy", "|u1", {3, 4, 5, 2},
            std::string(reinterpret_cast<const char*>(nhwc.data_ptr<uint8_t>()), nhwc.numel()));
  write_npy(root / "y_train.npy", "<i8", {3}, bytes_of(std::vector<int64_t>{2, 0, 1}));
  write_npy(root / "x_test.npy", "|u1", {3, 2, 4, 5}, bytes_of(nchw));
  write_npy(root / "y_test.npy", "|u1", {3, 1}, bytes_of(std::vector<uint8_t>{1, 1, 0}));
  Split train, test;
  load_npy(root.string(), 0, train, test);
  EXPECT_TRUE(torch::equal(train.x, t));
  EXPECT_TRUE(torch::equal(test.x, t));
  EXPECT_TRUE(torch::equal(train.y, torch::tensor({2, 0, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(test.y, torch::tensor({1, 1, 0}, torch::kInt64)));
  // Gray N x H x W with int32 labels, through the config (classes from data.classes).
  write_npy(root / "x_train.npy", "|u1", {4, 3, 3}, std::string(36, '\x05'));
  write_npy(root / "y_train.npy", "<i4", {4}, bytes_of(std::vector<int32_t>{0, 1, 2, 3}));
  write_npy(root / "x_test.npy", "|u1", {2, 3, 3}, std::string(18, '\x06'));
  write_npy(root / "y_test.npy", "<i4", {2}, bytes_of(std::vector<int32_t>{3, 0}));
  DataConfig cfg;
  cfg.format = "npy", cfg.root = root.string(), cfg.val_size = 1, cfg.classes = 6;
  Dataset ds = load_dataset(cfg, 1);
  EXPECT_EQ(ds.classes, 6);
  EXPECT_EQ(ds.channels, 1);
  EXPECT_EQ(ds.height, 3);
  fs::remove_all(root);
}

TEST(Npy, BadInputNamesTheFile) {
  auto root = fresh_dir("npy-bad");
  auto good = [&] {
    write_npy(root / "x_train.npy", "|u1", {2, 3, 3}, std::string(18, '\x01'));
    write_npy(root / "y_train.npy", "<i8", {2}, bytes_of(std::vector<int64_t>{0, 1}));
    write_npy(root / "x_test.npy", "|u1", {1, 3, 3}, std::string(9, '\x02'));
    write_npy(root / "y_test.npy", "<i8", {1}, bytes_of(std::vector<int64_t>{1}));
  };
  Split train, test;
  auto expect_error = [&](int64_t classes, const std::string& needle, const std::string& what) {
    std::string msg;
    EXPECT_EQ(exit_code_of([&] { load_npy(root.string(), classes, train, test); }, &msg), exit_status(ExitCode::kData)) << what;
    EXPECT_NE(msg.find(needle), std::string::npos) << what << ": " << msg;
  };
  good();
  load_npy(root.string(), 0, train, test);  // the baseline loads
  write_npy(root / "y_train.npy", "<i8", {3}, bytes_of(std::vector<int64_t>{0, 1, 1}));
  expect_error(0, "y_train.npy", "x and y of different lengths");
  good();
  write_npy(root / "y_train.npy", "<i8", {2}, bytes_of(std::vector<int64_t>{0, -1}));
  expect_error(0, "label -1", "a negative label");
  good();
  expect_error(1, "label 1", "a label outside data.classes");
  good();
  write_npy(root / "x_train.npy", "<f4", {2, 3, 3}, std::string(72, '\0'));
  expect_error(0, "uint8", "float images");
  good();
  write_npy(root / "x_train.npy", "|u1", {2, 3, 3}, std::string(18, '\x01'), /*fortran=*/true);
  expect_error(0, "Fortran", "Fortran order");
  good();
  write_npy(root / "x_train.npy", "|u1", {2, 3, 3}, std::string(10, '\x01'));
  expect_error(0, "truncated", "a truncated file");
  good();  // a zero dimension must not hide the others' overflow (found by the fuzzer)
  write_npy(root / "x_train.npy", "|u1", {0, 266666666664, 88888888883}, "");
  expect_error(0, "too many elements", "dimensions whose product overflows");
  good();
  std::ofstream(root / "x_test.npy") << "not numpy at all";
  expect_error(0, "x_test.npy", "not a .npy file");
  good();
  fs::remove(root / "y_test.npy");
  expect_error(0, "y_test.npy", "a missing file");
  good();
  write_npy(root / "x_test.npy", "|u1", {1, 4, 3}, std::string(12, '\x02'));
  expect_error(0, "shape", "test images of another shape");
  fs::remove_all(root);
}

// The whole tool on an image folder, as a user runs it: train-base exits 0; a corrupt image exits 3
// with a message that names it.
TEST(ImageFolder, CliTrainsAndRefusesACorruptImage) {
  auto root = fresh_dir("imagefolder-cli");
  for (int k = 0; k < 2; ++k)
    for (int i = 0; i < 30; ++i) {
      std::vector<uint8_t> px(8 * 8, static_cast<uint8_t>(k ? 200 : 40));
      for (size_t p = 0; p < px.size(); ++p) px[p] = static_cast<uint8_t>(px[p] + (p * 7 + i) % 30);
      write_png(root / "data" / (i < 24 ? "train" : "test") / (k ? "bright" : "dark") / (std::to_string(i) + ".png"), px, 8,
                8, 1);
    }
  const std::string args = " --device cpu -w " + (root / "w").string() + " --set data.format=imagefolder --set data.root=" +
                           (root / "data").string() + " --set data.val_size=8 --set train.epochs=1";
  auto r = run_apricot("train-base" + args);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("2 classes (bright, dark)"), std::string::npos) << r.err;
  std::ofstream(root / "data" / "train" / "dark" / "3.png", std::ios::binary) << "\x89PNG\r\n\x1a\n garbage";
  r = run_apricot("train-base --force" + args);
  EXPECT_EQ(r.code, exit_status(ExitCode::kData)) << r.err;
  EXPECT_NE(r.err.find("3.png"), std::string::npos) << r.err;
  fs::remove_all(root);
}

// The image-folder loader against the CIFAR-10 binary loader on the real data, image for image:
// APRICOT_CIFAR_FOLDER is the JPEG tarball unpacked (train/<class>/*.jpg, test/<class>/*.jpg) and
// APRICOT_CIFAR_BIN the binary layout that ../shared/data/make-cifar10-bin (PIL) writes from it, in
// a shuffled order: every split must hold the same (image, label) pairs. Prints both load times.
// Skipped unless both are set (the data is not part of the repository).
TEST(ImageFolder, RealCifar10AgreesWithTheBinaryLoader) {
  const char* folder = std::getenv("APRICOT_CIFAR_FOLDER");
  const char* bin = std::getenv("APRICOT_CIFAR_BIN");
  if (!folder || !bin) GTEST_SKIP() << "set APRICOT_CIFAR_FOLDER and APRICOT_CIFAR_BIN to run it";
  auto seconds = [](const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  Split ftrain, ftest, btrain, btest;
  std::vector<std::string> names;
  const double tf = seconds([&] { load_imagefolder(folder, 0, {}, ftrain, ftest, &names); });
  const double tb = seconds([&] { load_cifar10(bin, btrain, btest); });
  std::printf("image folder: %.2f s, binary: %.2f s (%lld + %lld images)\n", tf, tb,
              static_cast<long long>(ftrain.size()), static_cast<long long>(ftest.size()));
  EXPECT_EQ(names, (std::vector<std::string>{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                             "ship", "truck"}));
  // Sort both splits by (label, pixels) and compare row for row.
  auto sorted_rows = [](const Split& s) {
    std::vector<std::string> rows(s.size());
    const auto x = s.x.contiguous();
    const int64_t image = x[0].numel();
    for (int64_t i = 0; i < s.size(); ++i)
      rows[i] = std::to_string(s.y[i].item<int64_t>()) + ":" +
                std::string(reinterpret_cast<const char*>(x.data_ptr<uint8_t>()) + i * image, image);
    std::sort(rows.begin(), rows.end());
    return rows;
  };
  for (auto [f, b, name] : {std::tuple<Split*, Split*, const char*>{&ftrain, &btrain, "train"}, {&ftest, &btest, "test"}}) {
    ASSERT_EQ(f->size(), b->size()) << name;
    const auto fr = sorted_rows(*f), br = sorted_rows(*b);
    int64_t differ = 0;
    for (size_t i = 0; i < fr.size(); ++i) differ += fr[i] != br[i];
    EXPECT_EQ(differ, 0) << name << ": " << differ << " of " << fr.size() << " (label, image) pairs differ";
  }
}
