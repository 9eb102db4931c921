// The scoring rules file (config/rules.json, version kpi-rules/1). Every key
// but "version" is optional and defaults to the figure in spec/scoring.md.
#include <kpihub/reference.hpp>

#include "json_node.hpp"
#include "text_util.hpp"

#include <set>

namespace kpihub {

using config_detail::JsonNode;
using config_detail::quote_value;

namespace {

constexpr int kUnboundedLateDays = 1 << 30;

void read_quality(const JsonNode& node, Rules& rules) {
  node.expect_object({"excellent", "good", "fair", "poor", "none"});
  const std::pair<const char*, double*> factors[] = {{"excellent", &rules.quality_excellent},
                                                     {"good", &rules.quality_good},
                                                     {"fair", &rules.quality_fair},
                                                     {"poor", &rules.quality_poor},
                                                     {"none", &rules.quality_none}};
  for (const auto& [key, target] : factors) {
    if (auto factor = node.child(key)) *target = factor->number(0, 1);
  }
}

void read_timeliness(const JsonNode& node, Rules& rules) {
  const auto bands = node.list();
  if (bands.empty()) throw node.error("needs at least one band");
  rules.timeliness.clear();
  for (std::size_t i = 0; i < bands.size(); ++i) {
    const JsonNode& band = bands[i];
    band.expect_object({"max_late_days", "factor"});
    const bool last = i + 1 == bands.size();
    const auto max_late_days = band.child("max_late_days");
    if (last && max_late_days) {
      throw max_late_days->error(
          "the last band covers every later day: leave max_late_days out of it");
    }
    if (!last && !max_late_days)
      throw band.error("max_late_days is required except in the last band");
    const int bound = last ? kUnboundedLateDays : static_cast<int>(max_late_days->integer(0, 3650));
    if (!rules.timeliness.empty() && bound <= rules.timeliness.back().max_late_days) {
      throw max_late_days->error(std::to_string(bound) + " must be above the previous band's " +
                                 std::to_string(rules.timeliness.back().max_late_days));
    }
    rules.timeliness.push_back({bound, band.required("factor").number(0, 1)});
  }
}

}  // namespace

Rules load_rules(const std::string& file) {
  const std::string text = config_detail::read_text_file(file);
  const auto tree = config_detail::read_json_tree(file, text);
  const auto typed = config_detail::read_json_value(file, text);
  const JsonNode root(tree, &typed, file, "");
  root.expect_object({"version", "quality_factor", "timeliness", "day", "over_declared_ratio",
                      "duplicate_precedence", "assessment_share", "class_thresholds", "due",
                      "high_average_hours", "retention_days", "utc_offset_minutes",
                      "auto_approve_sources"});
  Rules rules;
  const JsonNode version = root.required("version");
  if (version.string() != rules.version) {
    throw version.error(quote_value(version.string()) + " is not a supported rules version (" +
                        rules.version + ")");
  }
  if (auto node = root.child("quality_factor")) read_quality(*node, rules);
  if (auto node = root.child("timeliness")) read_timeliness(*node, rules);

  if (auto day = root.child("day")) {
    day->expect_object({"standard_minutes", "implausible_minutes", "cap_points"});
    if (auto n = day->child("standard_minutes")) {
      rules.standard_day_minutes = static_cast<int>(n->integer(1, 1440));
    }
    if (auto n = day->child("implausible_minutes")) {
      rules.implausible_day_minutes = static_cast<int>(n->integer(1, 1440));
    }
    if (auto n = day->child("cap_points")) rules.daily_cap_points = n->number(1, 1e6);
    if (rules.implausible_day_minutes < rules.standard_day_minutes) {
      throw day->error("implausible_minutes (" + std::to_string(rules.implausible_day_minutes) +
                       ") must not be below standard_minutes (" +
                       std::to_string(rules.standard_day_minutes) + ")");
    }
  }
  if (auto n = root.child("over_declared_ratio")) rules.over_declared_ratio = n->number(1, 100);

  if (auto node = root.child("duplicate_precedence")) {
    rules.duplicate_precedence = node->string_list();
    std::set<std::string> seen;
    for (const auto& source : rules.duplicate_precedence) {
      if (!seen.insert(source).second) throw node->error(quote_value(source) + " is listed twice");
    }
  }
  if (auto share = root.child("assessment_share")) {
    share->expect_object({"non_leader", "leader"});
    if (auto n = share->child("non_leader")) rules.share_non_leader = n->number(0, 1);
    if (auto n = share->child("leader")) rules.share_leader = n->number(0, 1);
  }
  if (auto classes = root.child("class_thresholds")) {
    classes->expect_object({"excellent", "good", "complete"});
    if (auto n = classes->child("excellent")) rules.class_excellent = n->number(0, 100);
    if (auto n = classes->child("good")) rules.class_good = n->number(0, 100);
    if (auto n = classes->child("complete")) rules.class_complete = n->number(0, 100);
    if (!(rules.class_complete < rules.class_good && rules.class_good < rules.class_excellent)) {
      throw classes->error("thresholds must increase: complete < good < excellent");
    }
  }
  if (auto due = root.child("due")) {
    due->expect_object({"day", "month_offset"});
    // Up to 28 so that every month has the day.
    if (auto n = due->child("day")) rules.due_day = static_cast<int>(n->integer(1, 28));
    if (auto n = due->child("month_offset")) {
      rules.due_month_offset = static_cast<int>(n->integer(0, 12));
    }
  }
  if (auto hours = root.child("high_average_hours")) {
    hours->expect_object({"absolute", "median_ratio"});
    if (auto n = hours->child("absolute")) rules.high_hours_absolute = n->number(0, 24);
    if (auto n = hours->child("median_ratio")) rules.high_hours_median_ratio = n->number(1, 100);
  }
  if (auto n = root.child("retention_days")) {
    rules.retention_days = static_cast<int>(n->integer(1, 36500));
  }
  if (auto n = root.child("utc_offset_minutes")) {
    rules.utc_offset_minutes = static_cast<int32_t>(n->integer(-720, 840));
  }
  if (auto node = root.child("auto_approve_sources")) {
    const auto sources = node->string_list();
    rules.auto_approve_sources = std::set<std::string>(sources.begin(), sources.end());
  }
  return rules;
}

}  // namespace kpihub
