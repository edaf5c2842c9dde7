// `apricot run` over a work directory that already holds phases.
#include <gtest/gtest.h>

#include "apricot/core/errors.hpp"
#include "cli_util.hpp"

using namespace apricot::test;
using apricot::ExitCode;
using apricot::exit_status;

// A base model made with another training recipe is not reused by `run`, as train-base refuses it.
// Before, `run` skipped an existing base unchecked: after `train-base`, a `run` with another
// train.lr adapted the old base and exited 0 when no arm needed the rDLMs (whose own check, or a
// stored result's provenance, caught it otherwise).
TEST(Pipeline, RunRefusesABaseMadeWithAnotherRecipe) {
  const auto dir = fresh_dir("pipeline-recipe");
  const std::string args =
      " --set data.synthetic_train=300 --set data.synthetic_test=100 --set data.val_size=50"
      " --set data.synthetic_shape=[1,8,8] --set train.epochs=1 --set train.batch_size=32"
      " --set 'adapt.strategies=[\"none\"]' --set adapt.max_batches=2 --set adapt.retrain.steps=1"
      " --threads 1 --log-level warn -w " + (dir / "work").string();
  auto first = run_apricot("train-base" + args);
  ASSERT_EQ(first.code, 0) << first.err;
  auto other = run_apricot("run" + args + " --set train.lr=0.02");
  EXPECT_EQ(other.code, exit_status(ExitCode::kState)) << other.err;
  EXPECT_NE(other.err.find("the base model"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("train.lr (0.01 -> 0.02)"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("--force"), std::string::npos) << other.err;
  auto same = run_apricot("run" + args);  // the recipe it was made with: reused
  EXPECT_EQ(same.code, 0) << same.err;
}
