// kpihub-bench-records: writes the diary entries the E-Office simulator
// serves for the given flags (the same seed and defaults as
// kpihub-sim-eoffice, so the same records bench/run pulls) as
// newline-delimited JSON, one entry a line, for a peer pipeline to read.
#include <kpihub/sim/eoffice_sim.hpp>

#include <boost/program_options.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

namespace po = boost::program_options;

int main(int argc, char** argv) {
  kpihub::sim::EOfficeSimConfig config;
  std::string out_path;
  po::options_description flags(
      "kpihub-bench-records: the E-Office simulator's records as NDJSON (bench/peers)");
  // clang-format off
  flags.add_options()
    ("help", "show this help")
    ("seed", po::value(&config.seed)->default_value(1), "data seed (kpihub-sim-eoffice's default)")
    ("agencies", po::value(&config.agencies)->default_value(3), "agencies")
    ("staff", po::value(&config.staff)->default_value(60), "staff")
    ("days", po::value(&config.days)->default_value(5), "working days with diary entries")
    ("month", po::value(&config.month)->default_value("2025-04"), "month of the data, YYYY-MM")
    ("out", po::value(&out_path)->required(), "file to write");
  // clang-format on
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, flags), vm);
    if (vm.count("help")) {
      std::cout << flags << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-records: " << e.what() << "\n(see --help)\n";
    return 2;
  }
  try {
    const kpihub::sim::DiaryData data(config);
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot open " + out_path + " for writing");
    std::size_t records = 0, bytes = 0;
    for (std::size_t from = 0;;) {
      const auto slice = data.slice(from, 10000);
      for (const auto& item : slice.items) {
        out << item << '\n';
        bytes += item.size() + 1;
      }
      records += slice.items.size();
      if (!slice.more) break;
      from = slice.next;
    }
    out.close();
    if (!out) throw std::runtime_error("cannot write " + out_path);
    std::cout << "kpihub-bench-records: " << records << " records, " << bytes << " bytes in "
              << out_path << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kpihub-bench-records: " << e.what() << "\n";
    return 1;
  }
}
