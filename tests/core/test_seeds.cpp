// The derived seeds keep the values of the versions before seeds.hpp existed: stored results,
// resumable states and the README's quickstart table depend on them.
#include <gtest/gtest.h>

#include <set>

#include "apricot/core/seeds.hpp"

using namespace apricot;

TEST(Seeds, KeepTheValuesOfEarlierVersions) {
  EXPECT_EQ(seeds::validation_split(0), 0xe220a8397b1dcdafULL);  // splitmix64's first output for 0
  EXPECT_EQ(seeds::validation_split(42), 0xbdd732262feb6e95ULL);
  EXPECT_EQ(seeds::rdlm(0, 0), 7919u);
  EXPECT_EQ(seeds::rdlm(7, 19), 7158401u);
  EXPECT_EQ(seeds::rdlm_subset(7, 19), 1539101460u);
  EXPECT_EQ(seeds::model_stream(5), 11400714819323198480ULL);
  EXPECT_EQ(seeds::recalibration_images(3), 314190u);
  EXPECT_EQ(seeds::adapt_batches(3), 23774u);
  EXPECT_EQ(seeds::retraining(3, 12), 105u);
  EXPECT_EQ(seeds::matched_training(3), 1000076u);
  EXPECT_EQ(seeds::kSyntheticData, 0x5EEDDA7AULL);
  EXPECT_EQ(seeds::field_holdout(3), 2414548881820543170ULL);
  EXPECT_EQ(seeds::field_finetune(3, 0, 0), 7156196812539895601ULL);
  EXPECT_EQ(seeds::field_finetune(3, 2, 1), 17424467648140131552ULL);
}

// Within a run, the streams of different purposes (rDLMs 0-49, retraining after batches 0-999)
// start from different seeds, except for run seed 0, the default, where three coincide (found when
// the seeds were gathered here; kept, since changing a seed changes every stored result): the
// retraining after batch 0 draws as base training does, after batch 3 as the recalibration images,
// after batch 17 as the adaptation batches.
TEST(Seeds, DifferentPurposesOfOneRunGetDifferentSeeds) {
  for (uint64_t run : {0ULL, 1ULL, 7ULL, 12345ULL}) {
    std::multiset<uint64_t> seen;
    auto add = [&](uint64_t s) { seen.insert(s); };
    add(run);  // base training draws from the run seed itself
    add(seeds::validation_split(run));
    add(seeds::recalibration_images(run));
    add(seeds::adapt_batches(run));
    add(seeds::matched_training(run));
    for (int64_t k = 0; k < 50; ++k) add(seeds::rdlm(run, k)), add(seeds::rdlm_subset(run, k));
    for (int64_t b = 0; b < 1000; ++b) add(seeds::retraining(run, b));
    add(seeds::field_holdout(run));
    add(seeds::greedy_split(run));
    add(seeds::field_select(run));
    for (int64_t g = 0; g < 4; ++g) add(seeds::field_gate(run, g));
    for (int64_t i = 0; i < 16; ++i) add(seeds::field_distill(run, i));
    for (int64_t k = 0; k < 9; ++k)
      for (int64_t i = 0; i < 16; ++i) add(seeds::field_finetune(run, k, i));
    std::set<uint64_t> shared;
    for (uint64_t s : seen)
      if (seen.count(s) > 1) shared.insert(s);
    if (run == 0) {
      EXPECT_EQ(shared, (std::set<uint64_t>{0, seeds::recalibration_images(0), seeds::adapt_batches(0)}));
      EXPECT_EQ(seeds::retraining(0, 0), 0u);
      EXPECT_EQ(seeds::retraining(0, 3), seeds::recalibration_images(0));
      EXPECT_EQ(seeds::retraining(0, 17), seeds::adapt_batches(0));
    } else {
      EXPECT_TRUE(shared.empty()) << "run seed " << run << ": " << shared.size() << " seeds shared";
    }
  }
}
