// A strict reader of the Prometheus text exposition format (version 0.0.4), for tests: it checks
// what a scraper relies on and returns the samples by series ("name{labels}" as printed).
//
// Checked: metric and label names; label values quoted with only \\, \" and \n escapes; a value
// that parses as a float (+Inf, -Inf, NaN allowed); one HELP and one TYPE per family, TYPE before
// the family's samples; a family's samples together; no series twice; counters named *_total;
// histograms with _bucket{le=...} ascending and cumulative, ending at le="+Inf" equal to _count,
// plus _sum.
#pragma once
#include <cmath>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace mydfs::testing {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromParse {
  std::string error;                         // "" if the text is valid
  std::map<std::string, double> series;      // "name{a="x",b="y"}" (labels sorted) -> value
  std::map<std::string, std::string> types;  // family -> type
};

inline std::string prom_key(const std::string& name, const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return name;
  std::string k = name + "{";
  bool first = true;
  for (const auto& [l, v] : labels) {
    k += (first ? "" : ",") + l + "=\"" + v + "\"";
    first = false;
  }
  return k + "}";
}

inline PromParse parse_prometheus(const std::string& text) {
  static const std::regex metric_name("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex label_name("[a-zA-Z_][a-zA-Z0-9_]*");
  PromParse out;
  std::map<std::string, int> help_seen, type_seen;
  std::set<std::string> closed;  // families whose samples ended
  std::string current;           // family of the previous sample
  // Histogram checking state.
  struct Hist {
    double last_le = -INFINITY, last_count = -1, inf_count = -1, count = -1;
    bool sum = false;
  };
  std::map<std::string, Hist> hists;  // by family + labels without le

  auto fail = [&](int line_no, const std::string& why, const std::string& line) {
    out.error = "line " + std::to_string(line_no) + ": " + why + ": " + line;
    return out;
  };
  auto parse_value = [](const std::string& s, double* v) {
    if (s == "+Inf" || s == "Inf") { *v = INFINITY; return true; }
    if (s == "-Inf") { *v = -INFINITY; return true; }
    if (s == "NaN") { *v = NAN; return true; }
    if (s.empty()) return false;
    char* end = nullptr;
    *v = std::strtod(s.c_str(), &end);
    return end && *end == '\0';
  };
  auto family_of = [&](const std::string& name) {
    for (const char* suf : {"_bucket", "_sum", "_count"}) {
      std::string sfx = suf;
      if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
        std::string base = name.substr(0, name.size() - sfx.size());
        auto t = out.types.find(base);
        if (t != out.types.end() && (t->second == "histogram" || t->second == "summary")) return base;
      }
    }
    return name;
  };

  std::istringstream in(text);
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line.substr(1));
      std::string kw, name;
      ls >> kw >> name;
      if (kw != "HELP" && kw != "TYPE") continue;  // other comments are allowed
      if (!std::regex_match(name, metric_name)) return fail(no, "bad metric name in " + kw, line);
      if (closed.count(name) || (current == name)) return fail(no, kw + " after the family's samples", line);
      if (kw == "HELP") {
        if (help_seen[name]++) return fail(no, "second HELP", line);
      } else {
        std::string type;
        ls >> type;
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          return fail(no, "unknown type '" + type + "'", line);
        if (type_seen[name]++) return fail(no, "second TYPE", line);
        if (type == "counter" && (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0))
          return fail(no, "counter not named *_total", line);
        out.types[name] = type;
      }
      continue;
    }
    // name[{labels}] value [timestamp]
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    PromSample s;
    s.name = line.substr(0, i);
    if (!std::regex_match(s.name, metric_name)) return fail(no, "bad metric name", line);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail(no, "label without '='", line);
        std::string ln = line.substr(i, eq - i);
        if (!std::regex_match(ln, label_name) || ln.rfind("__", 0) == 0) return fail(no, "bad label name '" + ln + "'", line);
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail(no, "label value not quoted", line);
        ++i;
        std::string v;
        bool closed_quote = false;
        for (; i < line.size(); ++i) {
          char c = line[i];
          if (c == '\\') {
            if (i + 1 >= line.size()) return fail(no, "dangling escape", line);
            char e = line[++i];
            if (e == 'n') v += '\n';
            else if (e == '\\' || e == '"') v += e;
            else return fail(no, "bad escape", line);
          } else if (c == '"') {
            closed_quote = true;
            ++i;
            break;
          } else {
            v += c;
          }
        }
        if (!closed_quote) return fail(no, "unterminated label value", line);
        if (s.labels.count(ln)) return fail(no, "label twice", line);
        s.labels[ln] = v;
        if (i < line.size() && line[i] == ',') ++i;
        else if (i < line.size() && line[i] != '}') return fail(no, "expected ',' or '}'", line);
      }
      if (i >= line.size()) return fail(no, "unterminated label set", line);
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return fail(no, "no value", line);
    std::istringstream rest(line.substr(i + 1));
    std::string value, ts, extra;
    rest >> value >> ts >> extra;
    if (!parse_value(value, &s.value)) return fail(no, "value is not a number", line);
    if (!extra.empty()) return fail(no, "trailing text", line);
    std::string fam = family_of(s.name);
    if (!out.types.count(fam)) return fail(no, "sample without a TYPE before it", line);
    if (fam != current) {
      if (closed.count(fam)) return fail(no, "family's samples are not together", line);
      if (!current.empty()) closed.insert(current);
      current = fam;
    }
    std::string key = prom_key(s.name, s.labels);
    if (out.series.count(key)) return fail(no, "series twice", line);
    out.series[key] = s.value;
    if (out.types[fam] == "histogram") {
      auto base = s.labels;
      base.erase("le");
      Hist& h = hists[prom_key(fam, base)];
      if (s.name == fam + "_bucket") {
        auto le = s.labels.find("le");
        double bound = 0;
        if (le == s.labels.end() || !parse_value(le->second, &bound)) return fail(no, "bucket without a numeric le", line);
        if (bound <= h.last_le) return fail(no, "buckets not ascending", line);
        if (s.value < h.last_count) return fail(no, "buckets not cumulative", line);
        h.last_le = bound;
        h.last_count = s.value;
        if (std::isinf(bound)) h.inf_count = s.value;
      } else if (s.name == fam + "_count") {
        h.count = s.value;
      } else if (s.name == fam + "_sum") {
        h.sum = true;
      } else {
        return fail(no, "histogram sample that is not _bucket, _sum or _count", line);
      }
    } else if (s.name != fam) {
      return fail(no, "sample name differs from its family", line);
    }
  }
  for (const auto& [k, h] : hists) {
    if (h.inf_count < 0) { out.error = k + ": histogram without le=\"+Inf\""; return out; }
    if (h.count != h.inf_count) { out.error = k + ": _count differs from the +Inf bucket"; return out; }
    if (!h.sum) { out.error = k + ": histogram without _sum"; return out; }
  }
  return out;
}

}  // namespace mydfs::testing
