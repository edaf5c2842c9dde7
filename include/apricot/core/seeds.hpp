// Every random stream apricot draws from, derived from the run's seed (config key `seed`) by what
// it is for, in one place. The values are those of earlier versions, so stored results and saved
// states stay reusable: tests/core/test_seeds.cpp pins them. Two streams never share a seed by
// accident of arithmetic in two files.
#pragma once
#include <cstdint>

namespace apricot::seeds {

// The synthetic dataset's images: fixed, like a real dataset's (the run seed changes its split).
constexpr uint64_t kSyntheticData = 0x5EEDDA7AULL;

uint64_t validation_split(uint64_t run);         // which rows form the validation split (splitmix64)
uint64_t rdlm(uint64_t run, int64_t k);          // rDLM k: initialisation, batches, augmentation
uint64_t rdlm_subset(uint64_t run, int64_t k);   // rDLM k's rows (rdlm.layout random / balanced)
uint64_t model_stream(uint64_t training);        // a training run's model's own stream (TorchScript dropout)
uint64_t recalibration_images(uint64_t run);     // the images BatchNorm statistics are recomputed on
uint64_t adapt_batches(uint64_t run);            // the adaptation loop's batches (the same for every arm)
uint64_t retraining(uint64_t run, int64_t batch);  // the retraining after adaptation batch `batch`
uint64_t matched_training(uint64_t run);         // the budget-matched control's training (none-matched)
uint64_t field_holdout(uint64_t run);            // which field images are held out (field.holdout)
uint64_t field_select(uint64_t run);             // which of the rest are held back to choose on (field.select)
uint64_t field_gate(uint64_t run, int64_t gate);
uint64_t field_distill(uint64_t run, int64_t lr);  // gated-distilled: its fine-tune at learning rate number `lr`  // gated: gate number `gate`'s replay images, batches and init
uint64_t greedy_split(uint64_t run);             // greedy-soup-split's halves of the selection split
// A field arm's fine-tune: member k (0 for a single fine-tune) at learning rate number `lr`: its
// replayed training images, batch order and augmentation. The same for every arm that makes it.
uint64_t field_finetune(uint64_t run, int64_t member, int64_t lr);

}  // namespace apricot::seeds
