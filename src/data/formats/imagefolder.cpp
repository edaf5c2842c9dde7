// Image folders (torchvision's ImageFolder layout), the users' own datasets. They end as the same
// uint8 (N, C, H, W) splits as the built-in formats. Images are decoded with libjpeg-turbo and libpng, the decoders PIL (and so torchvision) uses, with PIL's defaults (slow
// integer DCT, fancy upsampling; gray from RGB by PIL's luma formula), so a PyTorch model sees here
// the pixels it was trained on.
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/nn/functional/upsampling.h>

#include "apricot/data/formats.hpp"
#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"

namespace apricot {

namespace fs = std::filesystem;

namespace {

// The class folders of one split, sorted by name (torchvision's order), and their files by name.
// Dot files (.DS_Store, editor backups) are skipped; any other file must decode as an image.
std::map<std::string, std::vector<fs::path>> class_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    data_error(dir.string() + ": no such directory",
               "data.format \"imagefolder\" reads ROOT/train/<class>/* and ROOT/test/<class>/*");
  std::map<std::string, std::vector<fs::path>> out;
  for (const auto& c : fs::directory_iterator(dir)) {
    const std::string name = c.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (!c.is_directory())
      data_error(c.path().string() + ": a file where a class folder was expected",
                 "put each class's images in a folder named after the class: " + dir.string() + "/<class>/");
    auto& files = out[name];
    for (const auto& f : fs::directory_iterator(c.path())) {
      const std::string fname = f.path().filename().string();
      if (!fname.empty() && fname[0] != '.' && !f.is_directory()) files.push_back(f.path());
    }
    if (files.empty())
      data_error(c.path().string() + ": the class folder holds no image",
                 "remove the folder or add the class's images (PNG or JPEG)");
    std::sort(files.begin(), files.end());
  }
  if (out.empty()) data_error(dir.string() + ": no class folder", "expected " + dir.string() + "/<class>/<image>");
  return out;
}

struct Decoded {
  std::vector<uint8_t> px;  // H x W x comp, 8 bits
  int w = 0, h = 0, comp = 0;
  std::string error;        // set when the file is not an image this tool decodes
};

// libjpeg reports errors through a callback that must not return: jump back to the decoder.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
};

void jpeg_fail(j_common_ptr info) {
  auto* e = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, e->message);
  std::longjmp(e->jump, 1);
}

// A warning (corrupt data, a premature end) fails the image too, as PIL refuses truncated files.
void jpeg_warn(j_common_ptr info, int level) {
  if (level < 0) jpeg_fail(info);
}

// Decodes into d (no C++ object with a destructor lives across the setjmp).
void decode_jpeg(const std::string& bytes, Decoded& d) {
  jpeg_decompress_struct info;
  JpegError err;
  info.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  err.mgr.emit_message = jpeg_warn;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&info);
    d.error = std::string("corrupt JPEG: ") + err.message;
    return;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  const bool gray = info.jpeg_color_space == JCS_GRAYSCALE;
  info.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&info);
  d.w = static_cast<int>(info.output_width), d.h = static_cast<int>(info.output_height);
  d.comp = info.output_components;
  d.px.resize(static_cast<size_t>(d.w) * d.h * d.comp);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = d.px.data() + static_cast<size_t>(info.output_scanline) * d.w * d.comp;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
}

// libpng's simplified API: 8-bit gray or RGB, alpha dropped (as PIL's convert("RGB") does).
void decode_png(const std::string& bytes, Decoded& d) {
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size())) {
    d.error = std::string("corrupt PNG: ") + img.message;
    return;
  }
  const bool color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
  img.format = color ? PNG_FORMAT_RGBA : PNG_FORMAT_GA;
  const int stored = color ? 4 : 2;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, px.data(), 0, nullptr)) {
    d.error = std::string("corrupt PNG: ") + img.message;
    png_image_free(&img);
    return;
  }
  d.w = static_cast<int>(img.width), d.h = static_cast<int>(img.height), d.comp = color ? 3 : 1;
  d.px.resize(static_cast<size_t>(d.w) * d.h * d.comp);
  for (size_t p = 0, n = static_cast<size_t>(d.w) * d.h; p < n; ++p)
    for (int c = 0; c < d.comp; ++c) d.px[p * d.comp + c] = px[p * stored + c];
}

// The file decoded as it is stored (gray or RGB), by its magic bytes, not its name.
Decoded decode(const fs::path& file) {
  Decoded d;
  std::string bytes;
  try {
    bytes = read_file(file.string());
  } catch (const Error& e) {
    d.error = e.what();
    return d;
  }
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xff\xd8\xff") == 0) {
    decode_jpeg(bytes, d);
  } else if (bytes.size() >= 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) {
    decode_png(bytes, d);
  } else {
    d.error = "neither a PNG nor a JPEG file";
  }
  if (!d.error.empty()) d.error = file.string() + ": " + d.error;
  return d;
}

// Gray from RGB as PIL's convert("L") computes it (ITU-R 601-2 luma in 16-bit fixed point); RGB
// from gray by repeating it.
std::vector<uint8_t> to_channels(const Decoded& d, int channels) {
  if (d.comp == channels) return d.px;
  const size_t n = static_cast<size_t>(d.w) * d.h;
  std::vector<uint8_t> out(n * channels);
  for (size_t p = 0; p < n; ++p) {
    if (channels == 1) {
      const uint8_t* rgb = &d.px[p * 3];
      out[p] = static_cast<uint8_t>((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
    } else {
      out[p * 3] = out[p * 3 + 1] = out[p * 3 + 2] = d.px[p];
    }
  }
  return out;
}

// H x W x C bytes -> (C, height, width) uint8: bilinear with antialiasing when shrinking, as
// torchvision's Resize(antialias=True) on a tensor.
torch::Tensor resized(const std::vector<uint8_t>& px, int h, int w, int channels, int64_t height, int64_t width) {
  auto chw = torch::from_blob(const_cast<uint8_t*>(px.data()), {h, w, channels}, torch::kUInt8).permute({2, 0, 1});
  auto f = chw.unsqueeze(0).to(torch::kFloat32);
  namespace F = torch::nn::functional;
  auto r = F::interpolate(f, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{height, width})
                                 .mode(torch::kBilinear)
                                 .align_corners(false)
                                 .antialias(true));
  return r.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

// One split's images in the rows' order into (N, C, H, W) uint8, decoded in parallel.
// Without `resize`, every image must be height x width, the size of `reference` (the first image).
torch::Tensor decode_all(const std::vector<fs::path>& files, int channels, int64_t height, int64_t width,
                         bool resize, const fs::path& reference) {
  const int64_t n = static_cast<int64_t>(files.size());
  torch::Tensor x = torch::empty({n, channels, height, width}, torch::kUInt8);
  uint8_t* out = x.data_ptr<uint8_t>();
  const int64_t plane = height * width, image = plane * channels;
  std::vector<std::string> errors(n);
  std::atomic<bool> failed{false};
  at::parallel_for(0, n, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi && !failed; ++i) {
      Decoded d = decode(files[i]);
      if (d.error.empty() && !resize && (d.h != height || d.w != width))
        d.error = files[i].string() + ": " + std::to_string(d.h) + "x" + std::to_string(d.w) + " pixels, but " +
                  reference.string() + " has " + std::to_string(height) + "x" + std::to_string(width);
      if (!d.error.empty()) {
        errors[i] = d.error;
        failed = true;
        continue;
      }
      const std::vector<uint8_t> px = to_channels(d, channels);
      uint8_t* dst = out + i * image;
      if (d.h != height || d.w != width) {
        auto r = resized(px, d.h, d.w, channels, height, width);
        std::memcpy(dst, r.data_ptr<uint8_t>(), static_cast<size_t>(image));
        continue;
      }
      for (int64_t p = 0; p < plane; ++p)  // HWC -> CHW
        for (int c = 0; c < channels; ++c) dst[c * plane + p] = px[p * channels + c];
    }
  });
  for (int64_t i = 0; i < n; ++i)
    if (!errors[i].empty()) {
      const bool size = errors[i].find(" pixels, but ") != std::string::npos;
      data_error(errors[i], size ? "set data.image_size to [H, W] to resize every image to one size"
                                 : "every file in a class folder must be a PNG or JPEG image (dot files are skipped)");
    }
  return x;
}

}  // namespace

void load_imagefolder(const std::string& root, int64_t channels, const std::vector<int64_t>& image_size,
                      Split& train, Split& test, std::vector<std::string>* class_names) {
  const auto train_classes = class_files(fs::path(root) / "train");
  const auto test_classes = class_files(fs::path(root) / "test");
  std::vector<std::string> names;
  for (const auto& [name, _] : train_classes) names.push_back(name);
  for (const auto& [name, _] : test_classes)
    if (!train_classes.count(name))
      data_error(root + "/test/" + name + ": a class the training split does not have",
                 "the classes are the folders of " + root + "/train/; rename or remove this one");
  // Channels and size from the first training image unless the config fixes them.
  const fs::path& first = train_classes.begin()->second.front();
  Decoded probe = decode(first);
  if (!probe.error.empty()) data_error(probe.error, "every file in a class folder must be a PNG or JPEG image");
  const int c = channels > 0 ? static_cast<int>(channels) : (probe.comp >= 3 ? 3 : 1);
  const bool resize = image_size.size() == 2;
  const int64_t h = resize ? image_size[0] : probe.h, w = resize ? image_size[1] : probe.w;
  auto load_split = [&](const std::map<std::string, std::vector<fs::path>>& classes, Split& s) {
    // Rows interleave the classes: file i of each class in turn, so a prefix is balanced.
    std::vector<fs::path> files;
    std::vector<int64_t> labels;
    size_t most = 0;
    for (const auto& [_, f] : classes) most = std::max(most, f.size());
    for (size_t i = 0; i < most; ++i)
      for (size_t k = 0; k < names.size(); ++k) {
        auto it = classes.find(names[k]);
        if (it != classes.end() && i < it->second.size()) files.push_back(it->second[i]), labels.push_back(k);
      }
    s.x = decode_all(files, c, h, w, resize, first);
    s.y = torch::tensor(labels, torch::kInt64);
  };
  load_split(train_classes, train);
  load_split(test_classes, test);
  if (class_names) *class_names = names;
}

std::vector<std::string> imagefolder_classes(const std::string& root) {
  std::vector<std::string> names;
  for (const auto& [name, _] : class_files(fs::path(root) / "train")) names.push_back(name);
  return names;
}

Split load_imagefolder_dir(const std::string& dir, const std::vector<std::string>& class_names, int64_t channels,
                           int64_t height, int64_t width, bool resize) {
  const auto classes = class_files(fs::path(dir));
  std::vector<fs::path> files;
  std::vector<int64_t> labels;
  for (const auto& [name, f] : classes) {
    auto at = std::find(class_names.begin(), class_names.end(), name);
    if (at == class_names.end()) {
      std::string list;
      for (const auto& n : class_names) list += (list.empty() ? "" : ", ") + n;
      data_error((fs::path(dir) / name).string() + ": a class the training data does not have",
                 "name each class folder after one of the training classes: " + list);
    }
    for (const auto& file : f) files.push_back(file), labels.push_back(at - class_names.begin());
  }
  Split s;
  s.x = decode_all(files, static_cast<int>(channels), height, width, resize,
                   fs::path("the training data"));
  s.y = torch::tensor(labels, torch::kInt64);
  return s;
}

}  // namespace apricot
