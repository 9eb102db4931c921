// A sink for the hub's end-to-end tests: appends every delivered item as one
// line "<batch_id>\t<key>\t<json>" to `file`, fsync'd before it answers, so a
// test can check what was delivered and with which content. `reject_key`
// refuses one item for good (a dead letter).
#include <kpihub/sdk.hpp>

#include <cstdio>
#include <unistd.h>

namespace {

class FileSink : public kpihub::sdk::Sink {
 public:
  FileSink(kpihub::sdk::Host&, kpihub::sdk::Settings& s)
      : file_(s.string("file")), reject_key_(s.string("reject_key", "")) {}

  kpihub::sdk::Delivery deliver(const kpihub::sdk::Batch& batch) override {
    std::FILE* f = std::fopen(file_.c_str(), "a");
    if (!f) throw kpihub::sdk::TransientError("cannot open " + file_);
    kpihub::sdk::Delivery d;
    for (const auto& item : batch.items) {
      if (!reject_key_.empty() && item.key == reject_key_) {
        d.results.push_back({KPIHUB_ITEM_REJECTED, "poison", "this receiver refuses " + reject_key_});
        continue;
      }
      std::fprintf(f, "%.*s\t%.*s\t%.*s\n", static_cast<int>(batch.batch_id.size()), batch.batch_id.data(),
                   static_cast<int>(item.key.size()), item.key.data(), static_cast<int>(item.json.size()),
                   item.json.data());
      d.results.push_back({KPIHUB_ITEM_DELIVERED, "", ""});
    }
    std::fflush(f);
    ::fsync(fileno(f));
    std::fclose(f);
    return d;
  }

 private:
  std::string file_;
  std::string reject_key_;
};

}  // namespace

KPIHUB_SINK_PLUGIN(FileSink, "file-sink", "1.0.0", "Appends delivered items to a file (tests)", "{}")
