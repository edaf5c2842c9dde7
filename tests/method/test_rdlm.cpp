// rDLM subsets (the paper's sliding windows, wrap-around, random, balanced), index lists, and the
// memoised correctness table against direct predictions, including its invalidation.
#include <gtest/gtest.h>

#include <filesystem>

#include "apricot/core/config.hpp"
#include "apricot/data/dataset.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/method/rdlm.hpp"
#include "apricot/train/eval.hpp"
#include "apricot/train/train.hpp"
#include "apricot/method/adjustment.hpp"
#include "apricot/pipeline/validate.hpp"
#include "apricot/data/formats.hpp"

using namespace apricot;
namespace fs = std::filesystem;

namespace {

Split labelled(int64_t n, int64_t classes) {
  return Split{torch::zeros({n, 1, 4, 4}, torch::kUInt8), torch::arange(n, torch::kInt64).remainder(classes)};
}

}  // namespace

TEST(RdlmSubset, SlidingWindowsAreThePapers) {
  RdlmConfig cfg;  // the paper's (and the presets'): 20 windows of 10,000 with stride 2,000
  cfg.size = 10000;
  cfg.stride = 2000;
  Split train = labelled(50000, 10);
  auto covered = torch::zeros({50000}, torch::kBool);
  for (int64_t k = 0; k < 20; ++k) {
    auto s = rdlm_subset(cfg, train, 10, 0, k);
    ASSERT_EQ(s.size(0), 10000);
    if (k == 0) {
      EXPECT_EQ(s[9999].item<int64_t>(), 9999);
    }
    if (k == 2) {
      EXPECT_EQ(s[0].item<int64_t>(), 4000);
    }
    covered.index_fill_(0, s, true);
  }
  // Window 19 spans [38000, 48000): the last 2,000 images are in no subset, as docs/METHOD.md notes.
  EXPECT_EQ((~covered).sum().item<int64_t>(), 2000);
  EXPECT_FALSE(covered[48000].item<bool>());
}

TEST(RdlmSubset, BuiltInDefaultsFitTheBuiltInData) {
  // `apricot run` without -c: the default synthetic data, validation split and rDLM windows agree.
  const Config cfg;
  validate(cfg);
  const Dataset ds = load_dataset(cfg.data, cfg.seed);
  EXPECT_EQ(ds.val.size(), cfg.data.val_size);
  auto covered = torch::zeros({ds.train.size()}, torch::kBool);
  for (int64_t k = 0; k < cfg.rdlm.count; ++k) {
    auto s = rdlm_subset(cfg.rdlm, ds.train, ds.classes, cfg.seed, k);
    ASSERT_EQ(s.size(0), cfg.rdlm.size);
    covered.index_fill_(0, s, true);
  }
  // The windows cover most of the training split without wrapping around, as the paper's do.
  EXPECT_LE(cfg.rdlm.stride * (cfg.rdlm.count - 1) + cfg.rdlm.size, ds.train.size());
  EXPECT_GT(covered.sum().item<int64_t>(), ds.train.size() * 9 / 10);
}

TEST(RdlmSubset, SlidingWrapsAround) {
  RdlmConfig cfg;
  cfg.size = 6;
  cfg.stride = 4;
  Split train = labelled(10, 2);
  auto s = rdlm_subset(cfg, train, 2, 0, 2);  // starts at 8: 8 9 0 1 2 3
  std::vector<int64_t> got(s.data_ptr<int64_t>(), s.data_ptr<int64_t>() + s.numel());
  EXPECT_EQ(got, (std::vector<int64_t>{8, 9, 0, 1, 2, 3}));
}

TEST(RdlmSubset, RandomAndBalanced) {
  RdlmConfig cfg;
  cfg.size = 30;
  Split train = labelled(300, 3);
  cfg.layout = "random";
  auto a = rdlm_subset(cfg, train, 3, 5, 0), b = rdlm_subset(cfg, train, 3, 5, 1);
  EXPECT_EQ(std::get<0>(at::_unique(a)).numel(), 30);  // no repeats
  EXPECT_FALSE(torch::equal(a, b));                     // each rDLM its own subset
  EXPECT_TRUE(torch::equal(a, rdlm_subset(cfg, train, 3, 5, 0)));  // deterministic
  cfg.layout = "balanced";
  auto c = rdlm_subset(cfg, train, 3, 5, 0);
  auto counts = train.y.index_select(0, c).bincount({}, 3);
  EXPECT_TRUE(torch::equal(counts, torch::full({3}, 10, torch::kInt64)));
  cfg.size = 301;
  EXPECT_THROW(rdlm_subset(cfg, train, 3, 5, 0), Error);
}

TEST(RdlmIndexList, ParsesListsAndRanges) {
  EXPECT_EQ(parse_index_list("3,5-7,3", 10), (std::vector<int64_t>{3, 5, 6, 7}));
  EXPECT_EQ(parse_index_list("0", 1), (std::vector<int64_t>{0}));
  for (const char* bad : {"", "a", "3-", "5-3", "10", "1,,2", "2x"}) EXPECT_THROW(parse_index_list(bad, 10), Error) << bad;
}

TEST(CorrectnessCache, MatchesDirectPredictionsAndInvalidates) {
  Split train, test;
  make_synthetic(120, 10, 1, 8, 8, 3, 4, train, test);
  Normalizer norm;
  std::vector<Net> rdlms;
  for (int k = 0; k < 3; ++k) {
    torch::manual_seed(k);
    rdlms.push_back(make_model({"small", 1, 8, 8, 3, "v1"}));
  }
  auto dir = fs::temp_directory_path() / ("apricot-test-cache-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto path = (dir / "correctness.pt").string();
  auto idx = torch::tensor({5, 17, 5, 99}, torch::kInt64);
  CorrectnessCache cache(rdlms, train, norm, torch::kCPU, path, "fp", {"a", "b", "c"});
  auto rows = cache.rows(idx);  // (4, 3)
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{4, 3}));
  for (int k = 0; k < 3; ++k) {
    auto direct = predict(*rdlms[k], train.x.index_select(0, idx), norm, torch::kCPU, 64).eq(train.y.index_select(0, idx));
    EXPECT_TRUE(torch::equal(rows.select(1, k), direct)) << k;
  }
  EXPECT_EQ(cache.known(), 3 * 3);  // rows 5, 17, 99
  int64_t predicted = cache.predicted();
  cache.rows(torch::tensor({17}, torch::kInt64));
  EXPECT_EQ(cache.predicted(), predicted);  // memoised: nothing predicted again
  cache.save();

  CorrectnessCache reloaded(rdlms, train, norm, torch::kCPU, path, "fp", {"a", "b", "c"});
  EXPECT_EQ(reloaded.known(), 9);
  EXPECT_TRUE(torch::equal(reloaded.rows(idx), rows));
  EXPECT_EQ(reloaded.predicted(), 0);
  // Another rDLM set (one checksum differs) or other data: the stored table is not used.
  CorrectnessCache other_rdlms(rdlms, train, norm, torch::kCPU, path, "fp", {"a", "B", "c"});
  EXPECT_EQ(other_rdlms.known(), 0);
  CorrectnessCache other_data(rdlms, train, norm, torch::kCPU, path, "other", {"a", "b", "c"});
  EXPECT_EQ(other_data.known(), 0);
}
