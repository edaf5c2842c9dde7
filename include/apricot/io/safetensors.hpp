// Reading and writing the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header padded with spaces to a multiple of 8, then
// the raw little-endian tensor data. Whole files in memory, no mmap, no lazy loading.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace apricot {

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

// Writes the tensors, in the given order, as contiguous CPU data; the header maps each name to
// {"dtype", "shape", "data_offsets": [begin, end]} and "__metadata__" to `metadata` (omitted when
// empty, as the reference writer does).
// Supported dtypes: F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL.
// Names must be unique, non-empty and not "__metadata__"; tensors must be defined (TORCH_CHECK).
// Atomic (write_file_atomic): an I/O failure throws data_error and leaves any existing file intact.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

struct SafetensorsFile {
  std::vector<NamedTensor> tensors;  // CPU, contiguous, in order of data offset
  std::map<std::string, std::string> metadata;
};

// Reads and validates the whole file: header length (<= file size - 8, <= 100 MB), header a JSON
// object, each entry a known dtype, a shape and offsets with end - begin == numel * itemsize, the
// entries covering the data section exactly (no overlap, gap or out-of-range offset).
// Missing or unreadable file: data_error. Anything else wrong: state_error naming the file and the
// problem ("truncated" when the file is shorter than its header says).
SafetensorsFile read_safetensors(const std::string& path);
// The same checks on a file's bytes already in memory (`source` names it in messages); every
// problem is an Error(kState).
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);

}  // namespace apricot
