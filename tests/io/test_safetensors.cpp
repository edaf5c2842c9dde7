// safetensors round trips, the on-disk layout checked byte by byte against hand-computed values,
// rejection of truncated / garbage / inconsistent files, and the atomic-write helpers in core/files.hpp.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apricot/core/errors.hpp"
#include "apricot/core/files.hpp"
#include "apricot/io/safetensors.hpp"

namespace fs = std::filesystem;
using apricot::Error;
using apricot::ExitCode;

namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("apricot_st_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good());
}

// A file with the given header text (unpadded) and data bytes, for malformed-file tests.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

// Runs f, expects an apricot::Error with `code` whose message contains every one of `needles`.
template <class F>
void expect_error(F&& f, ExitCode code, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "expected apricot::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const auto& s : needles) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}

std::vector<apricot::NamedTensor> sample_tensors() {
  torch::manual_seed(0);
  return {
      {"conv.weight", torch::randn({4, 3, 2, 2})},
      {"idx", torch::tensor({int64_t{-7}, int64_t{0}, int64_t{3}, int64_t{1} << 40})},
      {"mask", torch::tensor({0, 1, 128, 255}, torch::kUInt8)},
      {"scalar", torch::tensor(3.5f)},                     // 0-d
      {"empty", torch::empty({0, 3})},                     // zero elements
      {"transposed", torch::arange(6, torch::kFloat64).view({2, 3}).t()},  // non-contiguous
      {"half", torch::randn({5}).to(torch::kFloat16)},
      {"bf16", torch::randn({3}).to(torch::kBFloat16)},
      {"i32", torch::tensor({-1, 2, 3}, torch::kInt32)},
      {"i16", torch::tensor({-300, 300}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127}, torch::kInt8)},
      {"flags", torch::tensor({true, false, true})},
  };
}

TEST_F(SafetensorsTest, RoundTripKeepsNamesOrderDtypesShapesValuesAndMetadata) {
  const auto tensors = sample_tensors();
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"model", "cnn1"}, {"note", "a \"quoted\" é"}};
  const std::string p = path("m.safetensors");
  apricot::write_safetensors(p, tensors, meta);
  const auto back = apricot::read_safetensors(p);

  EXPECT_EQ(back.metadata, meta);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].name);
    EXPECT_EQ(back.tensors[i].name, tensors[i].name);
    EXPECT_EQ(back.tensors[i].tensor.scalar_type(), tensors[i].tensor.scalar_type());
    EXPECT_EQ(back.tensors[i].tensor.sizes(), tensors[i].tensor.sizes());
    EXPECT_TRUE(back.tensors[i].tensor.is_contiguous());
    EXPECT_TRUE(torch::equal(back.tensors[i].tensor, tensors[i].tensor));
  }
  EXPECT_EQ(back.tensors[3].tensor.dim(), 0);
  EXPECT_EQ(back.tensors[3].tensor.item<float>(), 3.5f);
}

TEST_F(SafetensorsTest, EmptyMetadataAndNoTensorsRoundTrip) {
  const std::string p = path("empty.safetensors");
  apricot::write_safetensors(p, {}, {});
  const auto back = apricot::read_safetensors(p);
  EXPECT_TRUE(back.tensors.empty());
  EXPECT_TRUE(back.metadata.empty());
}

TEST_F(SafetensorsTest, LayoutMatchesTheFormatByteForByte) {
  const std::string p = path("layout.safetensors");
  apricot::write_safetensors(p,
                             {{"b", torch::tensor({1.0f, -2.0f})},
                              {"a", torch::tensor({int64_t{1}, int64_t{-1}})},
                              {"z", torch::empty({0}, torch::kUInt8)},
                              {"u", torch::tensor({7}, torch::kUInt8)}},
                             {{"k", "v"}});
  const std::string bytes = apricot::read_file(p);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  ASSERT_LE(8 + n, bytes.size());
  EXPECT_EQ(n % 8, 0u) << "header must be padded so the data section is 8-byte aligned";

  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  const size_t close = header.rfind('}');
  ASSERT_NE(close, std::string::npos);
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << "padding must be spaces";

  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j.at("__metadata__"), nlohmann::json({{"k", "v"}}));
  EXPECT_EQ(j.at("b"), nlohmann::json::parse(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"));
  EXPECT_EQ(j.at("a"), nlohmann::json::parse(R"({"dtype":"I64","shape":[2],"data_offsets":[8,24]})"));
  EXPECT_EQ(j.at("z"), nlohmann::json::parse(R"({"dtype":"U8","shape":[0],"data_offsets":[24,24]})"));
  EXPECT_EQ(j.at("u"), nlohmann::json::parse(R"({"dtype":"U8","shape":[1],"data_offsets":[24,25]})"));
  EXPECT_EQ(j.size(), 5u);

  // 1.0f = 0x3F800000, -2.0f = 0xC0000000, int64 1 and -1, uint8 7; all little-endian.
  const std::string expected_data = std::string("\x00\x00\x80\x3F\x00\x00\x00\xC0", 8) +
                                    std::string("\x01\x00\x00\x00\x00\x00\x00\x00", 8) +
                                    std::string(8, '\xFF') + std::string("\x07", 1);
  EXPECT_EQ(bytes.substr(8 + n), expected_data);
}

TEST_F(SafetensorsTest, TruncatedFileIsReportedAsTruncated) {
  const std::string good = path("good.safetensors");
  apricot::write_safetensors(good, sample_tensors(), {{"k", "v"}});
  const std::string bytes = apricot::read_file(good);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);

  // Cut in the data section, inside the header, and inside the length field.
  for (size_t keep : {bytes.size() - 1, size_t(8 + n + 3), size_t(8 + n / 2), size_t(4), size_t(0)}) {
    SCOPED_TRACE(keep);
    const std::string p = path("cut.safetensors");
    write_raw(p, bytes.substr(0, keep));
    expect_error([&] { apricot::read_safetensors(p); }, ExitCode::kState, {"truncated", p});
  }
}

TEST_F(SafetensorsTest, GarbageFileIsAStateError) {
  const std::string p = path("garbage.safetensors");
  write_raw(p, "this is not a safetensors file, just some text\n");
  expect_error([&] { apricot::read_safetensors(p); }, ExitCode::kState, {p});
}

TEST_F(SafetensorsTest, MalformedHeadersAreStateErrorsNamingTheProblem) {
  struct Case {
    std::string header, data, needle;
  };
  const std::string f4(4, '\0');
  const std::vector<Case> cases = {
      {"not json", "", "not valid JSON"},
      {"[1, 2]", "", "not a JSON object"},
      {R"({"t":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x", "unsupported dtype"},
      {R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", f4, "needs 8"},
      {R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", f4, "shape"},
      {R"({"t":{"dtype":"F32","shape":[1]}})", f4, "data_offsets"},
      {R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", f4, "shape"},
      {R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", f4, "begin"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
       std::string(8, '\0'), "overlaps"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0'), "gap"},
      {R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(8, '\0'), "trailing"},
      {R"({"__metadata__":{"k":1}})", "", "metadata"},
      {R"({"t":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", "\x02", "BOOL"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    const std::string p = path("bad.safetensors");
    write_raw(p, make_file(c.header, c.data));
    expect_error([&] { apricot::read_safetensors(p); }, ExitCode::kState, {c.needle, p});
  }
}

TEST_F(SafetensorsTest, HeaderLengthBeyondLimitIsRejected) {
  const std::string p = path("huge.safetensors");
  std::string bytes(16, ' ');
  const uint64_t n = 200'000'000;
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  write_raw(p, bytes);
  expect_error([&] { apricot::read_safetensors(p); }, ExitCode::kState, {"100 MB"});
}

TEST_F(SafetensorsTest, ReadsAFileWithUnpaddedHeaderAndOtherKeyOrder) {
  // Other writers may not pad or order keys as we do; only the layout rules matter.
  std::string data("\x01\x02\x03", 3);
  const std::string p = path("other.safetensors");
  write_raw(p, make_file(R"({"late":{"data_offsets":[1,3],"shape":[2],"dtype":"U8"},)"
                         R"("early":{"shape":[],"dtype":"U8","data_offsets":[0,1]}})",
                         data));
  const auto back = apricot::read_safetensors(p);
  ASSERT_EQ(back.tensors.size(), 2u);
  EXPECT_EQ(back.tensors[0].name, "early");  // in order of data offset
  EXPECT_EQ(back.tensors[0].tensor.dim(), 0);
  EXPECT_EQ(back.tensors[0].tensor.item<uint8_t>(), 1);
  EXPECT_TRUE(torch::equal(back.tensors[1].tensor, torch::tensor({2, 3}, torch::kUInt8)));
}

TEST_F(SafetensorsTest, MissingFileIsADataError) {
  const std::string p = path("nope.safetensors");
  expect_error([&] { apricot::read_safetensors(p); }, ExitCode::kData, {p});
}

TEST_F(SafetensorsTest, WriteUnderARegularFileIsADataError) {
  const std::string blocker = path("blocker");
  write_raw(blocker, "i am a file");
  const std::string p = blocker + "/sub/m.safetensors";
  expect_error([&] { apricot::write_safetensors(p, sample_tensors(), {}); }, ExitCode::kData,
               {p, "cannot create directory"});
  EXPECT_EQ(apricot::read_file(blocker), "i am a file");
}

// While alive, files of this process cannot grow past `bytes` (writes fail with EFBIG, as on a full
// disk; SIGXFSZ ignored), as root too.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit small = saved_;
    small.rlim_cur = bytes;
    EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = SIG_DFL;
};

std::vector<std::string> temp_files_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
  return out;
}

TEST_F(SafetensorsTest, FailedWriteLeavesThePreviousFileIntactAndNoTempFile) {
  const std::string p = path("m.safetensors");
  apricot::write_safetensors(p, {{"x", torch::ones({3})}}, {{"v", "1"}});
  const std::string before = apricot::read_file(p);
  {
    FileSizeLimit limit(16);  // the write of the temp file fails part-way
    expect_error([&] { apricot::write_safetensors(p, {{"x", torch::zeros({5})}}, {{"v", "2"}}); },
                 ExitCode::kData, {p, "write to"});
  }
  EXPECT_EQ(apricot::read_file(p), before);
  EXPECT_EQ(apricot::read_safetensors(p).metadata.at("v"), "1");
  EXPECT_TRUE(temp_files_in(dir_).empty()) << temp_files_in(dir_)[0];
}

TEST_F(SafetensorsTest, TempFilesAreUniqueAndCreatedExclusively) {
  const std::string target = path("model.pt");
  const std::string a = apricot::make_temp_file(target), b = apricot::make_temp_file(target);
  EXPECT_NE(a, b);
  for (const auto& t : {a, b}) {
    // "<target>.tmp.XXXXXX": same directory, a random suffix of six letters or digits.
    ASSERT_EQ(t.size(), target.size() + 11) << t;
    EXPECT_EQ(t.substr(0, target.size() + 5), target + ".tmp.") << t;
    for (char ch : t.substr(target.size() + 5)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch))) << t;
    EXPECT_TRUE(fs::is_regular_file(t));
    EXPECT_EQ(fs::file_size(t), 0u);
    // The mode open(0666) would give under the umask, not mkstemp's 0600.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    struct stat st {};
    ASSERT_EQ(::stat(t.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0666 & ~mask) << std::oct << st.st_mode;
  }
}

TEST_F(SafetensorsTest, AnotherWritersTempFileWithOurPidIsLeftAlone) {
  // A process on another host sharing the directory, with the same pid, mid-write: under the old
  // "<path>.tmp.<pid>" naming both wrote (and renamed) the same temp file.
  const std::string p = path("result.json");
  const std::string theirs = p + ".tmp." + std::to_string(::getpid());
  write_raw(theirs, "their half-written bytes");
  apricot::write_file_atomic(p, "ours");
  EXPECT_EQ(apricot::read_file(p), "ours");
  EXPECT_EQ(apricot::read_file(theirs), "their half-written bytes");
}

TEST_F(SafetensorsTest, ConcurrentWritersOfOnePathEachRenameAWholeFile) {
  const std::string p = path("shared.bin");
  constexpr int kThreads = 6, kWrites = 20;
  auto content = [](int t, int i) { return std::string(40000 + 1000 * t + i, static_cast<char>('a' + t)); };
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        try {
          apricot::write_file_atomic(p, content(t, i));
        } catch (const Error&) {
          ++failures;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string got = apricot::read_file(p);
  bool whole = false;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kWrites; ++i) whole |= got == content(t, i);
  EXPECT_TRUE(whole) << "a mixed or truncated file of " << got.size() << " bytes";
  EXPECT_TRUE(temp_files_in(dir_).empty());
}

TEST_F(SafetensorsTest, FailedRenameRemovesTheTempFile) {
  // The target is a non-empty directory: the rename fails after the temp file was written.
  const fs::path target = dir_ / "occupied";
  fs::create_directories(target / "child");
  expect_error([&] { apricot::write_file_atomic(target.string(), "data"); }, ExitCode::kData,
               {target.string(), "rename"});
  EXPECT_TRUE(fs::is_directory(target / "child"));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(SafetensorsTest, WriteFileAtomicCreatesParentsAndOverwrites) {
  const std::string p = path("a/b/c/file.bin");
  const std::string bin("\x00\x01\xFFzero\x00", 8);
  apricot::write_file_atomic(p, bin);
  EXPECT_EQ(apricot::read_file(p), bin);
  apricot::write_file_atomic(p, "second");
  EXPECT_EQ(apricot::read_file(p), "second");
  apricot::write_file_atomic(p, "");
  EXPECT_EQ(apricot::read_file(p), "");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "a/b/c"), fs::directory_iterator()), 1);
}

TEST_F(SafetensorsTest, WriteJsonAtomicIsPrettyWithTrailingNewline) {
  const std::string p = path("x.json");
  apricot::write_json_atomic(p, nlohmann::json{{"a", 1}, {"b", {true, "s"}}});
  EXPECT_EQ(apricot::read_file(p), "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    \"s\"\n  ]\n}\n");
}

TEST_F(SafetensorsTest, ReadFileRejectsMissingAndDirectories) {
  expect_error([&] { apricot::read_file(path("missing")); }, ExitCode::kData, {"missing"});
  expect_error([&] { apricot::read_file(dir_.string()); }, ExitCode::kData, {"directory"});
}

// Cross-check against the reference implementation when Python has it (not in Debian bookworm).
TEST_F(SafetensorsTest, ReferencePythonImplementationReadsOurFile) {
  if (std::system("python3 -c 'import safetensors, numpy' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with safetensors and numpy not available";
  }
  const std::string p = path("py.safetensors");
  apricot::write_safetensors(p,
                             {{"w", torch::tensor({1.5f, -2.0f, 0.25f, 8.0f}).view({2, 2})},
                              {"i", torch::tensor({int64_t{-3}, int64_t{1} << 40})},
                              {"s", torch::tensor(7.0)},
                              {"e", torch::empty({0, 2}, torch::kUInt8)}},
                             {{"model", "cnn1"}});
  const std::string script = path("check.py");
  write_raw(script,
            "import sys, numpy as np\n"
            "from safetensors import safe_open\n"
            "with safe_open(sys.argv[1], framework='numpy') as f:\n"
            "    assert f.metadata() == {'model': 'cnn1'}, f.metadata()\n"
            "    assert sorted(f.keys()) == ['e', 'i', 's', 'w'], f.keys()\n"
            "    w, i, s, e = (f.get_tensor(k) for k in 'wise')\n"
            "assert w.dtype == np.float32 and w.tolist() == [[1.5, -2.0], [0.25, 8.0]]\n"
            "assert i.dtype == np.int64 and i.tolist() == [-3, 1 << 40]\n"
            "assert s.dtype == np.float64 and s.shape == () and float(s) == 7.0\n"
            "assert e.dtype == np.uint8 and e.shape == (0, 2)\n");
  EXPECT_EQ(std::system(("python3 '" + script + "' '" + p + "'").c_str()), 0);
}

}  // namespace
