// Image files as users' tools write them, for the tests: PNG (libpng), .npy (as numpy.save), and a
// deterministic pattern of pixels.
#pragma once
#include <gtest/gtest.h>
#include <png.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace apricot::test {

// A deterministic H x W x C image whose pixels differ from image to image.
inline std::vector<uint8_t> pattern(int h, int w, int c, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(h) * w * c);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 37 + seed * 101 + (i / c) * 13) % 256);
  return px;
}

inline void write_png(const std::filesystem::path& path, const std::vector<uint8_t>& px, int h, int w, int c) {
  std::filesystem::create_directories(path.parent_path());
  png_image img;
  std::memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  img.width = w, img.height = h;
  img.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  ASSERT_TRUE(png_image_write_to_file(&img, path.c_str(), 0, px.data(), 0, nullptr)) << img.message;
}

// A .npy file as numpy.save writes it (format 1.0, header padded to 64 bytes, newline-terminated).
inline void write_npy(const std::filesystem::path& path, const std::string& descr, const std::vector<int64_t>& shape, const std::string& data,
               bool fortran = false) {
  std::filesystem::create_directories(path.parent_path());
  std::string dims;
  for (auto d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  std::ofstream(path, std::ios::binary) << out << header << data;
}

template <typename T>
inline std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace apricot::test
