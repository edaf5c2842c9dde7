// Data module tests: loaders read back small files written here, byte for byte; malformed files fail
// with kData naming the file; splits, normaliser and shifts are checked against hand-computed values
// and a naive reference. Real Fashion-MNIST is used only where the Debian package is installed.
#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/data/formats.hpp"
#include "apricot/data/augment.hpp"
#include "cli_util.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>
#include <unistd.h>

namespace fs = std::filesystem;
using apricot::DataConfig;
using apricot::ExitCode;
using apricot::Split;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = fs::temp_directory_path() /
           ("apricot-test-data-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) +
            "-" + (info ? info->name() : "x"));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << p;
}

void write_gz(const fs::path& p, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  ASSERT_NE(f, nullptr) << p;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// Pixel byte of CIFAR record `rec` (global index) at plane offset i in [0, 3072).
uint8_t cifar_pixel(int rec, int i) { return static_cast<uint8_t>((rec * 37 + i * 11 + i / 97) & 0xFF); }

// Writes records first..first+labels.size()-1 with the given labels.
std::vector<uint8_t> cifar_bytes(int first, const std::vector<int>& labels) {
  std::vector<uint8_t> b;
  for (size_t k = 0; k < labels.size(); ++k) {
    b.push_back(static_cast<uint8_t>(labels[k]));
    for (int i = 0; i < 3072; ++i) b.push_back(cifar_pixel(first + static_cast<int>(k), i));
  }
  return b;
}

// The expected (N, 3, 32, 32) tensor for records first..first+n-1, built pixel by pixel.
torch::Tensor cifar_expected(int first, int n) {
  auto t = torch::empty({n, 3, 32, 32}, torch::kUInt8);
  auto a = t.accessor<uint8_t, 4>();
  for (int k = 0; k < n; ++k)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 32; ++h)
        for (int w = 0; w < 32; ++w) a[k][c][h][w] = cifar_pixel(first + k, c * 1024 + h * 32 + w);
  return t;
}

std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b = {0, 0, 8, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>((d >> s) & 0xFF));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::vector<uint8_t> ramp(size_t n, int mul, int add) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * mul + add) & 0xFF);
  return v;
}

// Runs f, expects an apricot::Error with `code` whose what() contains every string in `needles`.
void expect_error(const std::function<void()>& f, ExitCode code,
                  const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception thrown";
  } catch (const apricot::Error& e) {
    EXPECT_EQ(static_cast<int>(e.code()), static_cast<int>(code)) << e.what();
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << "'" << n << "' not in: " << e.what();
  }
}

DataConfig synthetic_cfg() {
  DataConfig c;
  c.format = "synthetic";
  c.synthetic_train = 200;
  c.synthetic_test = 60;
  c.synthetic_shape = {2, 8, 8};
  c.synthetic_classes = 3;
  c.val_size = 30;
  return c;
}

// True where row i of a (N, ...) equals some row of b (M, ...).
torch::Tensor rows_in(const torch::Tensor& a, const torch::Tensor& b) {
  auto fa = a.reshape({a.size(0), 1, -1}), fb = b.reshape({1, b.size(0), -1});
  return (fa == fb).all(2).any(1);  // (N)
}

}  // namespace

// ---- CIFAR-10 ---------------------------------------------------------------------------------

TEST(Cifar10, LoadsRecordsExactly) {
  TempDir d;
  write_bytes(d.path / "data_batch_1.bin", cifar_bytes(0, {3, 0, 9}));
  write_bytes(d.path / "data_batch_2.bin", cifar_bytes(3, {1, 7}));
  write_bytes(d.path / "test_batch.bin", cifar_bytes(100, {5, 2}));
  Split train, test;
  apricot::load_cifar10(d.str(), train, test);
  ASSERT_EQ(train.x.sizes(), torch::IntArrayRef({5, 3, 32, 32}));
  EXPECT_EQ(train.x.scalar_type(), torch::kUInt8);
  EXPECT_EQ(train.y.scalar_type(), torch::kLong);
  EXPECT_TRUE(train.x.equal(cifar_expected(0, 5)));
  EXPECT_TRUE(train.y.equal(torch::tensor({3, 0, 9, 1, 7}, torch::kLong)));
  ASSERT_EQ(test.x.sizes(), torch::IntArrayRef({2, 3, 32, 32}));
  EXPECT_TRUE(test.x.equal(cifar_expected(100, 2)));
  EXPECT_TRUE(test.y.equal(torch::tensor({5, 2}, torch::kLong)));
}

TEST(Cifar10, TruncatedFileNamesFileAndSize) {
  TempDir d;
  auto b = cifar_bytes(0, {1, 2});
  b.resize(b.size() - 5);
  write_bytes(d.path / "data_batch_1.bin", b);
  write_bytes(d.path / "test_batch.bin", cifar_bytes(0, {1}));
  Split tr, te;
  expect_error([&] { apricot::load_cifar10(d.str(), tr, te); }, ExitCode::kData,
               {"data_batch_1.bin", "truncated", std::to_string(b.size())});
}

TEST(Cifar10, LabelOutOfRangeNamesRecord) {
  TempDir d;
  write_bytes(d.path / "data_batch_1.bin", cifar_bytes(0, {1, 2}));
  write_bytes(d.path / "test_batch.bin", cifar_bytes(0, {4, 10, 3}));
  Split tr, te;
  expect_error([&] { apricot::load_cifar10(d.str(), tr, te); }, ExitCode::kData,
               {"test_batch.bin", "record 1", "label 10"});
}

TEST(Cifar10, MissingFilesNamePath) {
  TempDir d;
  Split tr, te;
  expect_error([&] { apricot::load_cifar10(d.str(), tr, te); }, ExitCode::kData,
               {"data_batch_1.bin"});
  write_bytes(d.path / "data_batch_1.bin", cifar_bytes(0, {1}));
  expect_error([&] { apricot::load_cifar10(d.str(), tr, te); }, ExitCode::kData,
               {"test_batch.bin"});
  expect_error([&] { apricot::load_cifar10((d.path / "nope").string(), tr, te); }, ExitCode::kData,
               {"nope"});
}

// ---- IDX --------------------------------------------------------------------------------------

TEST(Idx, LoadsPlainAndGzipExactly) {
  for (int gz_mask : {0, 0b0101, 0b1111}) {  // which of the four files are gzipped
    TempDir d;
    const int n_train = 5, n_test = 3, H = 4, W = 3;  // non-square to catch transposition
    auto tr_x = ramp(n_train * H * W, 7, 1), te_x = ramp(n_test * H * W, 13, 5);
    std::vector<uint8_t> tr_y = {0, 4, 2, 2, 1}, te_y = {3, 0, 1};
    struct F {
      std::string name;
      std::vector<uint8_t> bytes;
    };
    std::vector<F> files = {
        {"train-images-idx3-ubyte", idx_bytes({n_train, H, W}, tr_x)},
        {"train-labels-idx1-ubyte", idx_bytes({n_train}, tr_y)},
        {"t10k-images-idx3-ubyte", idx_bytes({n_test, H, W}, te_x)},
        {"t10k-labels-idx1-ubyte", idx_bytes({n_test}, te_y)},
    };
    for (size_t i = 0; i < files.size(); ++i) {
      if (gz_mask & (1 << i))
        write_gz(d.path / (files[i].name + ".gz"), files[i].bytes);
      else
        write_bytes(d.path / files[i].name, files[i].bytes);
    }
    Split train, test;
    apricot::load_idx(d.str(), train, test);
    SCOPED_TRACE("gz_mask " + std::to_string(gz_mask));
    ASSERT_EQ(train.x.sizes(), torch::IntArrayRef({n_train, 1, H, W}));
    ASSERT_EQ(test.x.sizes(), torch::IntArrayRef({n_test, 1, H, W}));
    auto expect_x = [](const std::vector<uint8_t>& v, int n, int h, int w) {
      return torch::from_blob(const_cast<uint8_t*>(v.data()), {n, 1, h, w}, torch::kUInt8).clone();
    };
    EXPECT_TRUE(train.x.equal(expect_x(tr_x, n_train, H, W)));
    EXPECT_TRUE(test.x.equal(expect_x(te_x, n_test, H, W)));
    EXPECT_TRUE(train.y.equal(torch::tensor({0, 4, 2, 2, 1}, torch::kLong)));
    EXPECT_TRUE(test.y.equal(torch::tensor({3, 0, 1}, torch::kLong)));
    // Pixel (image 1, row 2, col 0) is byte 1*12 + 2*3 + 0 of the data.
    EXPECT_EQ(train.x[1][0][2][0].item<int>(), tr_x[18]);
  }
}

TEST(Idx, ReadFileKeepsDims) {
  TempDir d;
  auto data = ramp(2 * 3 * 4 * 5, 3, 0);
  write_gz(d.path / "t.gz", idx_bytes({2, 3, 4, 5}, data));
  auto t = apricot::read_idx_file((d.path / "t.gz").string());
  ASSERT_EQ(t.sizes(), torch::IntArrayRef({2, 3, 4, 5}));
  EXPECT_EQ(t[1][2][3][4].item<int>(), data[119]);
}

TEST(Idx, MalformedFilesFailWithFileName) {
  TempDir d;
  const auto p = d.path / "bad-magic";
  auto b = idx_bytes({2, 2}, ramp(4, 1, 0));
  b[0] = 0x1f;  // not gzip either: 1f 00
  write_bytes(p, b);
  expect_error([&] { apricot::read_idx_file(p.string()); }, ExitCode::kData,
               {"bad-magic", "not an IDX file", "0x1f"});

  const auto t = d.path / "short";
  auto s = idx_bytes({3, 4}, ramp(12, 1, 0));
  s.resize(s.size() - 2);
  write_bytes(t, s);
  expect_error([&] { apricot::read_idx_file(t.string()); }, ExitCode::kData, {"short", "truncated"});
  write_gz(d.path / "short.gz", s);
  expect_error([&] { apricot::read_idx_file((d.path / "short.gz").string()); }, ExitCode::kData,
               {"short.gz", "truncated"});

  const auto h = d.path / "header";
  write_bytes(h, {0, 0, 8, 3, 0, 0});
  expect_error([&] { apricot::read_idx_file(h.string()); }, ExitCode::kData, {"header", "truncated"});

  expect_error([&] { apricot::read_idx_file((d.path / "absent").string()); }, ExitCode::kData,
               {"absent"});
}

TEST(Idx, CountMismatchAndMissingFile) {
  TempDir d;
  write_bytes(d.path / "train-images-idx3-ubyte", idx_bytes({3, 2, 2}, ramp(12, 1, 0)));
  write_bytes(d.path / "train-labels-idx1-ubyte", idx_bytes({2}, {0, 1}));
  Split tr, te;
  expect_error([&] { apricot::load_idx(d.str(), tr, te); }, ExitCode::kData,
               {"train-images-idx3-ubyte", "3 images", "2 labels"});
  write_bytes(d.path / "train-labels-idx1-ubyte", idx_bytes({3}, {0, 1, 1}));
  expect_error([&] { apricot::load_idx(d.str(), tr, te); }, ExitCode::kData,
               {"t10k-images-idx3-ubyte"});
}

TEST(Idx, RealFashionMnist) {
  const std::string root = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(root + "/train-images-idx3-ubyte.gz") &&
      !fs::exists(root + "/train-images-idx3-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  DataConfig c;
  c.format = "idx";
  c.root = root;
  c.val_from = "test";
  c.val_size = 2000;
  c.normalize = "channel";
  auto ds = apricot::load_dataset(c, 0);
  EXPECT_EQ(ds.classes, 10);
  EXPECT_EQ(ds.channels, 1);
  EXPECT_EQ(ds.height, 28);
  EXPECT_EQ(ds.width, 28);
  ASSERT_EQ(ds.train.x.sizes(), torch::IntArrayRef({60000, 1, 28, 28}));
  EXPECT_EQ(ds.val.size() + ds.test.size(), 10000);
  EXPECT_TRUE(ds.train.y.slice(0, 0, 10).equal(
      torch::tensor({9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, torch::kLong)));
  EXPECT_EQ(ds.train.x[0].sum().item<int64_t>(), 76247);  // checked with Python's gzip module
  EXPECT_TRUE(torch::bincount(ds.train.y).equal(torch::full({10}, 6000, torch::kLong)));

  Split train, test;
  apricot::load_idx(root, train, test);
  ASSERT_EQ(test.x.sizes(), torch::IntArrayRef({10000, 1, 28, 28}));
  EXPECT_TRUE(test.y.slice(0, 0, 10).equal(
      torch::tensor({9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, torch::kLong)));
  EXPECT_EQ(test.x[0].sum().item<int64_t>(), 33456);
}

// ---- Synthetic --------------------------------------------------------------------------------

TEST(Synthetic, DeterministicBalancedAndLearnable) {
  torch::manual_seed(123);
  auto global_before = torch::rand({1});
  torch::manual_seed(123);
  Split a, at, b, bt, c, ct;
  apricot::make_synthetic(300, 90, 2, 8, 8, 3, 7, a, at);
  apricot::make_synthetic(300, 90, 2, 8, 8, 3, 7, b, bt);
  apricot::make_synthetic(300, 90, 2, 8, 8, 3, 8, c, ct);
  EXPECT_TRUE(torch::rand({1}).equal(global_before)) << "global generator was consumed";
  ASSERT_EQ(a.x.sizes(), torch::IntArrayRef({300, 2, 8, 8}));
  ASSERT_EQ(at.x.sizes(), torch::IntArrayRef({90, 2, 8, 8}));
  EXPECT_EQ(a.x.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(a.x.equal(b.x) && a.y.equal(b.y) && at.x.equal(bt.x) && at.y.equal(bt.y));
  EXPECT_FALSE(a.x.equal(c.x));
  EXPECT_TRUE(torch::bincount(a.y, {}, 3).equal(torch::full({3}, 100, torch::kLong)));
  EXPECT_EQ(at.y.min().item<int64_t>(), 0);
  EXPECT_EQ(at.y.max().item<int64_t>(), 2);

  // Learnable with the same prototypes on both splits: nearest class mean fitted on train
  // classifies test well above chance (1/3).
  auto xf = a.x.to(torch::kFloat).reshape({300, -1});
  auto means = torch::stack({xf.index({a.y == 0}).mean(0), xf.index({a.y == 1}).mean(0),
                             xf.index({a.y == 2}).mean(0)});  // (3, D)
  auto tf = at.x.to(torch::kFloat).reshape({90, -1});
  auto pred = torch::cdist(tf, means).argmin(1);
  EXPECT_GT((pred == at.y).to(torch::kFloat).mean().item<double>(), 0.8);
}

// ---- Normalizer -------------------------------------------------------------------------------

TEST(Normalizer, HandCheckedChannelPixelScale) {
  // Two 2-channel 2x2 images, each channel constant: ch0 = 0 / 255, ch1 = 51 / 153.
  auto x = torch::empty({2, 2, 2, 2}, torch::kUInt8);
  x[0][0].fill_(0);
  x[1][0].fill_(255);
  x[0][1].fill_(51);
  x[1][1].fill_(153);
  auto ch = apricot::Normalizer::fit("channel", x);
  ASSERT_EQ(ch.mean.sizes(), torch::IntArrayRef({2, 1, 1}));
  EXPECT_TRUE(ch.mean.flatten().allclose(torch::tensor({0.5f, 0.4f})));
  EXPECT_TRUE(ch.std.flatten().allclose(torch::tensor({0.5f, 0.2f})));
  auto y = ch.apply(x);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  EXPECT_TRUE(y[0].allclose(torch::full({2, 2, 2}, -1.0f), 1e-5, 1e-5));
  EXPECT_TRUE(y[1].allclose(torch::full({2, 2, 2}, 1.0f), 1e-5, 1e-5));

  auto px = apricot::Normalizer::fit("pixel", x);
  ASSERT_EQ(px.mean.sizes(), torch::IntArrayRef({2, 2, 2}));
  EXPECT_FALSE(px.std.defined());
  auto yp = px.apply(x);
  EXPECT_TRUE(yp[0][0].allclose(torch::full({2, 2}, -0.5f)));
  EXPECT_TRUE(yp[0][1].allclose(torch::full({2, 2}, -0.2f)));
  EXPECT_TRUE(yp[1][1].allclose(torch::full({2, 2}, 0.2f)));

  auto sc = apricot::Normalizer::fit("scale", x);
  EXPECT_FALSE(sc.mean.defined());
  EXPECT_TRUE(sc.apply(x).allclose(x.to(torch::kFloat) / 255));

  // A constant channel is centred, not divided by zero.
  auto k = torch::full({3, 1, 2, 2}, 7, torch::kUInt8);
  auto yk = apricot::Normalizer::fit("channel", k).apply(k);
  EXPECT_TRUE(torch::isfinite(yk).all().item<bool>());

  expect_error([&] { apricot::Normalizer::fit("zscore", x); }, ExitCode::kUsage,
               {"data.normalize", "zscore"});
}

TEST(Normalizer, JsonRoundTrip) {
  auto x = torch::randint(0, 256, {5, 3, 4, 4}, torch::kUInt8);
  for (const char* kind : {"scale", "channel", "pixel"}) {
    auto n = apricot::Normalizer::fit(kind, x);
    auto j = n.to_json();
    auto m = apricot::Normalizer::from_json(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(m.kind, kind);
    EXPECT_TRUE(m.apply(x).allclose(n.apply(x), 1e-6, 1e-6)) << kind;
  }
  EXPECT_EQ(apricot::Normalizer::fit("channel", x).to_json()["mean"].size(), 3u);
  EXPECT_THROW(apricot::Normalizer::from_json({{"kind", "channel"}, {"mean", {1, 2}}}),
               apricot::Error);
}

TEST(Normalizer, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << apricot::test::why_no_cuda();
  auto x = torch::randint(0, 256, {4, 3, 5, 5}, torch::kUInt8);
  for (const char* kind : {"channel", "pixel"}) {
    auto n = apricot::Normalizer::fit(kind, x);
    auto g = n.apply(x.to(torch::kCUDA));
    EXPECT_TRUE(g.is_cuda());
    EXPECT_TRUE(g.cpu().allclose(n.apply(x), 1e-5, 1e-5)) << kind;
  }
}

// ---- Augmentation -----------------------------------------------------------------------------

namespace {

// Naive reference: out[b,c,i,j] = x[b,c,i-dy,j-dx], edge-clamped or zero outside.
torch::Tensor shift_reference(const torch::Tensor& x, const torch::Tensor& dy, const torch::Tensor& dx,
                              bool zero) {
  auto out = torch::empty_like(x);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto xa = x.accessor<float, 4>();
  auto oa = out.accessor<float, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) {
          int64_t r = i - dy[b].item<int64_t>(), q = j - dx[b].item<int64_t>();
          bool inside = r >= 0 && r < H && q >= 0 && q < W;
          r = std::clamp<int64_t>(r, 0, H - 1);
          q = std::clamp<int64_t>(q, 0, W - 1);
          oa[b][c][i][j] = (zero && !inside) ? 0.f : xa[b][c][r][q];
        }
  return out;
}

torch::Tensor grid3(std::vector<float> v) { return torch::tensor(v).view({1, 1, 3, 3}); }

}  // namespace

TEST(Augment, ShiftHandChecked) {
  auto x = grid3({1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto one = torch::tensor({1}, torch::kLong), zero = torch::tensor({0}, torch::kLong),
       minus = torch::tensor({-1}, torch::kLong);
  EXPECT_TRUE(apricot::shift_batch(x, one, zero, "edge").equal(grid3({1, 2, 3, 1, 2, 3, 4, 5, 6})));
  EXPECT_TRUE(apricot::shift_batch(x, one, zero, "zero").equal(grid3({0, 0, 0, 1, 2, 3, 4, 5, 6})));
  EXPECT_TRUE(apricot::shift_batch(x, zero, minus, "edge").equal(grid3({2, 3, 3, 5, 6, 6, 8, 9, 9})));
  EXPECT_TRUE(apricot::shift_batch(x, zero, minus, "zero").equal(grid3({2, 3, 0, 5, 6, 0, 8, 9, 0})));
  // Per-image offsets in one batch.
  auto xb = torch::cat({x, x});
  auto yb = apricot::shift_batch(xb, torch::tensor({1, 0}, torch::kLong),
                                 torch::tensor({0, -1}, torch::kLong), "zero");
  EXPECT_TRUE(yb[0].equal(grid3({0, 0, 0, 1, 2, 3, 4, 5, 6})[0]));
  EXPECT_TRUE(yb[1].equal(grid3({2, 3, 0, 5, 6, 0, 8, 9, 0})[0]));
  expect_error([&] { apricot::shift_batch(x, one, zero, "wrap"); }, ExitCode::kUsage,
               {"train.augment.fill"});
}

TEST(Augment, ShiftMatchesNaiveReference) {
  torch::manual_seed(0);
  auto x = torch::randn({6, 2, 5, 7});
  auto dy = torch::randint(-6, 7, {6}, torch::kLong), dx = torch::randint(-8, 9, {6}, torch::kLong);
  for (bool zero : {false, true})
    EXPECT_TRUE(apricot::shift_batch(x, dy, dx, zero ? "zero" : "edge")
                    .equal(shift_reference(x, dy, dx, zero)))
        << zero;
}

TEST(Augment, FlipOnlyGivesImageOrMirror) {
  auto x = torch::randn({64, 2, 4, 5});
  auto gen = at::detail::createCPUGenerator(11);
  auto y = apricot::augment_batch(x, 0.0, "edge", true, gen);
  int flipped = 0, same = 0;
  for (int64_t b = 0; b < 64; ++b) {
    const bool s = y[b].equal(x[b]), f = y[b].equal(x[b].flip({2}));
    EXPECT_TRUE(s || f) << b;
    same += s;
    flipped += f;
  }
  EXPECT_GT(same, 0);
  EXPECT_GT(flipped, 0);
  auto gen2 = at::detail::createCPUGenerator(11);
  EXPECT_TRUE(apricot::augment_batch(x, 0.0, "edge", true, gen2).equal(y));
  // Nothing to do: the input comes back as is.
  EXPECT_TRUE(apricot::augment_batch(x, 0.0, "edge", false, gen).is_same(x));
}

TEST(Augment, ShiftStaysInRange) {
  auto x = torch::randn({16, 1, 10, 10});
  auto gen = at::detail::createCPUGenerator(5);
  auto y = apricot::augment_batch(x, 0.2, "zero", false, gen);  // |dy|, |dx| <= 2
  for (int64_t b = 0; b < 16; ++b) {
    bool found = false;
    for (int64_t dy = -2; dy <= 2 && !found; ++dy)
      for (int64_t dx = -2; dx <= 2 && !found; ++dx)
        found = y[b].equal(shift_reference(x.slice(0, b, b + 1), torch::tensor({dy}),
                                           torch::tensor({dx}), true)[0]);
    EXPECT_TRUE(found) << b;
  }
}

TEST(Augment, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << apricot::test::why_no_cuda();
  auto x = torch::randn({8, 3, 6, 6});
  auto g1 = at::detail::createCPUGenerator(3), g2 = at::detail::createCPUGenerator(3);
  auto cpu = apricot::augment_batch(x, 0.25, "edge", true, g1);
  auto gpu = apricot::augment_batch(x.to(torch::kCUDA), 0.25, "edge", true, g2);
  EXPECT_TRUE(gpu.is_cuda());
  EXPECT_TRUE(gpu.cpu().equal(cpu));
}

// ---- Pipeline ---------------------------------------------------------------------------------

TEST(LoadDataset, ValidationFromTrain) {
  auto c = synthetic_cfg();
  auto full_cfg = c;
  full_cfg.val_from = "test";  // leaves train whole, for reference
  full_cfg.val_size = 1;
  auto full = apricot::load_dataset(full_cfg, 0);
  auto ds = apricot::load_dataset(c, 0);
  EXPECT_EQ(ds.name, "synthetic");
  EXPECT_EQ(ds.classes, 3);
  EXPECT_EQ(ds.channels, 2);
  EXPECT_EQ(ds.height, 8);
  EXPECT_EQ(ds.width, 8);
  EXPECT_EQ(ds.train.size(), 170);
  EXPECT_EQ(ds.val.size(), 30);
  EXPECT_EQ(ds.test.size(), 60);
  // Disjoint, together the original train split; the rest keeps its original order.
  EXPECT_FALSE(rows_in(ds.val.x, ds.train.x).any().item<bool>());
  EXPECT_TRUE(rows_in(ds.val.x, full.train.x).all().item<bool>());
  auto kept = rows_in(full.train.x, ds.train.x);  // (200) bool
  EXPECT_EQ(kept.sum().item<int64_t>(), 170);
  EXPECT_TRUE(full.train.x.index({kept}).equal(ds.train.x));
  EXPECT_TRUE(full.train.y.index({kept}).equal(ds.train.y));

  // Deterministic in the seed; another seed takes other rows.
  auto again = apricot::load_dataset(c, 0);
  EXPECT_TRUE(again.val.x.equal(ds.val.x));
  EXPECT_EQ(again.fingerprint, ds.fingerprint);
  auto other = apricot::load_dataset(c, 1);
  EXPECT_FALSE(other.val.x.equal(ds.val.x));
  EXPECT_NE(other.fingerprint, ds.fingerprint);
  EXPECT_TRUE(other.test.x.equal(ds.test.x));  // the data itself does not depend on the seed
}

TEST(LoadDataset, ValidationFromTest) {
  auto c = synthetic_cfg();
  c.val_from = "test";
  c.val_size = 20;
  auto ds = apricot::load_dataset(c, 3);
  auto ref_cfg = synthetic_cfg();
  ref_cfg.val_size = 1;
  auto ref = apricot::load_dataset(ref_cfg, 3);  // test untouched
  EXPECT_EQ(ds.train.size(), 200);
  EXPECT_EQ(ds.val.size(), 20);
  EXPECT_EQ(ds.test.size(), 40);
  EXPECT_FALSE(rows_in(ds.val.x, ds.test.x).any().item<bool>());
  EXPECT_TRUE(rows_in(ds.val.x, ref.test.x).all().item<bool>());
  EXPECT_TRUE(rows_in(ds.test.x, ref.test.x).all().item<bool>());
}

TEST(LoadDataset, LimitsNormaliserAndConfigErrors) {
  auto c = synthetic_cfg();
  c.train_limit = 100;
  c.test_limit = 50;
  c.val_size = 10;
  c.normalize = "channel";
  auto ds = apricot::load_dataset(c, 0);
  EXPECT_EQ(ds.train.size(), 90);
  EXPECT_EQ(ds.test.size(), 50);
  EXPECT_EQ(ds.norm.kind, "channel");
  auto direct = apricot::Normalizer::fit("channel", ds.train.x);  // fitted on the post-split train
  EXPECT_TRUE(ds.norm.mean.equal(direct.mean));

  auto bad = synthetic_cfg();
  bad.val_size = 200;
  expect_error([&] { apricot::load_dataset(bad, 0); }, ExitCode::kUsage, {"data.val_size"});
  bad.val_size = 0;
  expect_error([&] { apricot::load_dataset(bad, 0); }, ExitCode::kUsage, {"data.val_size"});
  // The hint names only a key that makes room: the synthetic size when no limit is set, else the limit.
  auto hint_of = [](const DataConfig& cfg) {
    try {
      apricot::load_dataset(cfg, 0);
    } catch (const apricot::Error& e) {
      return e.hint();
    }
    return std::string("no error");
  };
  bad = synthetic_cfg();
  bad.val_size = 200;
  EXPECT_NE(hint_of(bad).find("data.synthetic_train"), std::string::npos) << hint_of(bad);
  EXPECT_EQ(hint_of(bad).find("_limit"), std::string::npos) << hint_of(bad);
  bad.train_limit = 100;
  EXPECT_NE(hint_of(bad).find("data.train_limit"), std::string::npos) << hint_of(bad);
  bad = synthetic_cfg();
  bad.val_from = "test";
  bad.val_size = 60;
  EXPECT_NE(hint_of(bad).find("data.synthetic_test"), std::string::npos) << hint_of(bad);
  bad = synthetic_cfg();
  bad.format = "cifar100";
  expect_error([&] { apricot::load_dataset(bad, 0); }, ExitCode::kUsage, {"data.format", "cifar100"});
  bad.format = "idx";
  expect_error([&] { apricot::load_dataset(bad, 0); }, ExitCode::kUsage, {"data.root"});
  bad = synthetic_cfg();
  bad.val_from = "both";
  expect_error([&] { apricot::load_dataset(bad, 0); }, ExitCode::kUsage, {"data.val_from"});
}

TEST(LoadDataset, Cifar10FingerprintTracksData) {
  TempDir d;
  std::vector<int> labels(40);
  for (int i = 0; i < 40; ++i) labels[i] = i % 10;
  auto train_bytes = cifar_bytes(0, labels);
  write_bytes(d.path / "data_batch_1.bin", train_bytes);
  write_bytes(d.path / "test_batch.bin", cifar_bytes(500, {1, 2, 3, 4}));
  DataConfig c;
  c.format = "cifar10";
  c.root = d.str();
  c.val_size = 8;
  auto a = apricot::load_dataset(c, 0);
  EXPECT_EQ(a.name, "cifar10");
  EXPECT_EQ(a.classes, 10);
  EXPECT_EQ(a.channels, 3);
  EXPECT_EQ(a.train.size(), 32);
  EXPECT_EQ(a.fingerprint.size(), 16u);
  EXPECT_EQ(apricot::load_dataset(c, 0).fingerprint, a.fingerprint);
  train_bytes[3073 * 7 + 1000] ^= 1;  // one pixel of one image
  write_bytes(d.path / "data_batch_1.bin", train_bytes);
  EXPECT_NE(apricot::load_dataset(c, 0).fingerprint, a.fingerprint);
}

// The in-memory halves behave like the file loaders; a header declaring far more data than the
// file holds is reported as truncated without allocating it (it used to allocate first: a 16-byte
// file declaring 2^40 bytes made LibTorch's allocator fail with a c10::Error, or took the memory).
TEST(Idx, InMemoryParseMatchesFileAndRefusesHugeClaims) {
  TempDir d;
  auto data = ramp(2 * 3 * 4, 5, 1);
  const auto bytes = idx_bytes({2, 3, 4}, data);
  write_gz(d.path / "t.gz", bytes);
  const std::string raw(bytes.begin(), bytes.end());
  auto from_file = apricot::read_idx_file((d.path / "t.gz").string());
  EXPECT_TRUE(apricot::parse_idx(raw, "mem").equal(from_file));

  auto huge = idx_bytes({1u << 20, 1u << 10, 1u << 10}, {1, 2, 3});  // declares 2^40 bytes, holds 3
  expect_error([&] { apricot::parse_idx(std::string(huge.begin(), huge.end()), "huge"); }, ExitCode::kData,
               {"huge", "truncated", "1099511627776", "holds 3"});

  // Two gzip members read as one stream; bytes after the last member that start no new member are
  // ignored (zlib's gzread does both).
  write_gz(d.path / "a.gz", std::vector<uint8_t>(bytes.begin(), bytes.begin() + 10));
  write_gz(d.path / "b.gz", std::vector<uint8_t>(bytes.begin() + 10, bytes.end()));
  std::ifstream a(d.path / "a.gz", std::ios::binary), b(d.path / "b.gz", std::ios::binary);
  std::string two((std::istreambuf_iterator<char>(a)), {});
  two.append(std::istreambuf_iterator<char>(b), {});
  EXPECT_TRUE(apricot::parse_idx(two, "two").equal(from_file));
  EXPECT_TRUE(apricot::parse_idx(two + "trailing", "two").equal(from_file));
  std::string corrupt = two;
  corrupt[corrupt.size() / 2] ^= 0x55;
  corrupt[corrupt.size() / 2 + 1] ^= 0x55;
  expect_error([&] { apricot::parse_idx(corrupt, "corrupt.gz"); }, ExitCode::kData, {"corrupt.gz"});
}

TEST(Cifar, InMemoryParseMatchesFile) {
  const auto b = cifar_bytes(4, {2, 8});
  auto s = apricot::parse_cifar_batch(std::string(b.begin(), b.end()), "mem.bin");
  EXPECT_TRUE(s.x.equal(cifar_expected(4, 2)));
  EXPECT_EQ(s.y[1].item<int64_t>(), 8);
  expect_error([&] { apricot::parse_cifar_batch(std::string(b.begin(), b.end() - 1), "short.bin"); },
               ExitCode::kData, {"short.bin", "truncated"});
  expect_error([&] { apricot::parse_cifar_batch("", "empty.bin"); }, ExitCode::kData, {"empty.bin"});
}

// Found while reviewing Normalizer::from_json for the metadata fuzz target: values that cannot be
// a float, and a zero std that would divide every input by zero, are refused as a corrupt checkpoint.
TEST(Normalizer, FromJsonRefusesUnusableValues) {
  auto j = nlohmann::json::parse(R"({"kind": "channel", "mean": [[[0.5]]], "std": [[[1e300]]]})");
  expect_error([&] { apricot::Normalizer::from_json(j); }, ExitCode::kState, {"normalizer.std", "float range"});
  j["std"] = nlohmann::json::parse("[[[0.0]]]");
  expect_error([&] { apricot::Normalizer::from_json(j); }, ExitCode::kState, {"std must be positive"});
  j["std"] = nlohmann::json::parse("[[[0.25]]]");
  EXPECT_FLOAT_EQ(apricot::Normalizer::from_json(j).std.item<float>(), 0.25f);
}
