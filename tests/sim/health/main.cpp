// kpihub-sim-health: writes hospital exports in the Ministry of Health XML
// envelope (spec/sources.md §3) for a chosen number of hospitals, clinicians
// and days, deterministically from a seed, as an HIS drops them into an inbox
// (written as .part, then renamed in): 130-layout and legacy 4210 files,
// several clinicians per field, seconded codes, CDATA, empty tags, BOMs, and
// re-exported episodes with a changed and a vanished row. Also writes the
// staff directory (practising-certificate numbers as identifiers), the units,
// and a report of every credit the hub must end up with. Made-up patient
// names are in XML1 so tests can check they never leave the file.
#include <kpihub/net.hpp>

#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <boost/json.hpp>
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace po = boost::program_options;
using namespace std::chrono;

namespace {

const char* const kFamily[] = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đặng", "Bùi"};
const char* const kGiven[] = {"An",  "Bình", "Chi",  "Dung", "Giang",
                              "Hải", "Khoa", "Loan", "Minh", "Nga"};

std::string b64(const std::string& text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string stamp(sys_days d, int minutes) {
  const year_month_day ymd{d};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02u%02u%02d%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), minutes / 60,
                minutes % 60);
  return buf;
}

std::string date_of(sys_days d) {
  const std::string s = stamp(d, 0);
  return s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2);
}

struct Row3 {
  int stt = 0, nhom = 13;
  std::string service, name, qty = "1.000", doctor, performers, ordered, done, result;
};

struct Episode {
  std::string ma_lk, patient;
  std::vector<Row3> services;
  std::vector<std::pair<std::string, std::string>> reads;  // NGAY_KQ, reader
  std::vector<std::pair<std::string, std::string>> notes;  // time, writer
};

std::string row3_xml(const std::string& ma_lk, const Row3& r, bool legacy) {
  std::ostringstream x;
  x << "<CHI_TIET_DVKT><MA_LK>" << ma_lk << "</MA_LK><STT>" << r.stt << "</STT><MA_DICH_VU>"
    << r.service << "</MA_DICH_VU><TEN_DICH_VU><![CDATA[" << r.name << "]]></TEN_DICH_VU><MA_NHOM>"
    << r.nhom << "</MA_NHOM><SO_LUONG>" << r.qty
    << "</SO_LUONG><DON_GIA>150000</DON_GIA><MA_KHOA>K01</MA_KHOA><MA_BAC_SI>" << r.doctor
    << "</MA_BAC_SI>";
  if (!legacy) {
    x << (r.performers.empty() ? "<NGUOI_THUC_HIEN/>"
                               : "<NGUOI_THUC_HIEN>" + r.performers + "</NGUOI_THUC_HIEN>");
  }
  x << "<NGAY_YL>" << r.ordered << "</NGAY_YL>";
  if (!legacy) x << (r.done.empty() ? "<NGAY_TH_YL/>" : "<NGAY_TH_YL>" + r.done + "</NGAY_TH_YL>");
  x << (r.result.empty() ? "<NGAY_KQ/>" : "<NGAY_KQ>" + r.result + "</NGAY_KQ>")
    << "</CHI_TIET_DVKT>";
  return x.str();
}

std::string hoso_xml(const Episode& e, bool legacy, bool bom) {
  std::ostringstream x1, x3, x4, x5;
  x1 << "<?xml version=\"1.0\" encoding=\"utf-8\"?><TONG_HOP><MA_LK>" << e.ma_lk
     << "</MA_LK><HO_TEN>" << e.patient << "</HO_TEN><MA_THE_BHYT>DN4797915"
     << e.ma_lk.substr(e.ma_lk.size() - 6)
     << "</MA_THE_BHYT><DIA_CHI>Nha Trang</DIA_CHI><MA_LOAI_KCB>1</MA_LOAI_KCB></TONG_HOP>";
  std::string rows;
  for (const auto& r : e.services) rows += row3_xml(e.ma_lk, r, legacy);
  x3 << "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
     << (legacy ? "<DSACH_CHI_TIET_DVKT>" + rows + "</DSACH_CHI_TIET_DVKT>"
                : "<CHITIEU_CHITIET_DVKT_VTYT><DSACH_CHI_TIET_DVKT>" + rows +
                      "</DSACH_CHI_TIET_DVKT></CHITIEU_CHITIET_DVKT_VTYT>");
  x4 << "<?xml version=\"1.0\" "
        "encoding=\"utf-8\"?><CHITIEU_CHITIET_DICHVUCANLAMSANG><DSACH_CHI_TIET_CLS>";
  for (std::size_t i = 0; i < e.reads.size(); ++i) {
    x4 << "<CHI_TIET_CLS><MA_LK>" << e.ma_lk << "</MA_LK><STT>" << i + 1
       << "</STT><MA_DICH_VU>22.0121</MA_DICH_VU><GIA_TRI>5.1</GIA_TRI><NGAY_KQ>"
       << e.reads[i].first << "</NGAY_KQ><MA_BS_DOC_KQ>" << e.reads[i].second
       << "</MA_BS_DOC_KQ></CHI_TIET_CLS>";
  }
  x4 << "</DSACH_CHI_TIET_CLS></CHITIEU_CHITIET_DICHVUCANLAMSANG>";
  x5 << "<?xml version=\"1.0\" "
        "encoding=\"utf-8\"?><CHITIEU_CHITIET_DIENBIENLAMSANG><DSACH_CHI_TIET_DIEN_BIEN_BENH>";
  for (std::size_t i = 0; i < e.notes.size(); ++i) {
    x5 << "<CHI_TIET_DIEN_BIEN_BENH><MA_LK>" << e.ma_lk << "</MA_LK><STT>" << i + 1
       << "</STT><DIEN_BIEN><![CDATA[Bệnh nhân " << e.patient
       << " ổn định]]></DIEN_BIEN><THOI_DIEM_DBLS>" << e.notes[i].first
       << "</THOI_DIEM_DBLS><NGUOI_THUC_HIEN>" << e.notes[i].second
       << "</NGUOI_THUC_HIEN></CHI_TIET_DIEN_BIEN_BENH>";
  }
  x5 << "</DSACH_CHI_TIET_DIEN_BIEN_BENH></CHITIEU_CHITIET_DIENBIENLAMSANG>";
  const std::string bom_prefix = bom ? "\xEF\xBB\xBF" : "";
  return "<HOSO><FILEHOSO><LOAIHOSO>XML1</LOAIHOSO><NOIDUNGFILE>" + b64(x1.str()) +
         "</NOIDUNGFILE></FILEHOSO><FILEHOSO><LOAIHOSO>XML3</LOAIHOSO><NOIDUNGFILE>" +
         b64(x3.str()) + "</NOIDUNGFILE></FILEHOSO>" +
         (legacy ? ""
                 : "<FILEHOSO><LOAIHOSO>XML4</LOAIHOSO><NOIDUNGFILE>" + b64(x4.str()) +
                       "</NOIDUNGFILE></FILEHOSO><FILEHOSO><LOAIHOSO>XML5</LOAIHOSO><NOIDUNGFILE>" +
                       b64(bom_prefix + x5.str()) + "</NOIDUNGFILE></FILEHOSO>") +
         "</HOSO>\n";
}

std::string envelope(const std::string& facility, const std::string& hosos, int count) {
  return "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<GIAMDINHHS><THONGTINDONVI><MACSKCB>" +
         facility +
         "</MACSKCB></THONGTINDONVI><THONGTINHOSO><NGAYLAP>20250430</NGAYLAP><SOLUONGHOSO>" +
         std::to_string(count) + "</SOLUONGHOSO><DANHSACHHOSO>\n" + hosos +
         "</DANHSACHHOSO></THONGTINHOSO><CHUKYDONVI/></GIAMDINHHS>\n";
}

void write_atomically(const fs::path& path, const std::string& text, fs::file_time_type mtime) {
  const fs::path part = path.string() + ".part";
  std::ofstream(part, std::ios::binary) << text;
  fs::last_write_time(part, mtime);
  fs::rename(part, path);
}

// Every credit of an episode as the adapter maps it: source_id ->
// "task\tdate\tminutes\tquantity\tcchn".
void credits(const std::string& facility, const Episode& e, bool legacy,
             std::map<std::string, std::string>& out) {
  auto add = [&](const std::string& table, int stt, const std::string& who, const std::string& task,
                 const std::string& when, int minutes, const std::string& qty) {
    out[facility + "|" + e.ma_lk + "|" + table + "|" + std::to_string(stt) + "|" + who] =
        task + "\t" + when.substr(0, 4) + "-" + when.substr(4, 2) + "-" + when.substr(6, 2) + "\t" +
        std::to_string(minutes) + "\t" + qty + "\t" + who;
  };
  for (const auto& r : e.services) {
    if (r.nhom == 13) add("XML3", r.stt, r.doctor, "MED.EXAM", r.ordered, 0, r.qty);
    if (r.nhom == 1 || r.nhom == 2 || r.nhom == 8) {
      const std::string task = r.nhom == 1 ? "MED.LAB" : r.nhom == 2 ? "MED.IMAGING" : "MED.PROC";
      if (legacy) {
        add("XML3", r.stt, r.doctor, task, r.ordered, 0, r.qty);
      } else {
        auto minutes = [](const std::string& s) {
          return std::stoi(s.substr(8, 2)) * 60 + std::stoi(s.substr(10, 2));
        };
        std::stringstream who(r.performers);
        std::string one;
        while (std::getline(who, one, ';'))
          add("XML3", r.stt, one, task, r.done, minutes(r.result) - minutes(r.done), r.qty);
      }
    }
  }
  if (legacy) return;
  for (std::size_t i = 0; i < e.reads.size(); ++i)
    add("XML4", static_cast<int>(i + 1), e.reads[i].second, "MED.RESULT_READ", e.reads[i].first, 0,
        "1");
  for (std::size_t i = 0; i < e.notes.size(); ++i)
    add("XML5", static_cast<int>(i + 1), e.notes[i].second, "MED.CLINICAL_NOTE", e.notes[i].first,
        0, "1");
}

// One episode of clinician `c` on day `d`: an examination, maybe a lab test
// with its result read by a colleague, maybe a procedure or imaging by two
// clinicians (sometimes a seconded one), drugs (nobody credited), a note.
Episode make_episode(std::mt19937& rng, const std::string& facility, int d, int c, int k,
                     const std::vector<std::string>& cchn, sys_days today) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const int clinicians = static_cast<int>(cchn.size());
  Episode e;
  char lk[80];
  std::snprintf(lk, sizeof lk, "%s%02d%03d%03d", facility.c_str(), d + 1, c, k);
  e.ma_lk = lk;
  e.patient = std::string(kFamily[pick(8)]) + " Văn " + kGiven[pick(10)];
  const int t0 = 7 * 60 + pick(8 * 60);
  int stt = 0;
  e.services.push_back({++stt, 13, "02.1896", "Khám bệnh", "1.000",
                        cchn[static_cast<std::size_t>(c)], "", stamp(today, t0), "", ""});
  if (chance(0.5)) {
    Row3 lab{++stt,
             1,
             "22.0121",
             "Tổng phân tích tế bào máu",
             "1.000",
             cchn[static_cast<std::size_t>(c)],
             cchn[static_cast<std::size_t>((c + 1) % clinicians)],
             stamp(today, t0 + 10),
             stamp(today, t0 + 20),
             stamp(today, t0 + 50)};
    e.services.push_back(lab);
    e.reads.emplace_back(stamp(today, t0 + 60),
                         cchn[static_cast<std::size_t>((c + 2) % clinicians)]);
  }
  if (chance(0.3)) {
    const std::string second =
        cchn[static_cast<std::size_t>((c + 3) % clinicians)] + (chance(0.3) ? ".C.1" : "");
    e.services.push_back({++stt, chance(0.5) ? 8 : 2, "10.0001", "Thủ thuật", "1.000",
                          cchn[static_cast<std::size_t>(c)],
                          cchn[static_cast<std::size_t>(c)] + ";" + second, stamp(today, t0 + 15),
                          stamp(today, t0 + 30), stamp(today, t0 + 75)});
  }
  e.services.push_back({++stt, 4, "40.17", "Thuốc", "10.000", cchn[static_cast<std::size_t>(c)], "",
                        stamp(today, t0 + 5), "", ""});  // drugs credit no one
  e.notes.emplace_back(stamp(today, t0 + 90), cchn[static_cast<std::size_t>(c)]);
  return e;
}
}  // namespace

int generate(int argc, char** argv) {
  po::options_description desc(
      "kpihub-sim-health [generate]: hospital XML exports (spec/sources.md §3)");
  std::string out, month;
  int hospitals = 2, clinicians = 10, days = 5, episodes_per_day = 6;
  unsigned seed = 20251123;
  desc.add_options()("help,h", "this help")("out", po::value(&out)->required(), "output folder")(
      "hospitals", po::value(&hospitals)->default_value(2), "hospitals")(
      "clinicians", po::value(&clinicians)->default_value(10), "clinicians per hospital")(
      "days", po::value(&days)->default_value(5), "days from the first of the month")(
      "episodes", po::value(&episodes_per_day)->default_value(6), "episodes per clinician and day")(
      "month", po::value(&month)->default_value("2025-04"), "month, YYYY-MM")(
      "seed", po::value(&seed)->default_value(20251123), "random seed");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc
                << "\nWrites OUT/inbox/*.xml (one export per hospital and day, then re-exports),\n"
                   "OUT/staff.csv, OUT/units.csv and OUT/expected.tsv (source_id, latest content\n"
                   "or 'retracted', what the hub must hold at the end).\n";
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-health: " << e.what() << "\n" << desc;
    return 2;
  }
  int y = 0;
  unsigned m = 0;
  if (std::sscanf(month.c_str(), "%d-%u", &y, &m) != 2 || m < 1 || m > 12) {
    std::cerr << "kpihub-sim-health: --month: \"" << month << "\" is not YYYY-MM\n";
    return 2;
  }
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  const sys_days first{year{y} / std::chrono::month{m} / day{1}};

  fs::create_directories(fs::path(out) / "inbox");
  std::ofstream staff(fs::path(out) / "staff.csv"), units(fs::path(out) / "units.csv"),
      expected(fs::path(out) / "expected.tsv");
  staff << "# Clinicians written by kpihub-sim-health (seed " << seed << ")\n"
        << "staff_code,full_name,agency_code,leader,active,sector,identifiers\n";
  units << "unit_code,agency_code,name\n";
  const auto base_time = fs::file_time_type::clock::now() - std::chrono::hours(2);
  std::map<std::string, std::string> final_credits;  // source_id -> content, or "retracted"
  int staff_no = 0, files = 0;
  for (int h = 0; h < hospitals; ++h) {
    char facility[16], agency[32];
    std::snprintf(facility, sizeof facility, "56%03d", 101 + h);
    std::snprintf(agency, sizeof agency, "000.00.%02d.H34", 31 + h % 20);
    units << facility << "," << agency << ",Bệnh viện số " << h + 1 << "\n";
    const bool legacy = h % 4 == 3;  // some hospitals still write the 4210 layout
    std::vector<std::string> cchn;
    for (int c = 0; c < clinicians; ++c) {
      char id[32], code[32];
      std::snprintf(id, sizeof id, "%06d/KH-CCHN", 10000 + h * 1000 + c);
      std::snprintf(code, sizeof code, "YT-%06d", ++staff_no);
      cchn.emplace_back(id);
      staff << code << "," << kFamily[pick(8)] << " " << kGiven[pick(10)] << "," << agency << ","
            << (c == 0 ? "true" : "false") << ",true,health," << id << "\n";
    }
    std::vector<std::pair<Episode, sys_days>> to_reexport;
    for (int d = 0; d < days; ++d) {
      const sys_days today = first + std::chrono::days{d};
      std::string hosos;
      int count = 0;
      for (int c = 0; c < clinicians; ++c) {
        for (int k = 0; k < episodes_per_day; ++k) {
          const Episode e = make_episode(rng, facility, d, c, k, cchn, today);
          hosos += hoso_xml(e, legacy, k % 5 == 0);
          ++count;
          credits(facility, e, legacy, final_credits);
          if (chance(0.05) && e.services.size() > 2) to_reexport.emplace_back(e, today);
        }
      }
      write_atomically(
          fs::path(out) / "inbox" / (std::string(facility) + "-" + date_of(today) + ".xml"),
          envelope(facility, hosos, count), base_time + std::chrono::minutes(d));
      ++files;
    }
    // Corrections: the quantity of the first service changes, the second
    // service vanishes (its credits are withdrawn), the rest is unchanged.
    std::string hosos;
    for (auto& [e, when] : to_reexport) {
      std::map<std::string, std::string> before;
      credits(facility, e, legacy, before);
      e.services[0].qty = "2.000";
      e.services.erase(e.services.begin() + 1);
      std::map<std::string, std::string> after;
      credits(facility, e, legacy, after);
      for (const auto& [id, content] : before) {
        if (!after.count(id)) final_credits[id] = "retracted";
      }
      for (const auto& [id, content] : after) final_credits[id] = content;
      hosos += hoso_xml(e, legacy, false);
    }
    if (!to_reexport.empty()) {
      write_atomically(fs::path(out) / "inbox" / (std::string(facility) + "-corrections.xml"),
                       envelope(facility, hosos, static_cast<int>(to_reexport.size())),
                       base_time + std::chrono::minutes(100));
      ++files;
    }
  }
  for (const auto& [id, content] : final_credits) expected << id << "\t" << content << "\n";
  std::cout << "kpihub-sim-health: " << files << " files, " << staff_no << " clinicians, "
            << final_credits.size() << " credits in " << out << "\n";
  return 0;
}

namespace {

// serve: the HIS's HTTP endpoint as the adapter expects it (docs/adapters/health.md):
//   GET /his/exports?after=<name>  -> JSON list of the export names after <name>, sorted
//   GET /his/exports/<name>        -> the export
// both with "Authorization: Bearer <key>" (401 otherwise). The exports are the
// *.xml files of --dir, as the generator wrote them.
int serve(int argc, char** argv) {
  po::options_description desc("kpihub-sim-health serve: the HIS's export listing over HTTP");
  std::string dir, key_file;
  kpihub::net::ServerOptions server;
  desc.add_options()("help,h", "this help")("dir", po::value(&dir)->required(),
                                            "folder of exports (the generator's OUT/inbox)")(
      "api-key-file", po::value(&key_file)->required(), "file holding the bearer key")(
      "address", po::value(&server.address)->default_value("127.0.0.1"), "listen address")(
      "port", po::value(&server.port)->default_value(0), "listen port (0: any free port)");
  po::variables_map vm;
  std::string key;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
    std::ifstream in(key_file);
    if (!in || !std::getline(in, key) || key.empty())
      throw std::invalid_argument("cannot read a key from --api-key-file " + key_file);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-health serve: " << e.what() << "\n" << desc;
    return 2;
  }
  auto exports = [dir]() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (e.is_regular_file() && !n.empty() && n.front() != '.' && n.size() > 4 &&
          n.compare(n.size() - 4, 4, ".xml") == 0) {
        names.push_back(n);
      }
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  kpihub::net::HttpServer http(server, [&](const kpihub::net::Request& r) {
    kpihub::net::Reply reply;
    if (r.header("authorization") != "Bearer " + key) {
      reply.status = 401;
      reply.body = R"({"error":"unauthorized"})";
      return reply;
    }
    if (r.method != "GET") {
      reply.status = 405;
      return reply;
    }
    if (r.path == "/his/exports") {
      const auto after = r.query.count("after") ? r.query.at("after") : std::string();
      boost::json::array list;
      for (const auto& n : exports()) {
        if (n > after) list.emplace_back(n);
      }
      reply.body = boost::json::serialize(list);
      return reply;
    }
    const std::string prefix = "/his/exports/";
    const std::string name = r.path.rfind(prefix, 0) == 0 ? r.path.substr(prefix.size()) : "";
    const auto names = exports();
    if (name.empty() || std::find(names.begin(), names.end(), name) == names.end()) {
      reply.status = 404;
      reply.body = R"({"error":"not found"})";
      return reply;
    }
    std::ifstream in(fs::path(dir) / name, std::ios::binary);
    reply.body.assign(std::istreambuf_iterator<char>(in), {});
    reply.headers = {{"Content-Type", "application/xml"}};
    return reply;
  });

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts
  try {
    http.start();
    std::cout << "kpihub-sim-health listening on http://" << server.address << ":" << http.port()
              << std::endl;
    int received = 0;
    sigwait(&signals, &received);
    http.stop();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-health serve: " << e.what() << "\n";
    return 1;
  }
}

// large: one export of about --mb megabytes, streamed to disk episode by
// episode (the generator's own memory stays small), for the peak-RSS check
// of docs/performance.md.
int large(int argc, char** argv) {
  po::options_description desc("kpihub-sim-health large: one very large export, streamed to disk");
  std::string out;
  int mb = 500, clinicians = 200;
  unsigned seed = 20251123;
  desc.add_options()("help,h", "this help")("out", po::value(&out)->required(),
                                            "file to write (written as OUT.part, then renamed)")(
      "mb", po::value(&mb)->default_value(500), "size in megabytes (10^6 bytes)")(
      "clinicians", po::value(&clinicians)->default_value(200), "clinicians")(
      "seed", po::value(&seed)->default_value(20251123), "random seed");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
    if (mb < 1 || clinicians < 1) throw std::invalid_argument("--mb and --clinicians must be >= 1");
  } catch (const std::exception& e) {
    std::cerr << "kpihub-sim-health large: " << e.what() << "\n" << desc;
    return 2;
  }
  std::mt19937 rng(seed);
  std::vector<std::string> cchn;
  for (int c = 0; c < clinicians; ++c) {
    char id[32];
    std::snprintf(id, sizeof id, "%06d/KH-CCHN", 10000 + c);
    cchn.emplace_back(id);
  }
  const std::string facility = "56101";
  const std::string whole = envelope(facility, "@", 0);
  const auto at = whole.find('@');
  const fs::path part = out + ".part";
  std::ofstream f(part, std::ios::binary);
  f << whole.substr(0, at);
  const std::uint64_t target = static_cast<std::uint64_t>(mb) * 1000 * 1000;
  std::uint64_t written = at, episodes = 0;
  const sys_days first{year{2025} / April / day{1}};
  for (int k = 0; written < target; ++k) {
    for (int c = 0; c < clinicians && written < target; ++c) {
      const Episode e =
          make_episode(rng, facility, k % 28, c, k, cchn, first + std::chrono::days{k % 28});
      const std::string x = hoso_xml(e, false, c % 5 == 0);
      f << x;
      written += x.size();
      ++episodes;
    }
  }
  f << whole.substr(at + 1);
  f.close();
  if (!f) {
    std::cerr << "kpihub-sim-health large: cannot write " << part << "\n";
    return 1;
  }
  fs::rename(part, out);
  std::cout << "kpihub-sim-health: " << episodes << " episodes, " << fs::file_size(out)
            << " bytes in " << out << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve") return serve(argc - 1, argv + 1);
  if (mode == "large") return large(argc - 1, argv + 1);
  if (mode == "generate") return generate(argc - 1, argv + 1);
  if (mode == "--help" || mode == "-h") {
    std::cout << "kpihub-sim-health: a hospital information system's exports (spec/sources.md §3)\n"
                 "  kpihub-sim-health [generate] --out DIR ...   exports, staff, units, expected\n"
                 "  kpihub-sim-health serve --dir DIR --api-key-file F   the HTTP listing\n"
                 "  kpihub-sim-health large --out FILE --mb 500   one large export, streamed\n"
                 "Each mode's options: kpihub-sim-health MODE --help\n\n";
  }
  return generate(argc, argv);
}
