// Datasets decoded once into one uint8 tensor per split; normalisation and augmentation are
// vectorised per batch. Loaders: CIFAR-10 binary, IDX (MNIST/Fashion-MNIST, plain or .gz), image
// folders (PNG/JPEG), NumPy .npy arrays, synthetic.
// Subsets are index tensors into the train split, never copies.
#pragma once
#include <torch/types.h>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace apricot {

struct DataConfig;

// One split: images (N, C, H, W) uint8 on the CPU, labels (N) int64.
struct Split {
  torch::Tensor x;  // (N, C, H, W) uint8
  torch::Tensor y;  // (N) int64 in [0, classes)
  int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

// Normalisation fitted on the training split, applied per batch (on whatever device the batch is).
//   kind "scale":   x / 255
//   kind "channel": (x / 255 - mean_c) / std_c      mean/std shape (C, 1, 1)
//   kind "pixel":   x / 255 - mean image            mean shape (C, H, W), std unused (Keras ResNet)
struct Normalizer {
  std::string kind = "scale";
  torch::Tensor mean;  // float32, see above; undefined for "scale"
  torch::Tensor std;   // float32 (C, 1, 1) for "channel"; undefined otherwise

  static Normalizer fit(const std::string& kind, const torch::Tensor& train_x);
  // uint8 (B, C, H, W) on any device -> float32 (B, C, H, W) on the same device.
  torch::Tensor apply(const torch::Tensor& x_u8) const;
  nlohmann::json to_json() const;  // mean/std as nested lists, for model.json
  static Normalizer from_json(const nlohmann::json& j);
};

struct Dataset {
  Split train;  // what models train on (validation rows already removed when taken from train)
  Split val;    // selection split; may come from train or from the test split
  Split test;   // reporting only
  int64_t channels = 0, height = 0, width = 0, classes = 0;
  Normalizer norm;          // fitted on `train`
  std::string fingerprint;  // stable hash of format, sizes and the pixel/label bytes of all splits
  std::string name;         // e.g. "cifar10", "idx", "synthetic"
};

// Raw loaders (no split into validation). Throw apricot::Error (ExitCode::kData) naming the file
// and the problem for a missing, truncated or malformed file or a label out of range.
// CIFAR-10 binary: root holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin.
void load_cifar10(const std::string& root, Split& train, Split& test);
// IDX: root holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each plain or with a .gz suffix.
void load_idx(const std::string& root, Split& train, Split& test);
// Reads one IDX file (plain or gzip by magic bytes) into a uint8 tensor with the file's dims.
torch::Tensor read_idx_file(const std::string& path);
// Image folder, torchvision's ImageFolder layout: root/train/<class>/* and root/test/<class>/*, PNG
// or JPEG (told by their bytes; decoded as PIL decodes them), dot files skipped. Classes are the
// training split's folders in sorted name order (class_names gets them); the test split may lack a
// class but not add one. Rows interleave the classes (file i of every class in turn, files in name
// order), so data.train_limit keeps a balanced slice. channels 0: 3 if the first image has colour,
// else 1; 1 or 3: every image converted to it. image_size empty: every image must have the first's
// size; [H, W]: each resized to it (bilinear, antialiased when shrinking).
void load_imagefolder(const std::string& root, int64_t channels, const std::vector<int64_t>& image_size,
                      Split& train, Split& test, std::vector<std::string>* class_names = nullptr);
// NumPy: root/x_train.npy, y_train.npy, x_test.npy, y_test.npy, as numpy.save writes them. Images
// uint8, N x H x W (gray), N x H x W x C or N x C x H x W (C from 1 to 4, the last dimension tried
// first); labels one integer per image (any little-endian integer type), >= 0 and, when classes > 0,
// below it.
void load_npy(const std::string& root, int64_t classes, Split& train, Split& test);
// One .npy file's element type (NumPy's descr, e.g. "|u1", "<i8"), shape and raw data bytes.
struct NpyArray {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;
};
NpyArray parse_npy(const std::string& bytes, const std::string& source);
// An image array and a label array as one split (the checks of load_npy; the fuzz target calls it).
Split npy_split(const NpyArray& x, const NpyArray& y, const std::string& x_source, const std::string& y_source,
                int64_t classes);
// The loaders' in-memory halves (the file loaders read the whole file, then call these; the fuzz
// targets call them directly). `source` names the file in messages; same checks and
// Error(kData) messages as above.
// One CIFAR-10 binary batch file: N records of 1 label byte + 3,072 pixel bytes -> x (N, 3, 32, 32)
// uint8, y (N) int64.
Split parse_cifar_batch(const std::string& bytes, const std::string& source);
// One IDX file, plain or gzip (1f 8b magic; members read one after another as zlib's gzread does).
// The data is read before anything is allocated for it, so a header that declares more than the
// file holds is reported as truncated rather than allocated.
torch::Tensor parse_idx(const std::string& bytes, const std::string& source);
// Synthetic: deterministic in seed, learnable (each class a fixed random prototype pattern plus
// noise), any shape and class count.
void make_synthetic(int64_t n_train, int64_t n_test, int64_t channels, int64_t height, int64_t width,
                    int64_t classes, uint64_t seed, Split& train, Split& test);

// Full pipeline from config: load, apply train/test limits, take the validation split, fit the
// normaliser, fingerprint. Deterministic in (config, seed).
Dataset load_dataset(const DataConfig& cfg, uint64_t seed);

// Augmentation on a normalised float batch (B, C, H, W), vectorised: each image gets an integer
// shift (dy, dx) uniform in [-round(shift*H), round(shift*H)] x [-round(shift*W), ...] with
// fill "edge" (replicate border) or "zero", and a horizontal flip with probability 0.5 if flip.
// Random draws come from `gen` (a CPU generator) so results are identical across devices.
torch::Tensor augment_batch(const torch::Tensor& x, double shift, const std::string& fill, bool flip,
                            torch::Generator& gen);

// Shift a batch by explicit per-image offsets; dy, dx int64 (B). Positive dy moves content down,
// positive dx moves content right. Exposed for tests.
torch::Tensor shift_batch(const torch::Tensor& x, const torch::Tensor& dy, const torch::Tensor& dx,
                          const std::string& fill);

}  // namespace apricot
