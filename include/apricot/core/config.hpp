// One configuration schema for every phase. Plain structs with defaults; the JSON form of the
// defaults doubles as the schema: a user file or --set override may only name keys that exist
// there, with a value of the same kind, and is range-checked after merging.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace apricot {

struct DataConfig {
  std::string format = "synthetic";  // cifar10 | idx | imagefolder | npy | synthetic
  std::string root = "";             // directory with the dataset files (all but synthetic)
  int64_t train_limit = 0;           // keep the first N training images (0 = all)
  int64_t test_limit = 0;            // keep the first N test images (0 = all)
  std::string val_from = "train";    // train | test: where the validation (selection) split comes from
  int64_t val_size = 500;            // images in the validation split (the presets set their own)
  std::string normalize = "scale";   // scale | channel | pixel
  // imagefolder: channels (0 = from the first image, 1 gray, 3 RGB) and [H, W] to resize to ([] = as is)
  int64_t channels = 0;
  std::vector<int64_t> image_size = {};
  int64_t classes = 0;  // npy and idx: the class count (0 = the largest label + 1)
  // synthetic data (format = synthetic)
  int64_t synthetic_train = 2000;  // images
  int64_t synthetic_test = 500;    // images
  std::vector<int64_t> synthetic_shape = {1, 16, 16};  // C, H, W
  int64_t synthetic_classes = 4;
};

struct AugmentConfig {
  double shift = 0.0;          // max random shift, fraction of height/width (0 = off)
  std::string fill = "edge";   // edge | zero
  bool flip = false;           // random horizontal flips
};

struct ModelConfig {
  std::string arch = "small";         // small | cnn1 | cnn2 | cnn3 | resnet20 | resnet32 | torchscript
  std::string resnet_variant = "v1";  // v1 (post-activation, Keras) | preact
  std::string path = "";              // arch torchscript: the TorchScript file (torch.jit.save)
  bool pretrained = false;            // torchscript: the file's weights are the base model (not trained again)
};

// A training recipe; used by train-base, by the rDLMs (with their own epochs) and by retraining.
struct TrainConfig {
  int64_t epochs = 10;                 // passes over the training data
  int64_t batch_size = 128;            // images per step
  std::string optimizer = "sgd";       // sgd | adam | rmsprop
  double lr = 0.01;                    // initial learning rate
  double momentum = 0.9;               // sgd momentum (rmsprop: momentum term)
  bool nesterov = false;               // sgd only
  double weight_decay = 0.0;           // L2 penalty coefficient
  std::string lr_schedule = "step";    // step (lr_steps, lr_gamma) | cosine (lr to lr_min over the epochs)
  std::vector<int64_t> lr_steps = {};  // step: epochs at which lr is multiplied by lr_gamma
  double lr_gamma = 0.1;               // step: the factor
  double lr_min = 0.0;                 // cosine: the learning rate of the last epoch
  int64_t patience = 0;                // early stopping: stop after this many epochs without a better
                                       // validation accuracy (the best epoch is kept; 0 = off)
  AugmentConfig augment;
  std::string precision = "fp32";  // fp32 | bf16 (bf16: CUDA autocast)
  std::string memory_format = "contiguous";  // contiguous | channels_last (conv weights and batches NHWC)
  int64_t eval_batch_size = 1000;  // images per inference batch
};

// rdlm.init base: how each rDLM is fine-tuned from the final base model (a constant learning rate;
// augmentation, batch size and the rest of the recipe come from train).
struct FinetuneConfig {
  int64_t epochs = 2;              // passes over the rDLM's subset
  std::string optimizer = "adam";  // sgd | adam | rmsprop
  double lr = 0.0002;              // constant learning rate
  double momentum = 0.0;           // sgd / rmsprop momentum
  // Diverse fine-tunes (a soup's ingredients differing in more than their data): rDLM k uses
  // lr * lr_factors[k mod n] and the augmentation augment[k mod m]: "train" (train.augment), "none",
  // "flip" (horizontal flips), "shift" (random shifts up to 10 %, edge fill) or "shift+flip".
  std::vector<double> lr_factors = {1.0};
  std::vector<std::string> augment = {"train"};
};

struct RdlmConfig {
  int64_t count = 20;                 // reduced models
  std::string layout = "sliding";     // sliding | random | balanced
  int64_t size = 300;                 // training images per rDLM (paper: 10000 of 50000; presets set it)
  int64_t stride = 60;                // sliding window step (paper: 2000)
  std::string init = "scratch";       // scratch | base-early | base (fine-tuned from the final base)
  int64_t init_epochs = 3;            // base-early: epochs of base training before the copy
  int64_t epochs = 30;                // scratch / base-early: rDLM training epochs (rest of the recipe from train)
  FinetuneConfig finetune;            // base: the fine-tuning recipe
  int64_t parallel = 1;               // rDLMs trained at once (threads; a CUDA stream each)
  std::vector<std::string> devices = {};  // spread rDLMs over these ([] = the run's device)
};

struct RetrainConfig {
  double epochs = 1.0;             // fraction allowed; 0 = no retraining
  int64_t steps = 0;               // if > 0, overrides epochs: optimiser steps per retraining
  int64_t batch_size = 128;        // images per step
  std::string optimizer = "sgd";   // sgd | adam | rmsprop
  double lr = 0.001;               // learning rate
  double momentum = 0.9;           // sgd / rmsprop momentum
};

struct AdaptConfig {
  // Arms for `apricot run`: 1 2 3 (the paper's strategies), soup, greedy-soup, none (the control),
  // none-matched (the control given the rDLMs' training images first).
  std::vector<std::string> strategies = {"1", "2", "3", "none"};
  std::string direction = "intent";   // intent | literal (paper's equations as printed)
  double step = 0.001;                // r, the adjustment step
  std::string step_mode = "per-input";  // per-input (the paper) | per-batch (r: fraction of the way to the mean)
  int64_t bn_recalibrate = 0;         // > 0: recompute BatchNorm statistics on this many training images
                                      // after every adjustment and soup (0 = off)
  int64_t batch_size = 20;            // training inputs per adjustment batch
  int64_t passes = 1;                 // passes over the training split
  int64_t patience = 0;               // stop after this many batches without improvement (0 = off)
  int64_t max_batches = 0;            // stop after this many batches (0 = off)
  double time_budget = 0;             // seconds (0 = off)
  std::string selection = "val";      // val | test (paper protocol: leaks the test set)
  bool adjust_buffers = false;        // also adjust BatchNorm running statistics
  int64_t retrain_every = 1;          // retrain after every k batches (0 = never)
  std::vector<int64_t> target = {};   // [src, dst]: adjust only on inputs of class src predicted as dst
  int64_t parallel = 1;               // arms adapted at once by run/adapt/sweep (a CUDA stream each)
  double max_break_rate = 1.0;        // accept a candidate only if it breaks at most this share of the
                                      // selection inputs the base gets right (1 = no bound)
  bool early_reject = true;           // stop counting a candidate's selection answers once it cannot win
                                      // (same decisions; its trace accuracy is then null)
  RetrainConfig retrain;
};

// Field repair (docs/FIELD.md): the user's failure set and the fine-tuning recipe the field arms
// (finetune, finetune-interp, soup-interp, apricot-interp, head-only) share. Every field arm spends
// the same training images: |lrs| x steps x batch_size.
struct FieldConfig {
  std::string format = "";      // "" (no field set) | imagefolder (root/<class>/*) | npy (root/x_field.npy, y_field.npy)
  std::string root = "";        // the field set's directory
  double holdout = 0.5;         // share kept out of training and selection, for measuring (seeded, per class)
  double select = 0.3;          // share of the rest held back from fine-tuning and gates, used only to choose
                                // (0: choose on the images fine-tuned on, as results made before it did)
  double replay = 1.0;          // replayed training images per field image in each fine-tuning batch
  int64_t steps = 100;          // optimiser steps of one fine-tune (soup members: steps / members each)
  int64_t batch_size = 64;      // images per step (field and replay together)
  std::string optimizer = "sgd";        // sgd | adam | rmsprop
  std::vector<double> lrs = {0.01, 0.003, 0.001};  // the learning rates each arm tries (chosen on selection)
  double momentum = 0.9;        // sgd / rmsprop momentum
  int64_t checkpoint_every = 10;  // finetune, head-only: a checkpoint candidate every k steps
  int64_t members = 4;          // soup-interp, apricot-interp: fine-tunes with other replay images and seeds
  int64_t interp_points = 11;   // candidates on the line from the base (0) to the fine-tuned model (1)
  std::vector<std::string> gates = {"input", "logits"};  // gated: the scopes it trains (method/gated.hpp)
  int64_t gate_steps = 200;     // gated: optimiser steps of each gate's training (field.batch_size images each)
};

// Resumable state: how often each phase saves it (see docs/RELIABILITY.md).
struct ResumeConfig {
  int64_t every_epochs = 1;   // training phases: save after every k epochs (0 = only on SIGINT/SIGTERM)
  int64_t every_batches = 20; // adaptation: save after every k batches (0 = only on SIGINT/SIGTERM)
};

struct Config {
  uint64_t seed = 0;              // seeds data splits, init, batches, augmentation
  bool deterministic = false;     // ask LibTorch for deterministic algorithms (CUDA: slower)
  std::string workdir = "runs/default";
  std::string device = "auto";    // auto | cpu | cuda | cuda:N
  int64_t threads = 0;            // intra-op CPU threads (0 = the CPUs this process may use)
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  RdlmConfig rdlm;
  AdaptConfig adapt;
  FieldConfig field;
  ResumeConfig resume;
};

nlohmann::json to_json(const Config& c);
// Removes from a configuration's JSON the keys added after results were first stored, where they hold
// their default (the behaviour from before they existed): data.channels 0, data.image_size [],
// data.classes 0, model.path "", model.pretrained false, train.lr_schedule "step", train.lr_min 0,
// train.patience 0, rdlm.finetune.lr_factors [1], rdlm.finetune.augment ["train"], adapt.step_mode "per-input", adapt.bn_recalibrate 0,
// adapt.max_break_rate 1, and the whole field section while field.format is "". Results
// and runs made before a key existed then compare equal to new ones that leave it at its default.
void drop_added_defaults(nlohmann::json& config);

// Defaults <- file (if not empty) <- overrides ("a.b=value", value parsed as JSON when it parses,
// else taken as a string), checked against the schema only: every key must exist in the defaults,
// with a value of the same kind. Throws apricot::Error(kUsage) naming the file/key, the problem and
// the nearest valid key; kData if the file cannot be read. The range checks need every layer's value
// sets: pipeline/validate.hpp's load_config, parse_config_text and config_from_json add them.
Config load_config_unchecked(const std::string& path, const std::vector<std::string>& overrides);
// The same from the text of a config file (JSON, comments allowed) already in memory; `source`
// names it in messages.
Config parse_config_text_unchecked(const std::string& text, const std::string& source,
                                   const std::vector<std::string>& overrides = {});
// The same from an already parsed JSON document.
Config config_from_json_unchecked(const nlohmann::json& j, const std::string& source);

// The range checks' vocabulary, for each layer's validate(...): Error(kUsage) naming the key.
// require_one_of: `value` must be one of `valid` (the message suggests the nearest).
void require_one_of(const std::string& key, const std::string& value, const std::vector<std::string>& valid);
// "config key 'KEY': VALUE is out of range", hint "it must be RULE".
[[noreturn]] void out_of_range(const std::string& key, const std::string& value, const std::string& rule);
template <typename T>
void require(bool ok, const std::string& key, const T& value, const std::string& rule) {
  if (ok) return;
  std::ostringstream os;
  os << value;
  out_of_range(key, os.str(), rule);
}
// The checks of the keys every phase shares: device, threads, workdir, resume.*.
void validate_run(const Config& c);
bool valid_device_name(const std::string& device);  // auto, cpu, cuda, cuda:N

// The nearest string in `candidates` by edit distance (empty if nothing is close).
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace apricot
