// Parser throughput of the sector adapters, in memory: teaching logs (XSD
// validation pass + mapping pass) and hospital exports (envelope check,
// base64, inner XML, mapping, episode state in memory). Reported as bytes/s
// (MB/s) and items/s (records/s). Not a unit test: numbers go to
// docs/performance.md with the command that produced them.
//
// Peak memory on a large hospital export (issue 4 asks for 500 MB):
//   build/bin/kpihub-sim-health --out /tmp/big --hospitals 1 --clinicians 800 --days 1 --episodes
//   200 build/bin/bench_sector --file /tmp/big/inbox/56101-2025-04-01.xml
// reads that file once through the health reader and prints MB/s, records/s
// and the process's peak RSS.
#include <kpihub/education/teaching_log.hpp>
#include <kpihub/health/his.hpp>

#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

std::string teaching_log(int teachers, int days) {
  std::string x =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<TeachingLog "
      "xmlns=\"urn:vn:edu:teaching-log:1\" "
      "schoolCode=\"56.01.THPT.012\" agencyCode=\"000.00.25.H34\" level=\"upper-secondary\" "
      "from=\"2025-04-01\" "
      "to=\"2025-04-30\">\n";
  for (int t = 0; t < teachers; ++t) {
    x += "  <Teacher id=\"GV-" + std::to_string(t) + "\" name=\"Nguyễn Thị Lan\">\n";
    for (int d = 1; d <= days; ++d) {
      char date[32];
      std::snprintf(date, sizeof date, "2025-04-%02d", d);
      for (int p = 1; p <= 4; ++p) {
        x += "    <Lesson id=\"L-" + std::to_string(t) + "-" + std::to_string(d) + "-" +
             std::to_string(p) + "\" date=\"" + date + "\" period=\"" + std::to_string(p) +
             "\" class=\"10A1\" subject=\"Toán\" minutes=\"45\" status=\"taught\" "
             "revision=\"1\"/>\n";
      }
    }
    x += "  </Teacher>\n";
  }
  return x + "</TeachingLog>\n";
}

std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  out.resize(static_cast<std::size_t>(EVP_EncodeBlock(
      reinterpret_cast<unsigned char*>(out.data()),
      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()))));
  return out;
}

std::string hospital_export(int episodes) {
  std::string x =
      "<?xml version=\"1.0\" "
      "encoding=\"utf-8\"?>\n<GIAMDINHHS><THONGTINDONVI><MACSKCB>56001</MACSKCB>"
      "</THONGTINDONVI><THONGTINHOSO><DANHSACHHOSO>\n";
  for (int e = 0; e < episodes; ++e) {
    const std::string lk = "LK" + std::to_string(e);
    const std::string x1 =
        "<TONG_HOP><MA_LK>" + lk + "</MA_LK><HO_TEN>Trần Văn A</HO_TEN></TONG_HOP>";
    std::string rows;
    for (int s = 1; s <= 4; ++s) {
      rows +=
          "<CHI_TIET_DVKT><MA_LK>" + lk + "</MA_LK><STT>" + std::to_string(s) +
          "</STT><MA_DICH_VU>22.0121</MA_DICH_VU><TEN_DICH_VU>Xét nghiệm</TEN_DICH_VU><MA_NHOM>" +
          (s == 1 ? "13" : "1") +
          "</MA_NHOM><SO_LUONG>1.000</SO_LUONG><MA_BAC_SI>001234/KH-CCHN</"
          "MA_BAC_SI><NGUOI_THUC_HIEN>"
          "005678/KH-CCHN;001234/KH-CCHN</NGUOI_THUC_HIEN><NGAY_YL>202504080930</"
          "NGAY_YL><NGAY_TH_YL>"
          "202504081000</NGAY_TH_YL><NGAY_KQ>202504081030</NGAY_KQ></CHI_TIET_DVKT>";
    }
    const std::string x3 = "<CHITIEU_CHITIET_DVKT_VTYT><DSACH_CHI_TIET_DVKT>" + rows +
                           "</DSACH_CHI_TIET_DVKT></CHITIEU_CHITIET_DVKT_VTYT>";
    x += "<HOSO><FILEHOSO><LOAIHOSO>XML1</LOAIHOSO><NOIDUNGFILE>" + b64(x1) +
         "</NOIDUNGFILE></FILEHOSO><FILEHOSO><LOAIHOSO>XML3</LOAIHOSO><NOIDUNGFILE>" + b64(x3) +
         "</NOIDUNGFILE></FILEHOSO></HOSO>\n";
  }
  return x + "</DANHSACHHOSO></THONGTINHOSO></GIAMDINHHS>\n";
}

void BM_TeachingLog(benchmark::State& state) {
  const std::string doc = teaching_log(static_cast<int>(state.range(0)), 20);
  const std::string xsd(kpihub::education::shipped_schema());
  std::size_t records = 0;
  for (auto _ : state) {
    auto reader = kpihub::education::TeachingLogReader::open_memory(doc, "bench.xml", xsd);
    reader->check();
    kpihub::sdk::Page page;
    while (reader->next_unit(page)) {
      records += page.records().size();
      page.clear();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(doc.size()) * state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(records));
}
BENCHMARK(BM_TeachingLog)->Arg(200)->Unit(benchmark::kMillisecond);

void BM_HospitalExport(benchmark::State& state) {
  const std::string doc = hospital_export(static_cast<int>(state.range(0)));
  const kpihub::health::Mapping mapping;
  std::size_t records = 0;
  int64_t seq = 0;
  for (auto _ : state) {
    // A new file number each time with new content would be a re-export;
    // a fresh state makes every pass a first export, as in a backlog.
    state.PauseTiming();
    kpihub::health::EpisodeState fresh(":memory:");
    state.ResumeTiming();
    auto reader = kpihub::health::HisReader::open_memory(doc, "bench.xml", ++seq, mapping, fresh);
    reader->check();
    kpihub::sdk::Page page;
    while (reader->next_unit(page)) {
      records += page.records().size();
      page.clear();
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(doc.size()) * state.iterations());
  state.SetItemsProcessed(static_cast<int64_t>(records));
}
BENCHMARK(BM_HospitalExport)->Arg(2000)->Unit(benchmark::kMillisecond);

// --file PATH: one pass of the health reader over a real export, with peak RSS.
int read_file(const std::string& path) {
  const kpihub::health::Mapping mapping;
  const auto dir =
      std::filesystem::temp_directory_path() / ("bench-sector-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  kpihub::health::EpisodeState state((dir / "state.db").string());
  const auto started = std::chrono::steady_clock::now();
  auto reader = kpihub::health::HisReader::open_file(
      path, std::filesystem::path(path).filename().string(), 1, mapping, state);
  reader->check();
  std::size_t records = 0, rejected = 0;
  kpihub::sdk::Page page;
  while (reader->next_unit(page)) {
    records += page.records().size();
    rejected += page.rejected().size();
    page.clear();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
  std::printf(
      "%s: %.1f MB, %zu records, %zu rejected in %.1f s: %.1f MB/s, %.0f records/s, peak RSS %.1f "
      "MB\n",
      path.c_str(), mb, records, rejected, seconds, mb / seconds,
      static_cast<double>(records) / seconds, static_cast<double>(usage.ru_maxrss) / 1024.0);
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--file") == 0) return read_file(argv[2]);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
