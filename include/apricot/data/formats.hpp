// The dataset formats, each in its own file under src/data/formats/: CIFAR-10 binary, IDX
// (MNIST/Fashion-MNIST, plain or .gz), image folders (PNG/JPEG), NumPy .npy arrays, synthetic.
#pragma once
#include <torch/types.h>
#include <cstdint>
#include <string>
#include <vector>

#include "apricot/data/split.hpp"

namespace apricot {

constexpr int64_t kCifar10Classes = 10;  // CIFAR-10 binary: labels 0..9

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
// The classes of an image-folder dataset: the folder names of root/train, sorted.
std::vector<std::string> imagefolder_classes(const std::string& root);
// One folder of class folders, dir/<class>/* (a field set), labelled by each folder's position in
// `class_names`; a folder not in it is an error naming it. Images are converted to `channels` (1 or
// 3) and must be height x width, or are resized to it when `resize`.
Split load_imagefolder_dir(const std::string& dir, const std::vector<std::string>& class_names, int64_t channels,
                           int64_t height, int64_t width, bool resize);
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

// data.format's values: "cifar10" "idx" "imagefolder" "npy" "synthetic".
const std::vector<std::string>& data_formats();

}  // namespace apricot
