// A sink for the hub's end-to-end tests: appends every delivered item as one
// line "<batch_id>\t<key>\t<json>" to `file`, fsync'd before it answers, so a
// test can check what was delivered and with which content. `reject_key`
// refuses one item for good (a dead letter). `settled_items` N answers only
// the first N items of a batch and asks to retry the rest; with
// `settled_items_grow` it answers N more on every attempt, like a sink that
// remembers what its receiver already took.
#include <kpihub/sdk.hpp>

#include <unistd.h>
#include <cstdio>

namespace {

class FileSink : public kpihub::sdk::Sink {
 public:
  FileSink(kpihub::sdk::Host&, kpihub::sdk::Settings& s)
      : file_(s.string("file")),
        reject_key_(s.string("reject_key", "")),
        settled_items_(s.integer("settled_items", -1, -1, 1000000)),
        settled_items_grow_(s.boolean("settled_items_grow", false)) {}

  kpihub::sdk::Delivery deliver(const kpihub::sdk::Batch& batch) override {
    drop_torn_tail();
    std::FILE* f = std::fopen(file_.c_str(), "a");
    if (!f) throw kpihub::sdk::TransientError("cannot open " + file_);
    kpihub::sdk::Delivery d;
    const int64_t settled =
        settled_items_ < 0 ? -1 : settled_items_ * (settled_items_grow_ ? batch.attempt : 1);
    for (const auto& item : batch.items) {
      if (settled >= 0 && static_cast<int64_t>(d.results.size()) >= settled) {
        d.results.push_back({KPIHUB_ITEM_RETRY, "", "settled_items reached"});
        continue;
      }
      if (!reject_key_.empty() && item.key == reject_key_) {
        d.results.push_back(
            {KPIHUB_ITEM_REJECTED, "poison", "this receiver refuses " + reject_key_});
        continue;
      }
      std::fprintf(f, "%.*s\t%.*s\t%.*s\n", static_cast<int>(batch.batch_id.size()),
                   batch.batch_id.data(), static_cast<int>(item.key.size()), item.key.data(),
                   static_cast<int>(item.json.size()), item.json.data());
      d.results.push_back({KPIHUB_ITEM_DELIVERED, "", ""});
    }
    std::fflush(f);
    ::fsync(fileno(f));
    std::fclose(f);
    return d;
  }

 private:
  // A hub killed while this sink wrote a batch leaves its last line cut short; that batch was
  // never acknowledged and comes again. As a receiver's rolled-back transaction would, the
  // torn line goes, so the next batch does not continue it.
  void drop_torn_tail() const {
    std::FILE* f = std::fopen(file_.c_str(), "r+");
    if (!f) return;  // nothing written yet
    std::fseek(f, 0, SEEK_END);
    long end = std::ftell(f);
    while (end > 0) {
      std::fseek(f, end - 1, SEEK_SET);
      if (std::fgetc(f) == '\n') break;
      --end;
    }
    std::fflush(f);
    if (::ftruncate(fileno(f), end) != 0) {
      std::fclose(f);
      throw kpihub::sdk::TransientError("cannot cut the torn line of " + file_);
    }
    std::fclose(f);
  }

  std::string file_;
  std::string reject_key_;
  int64_t settled_items_;
  bool settled_items_grow_;
};

}  // namespace

KPIHUB_SINK_PLUGIN(FileSink, "file-sink", "1.0.0", "Appends delivered items to a file (tests)",
                   "{}")
