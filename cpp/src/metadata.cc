// The artifact metadata every backend reads, checked as the Python runtime checks it
// (toolkit/runtime/predictions.py ModelInfo.from_metadata): the first bad field is named.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "backend.h"
#include "json.h"

namespace emo {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

void require_exported_precision(const Options& options, const std::string& backend) {
  if (!options.precision.empty())
    throw Failure("precision " + options.precision + ": the " + backend + " backend runs an "
                  "artifact in the precision it was exported in (emo-export --precision " +
                  options.precision + " makes such an artifact); " + options.precision +
                  " at run time is OpenVINO's, for .onnx files");
}

namespace {

// The next code point of UTF-8 `s` at `i` (advancing i), or -1 when the bytes are not
// valid UTF-8 (overlong forms, surrogates and values past U+10FFFF included).
int32_t next_code_point(const std::string& s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3
               : (lead >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || i + static_cast<size_t>(length) > s.size()) return -1;
  int32_t cp = length == 1 ? lead : lead & (0x7F >> length);
  for (int k = 1; k < length; ++k) {
    if ((byte(i + static_cast<size_t>(k)) & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (byte(i + static_cast<size_t>(k)) & 0x3F);
  }
  static const int32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  i += static_cast<size_t>(length);
  return cp;
}

bool is_space(int32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
         cp == 0x1F || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Why `label` breaks the label rule (toolkit/runtime/checks.py label_text), or "": it must
// be valid UTF-8, non-empty, without surrounding white space, and hold no control
// character or line/paragraph separator (they split CSV rows and Triton's labels.txt).
// Unicode normalisation is not re-checked here: emo-export writes labels in NFC.
std::string label_problem(const std::string& label) {
  std::vector<int32_t> points;
  for (size_t i = 0; i < label.size();) {
    const int32_t cp = next_code_point(label, i);
    if (cp < 0) return "is not valid UTF-8";
    points.push_back(cp);
  }
  if (points.empty()) return "is empty";
  if (is_space(points.front()) || is_space(points.back()))
    return "has white space at its start or end";
  for (int32_t cp : points)
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029)
      return "holds a control character or line break";
  return "";
}

// A whole number in [low, high] written without fraction or exponent, as Python's
// `type(x) is int` takes it.
bool whole_in(const Json* value, double low, double high) {
  return value != nullptr && value->type == Json::Type::Number && value->integer &&
         std::isfinite(value->number) && value->number >= low && value->number <= high;
}

}  // namespace

std::string printable(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    const int32_t cp = next_code_point(text, i);
    char escape[16];
    if (cp < 0) {
      std::snprintf(escape, sizeof escape, "\\x%02x", static_cast<unsigned char>(text[at]));
      out += escape;
      i = at + 1;
    } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(cp));
      out += escape;
    } else {
      out.append(text, at, i - at);
    }
  }
  return out;
}

namespace {

std::string quoted(const std::string& text) { return "\"" + printable(text) + "\""; }

std::string shown(const Json* value) {
  if (value == nullptr) return "missing";
  switch (value->type) {
    case Json::Type::Number: {
      char text[64];
      std::snprintf(text, sizeof text, "%.17g", value->number);
      return text;
    }
    case Json::Type::String: return quoted(value->string);
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return value->boolean ? "true" : "false";
    default: return "not a number";
  }
}

}  // namespace

Metadata parse_metadata(const std::string& path, const std::string& text) {
  Metadata m;
  m.json = text;
  const auto bad = [&](const std::string& what) {
    return Failure(path + ": its emo_toolkit metadata " + what);
  };
  Json doc;
  try {
    doc = parse_json(text);
  } catch (const JsonError& e) {
    throw Failure(path + ": the artifact's metadata is not valid JSON (" + e.what() + ")");
  }
  if (doc.type != Json::Type::Object) throw bad("is not a JSON object");
  const Json* labels = doc.find("labels");
  if (labels == nullptr || labels->type != Json::Type::Array || labels->array.size() < 2)
    throw bad("has no list of two or more distinct labels");
  std::set<std::string> seen;
  for (const auto& label : labels->array) {
    if (label.type != Json::Type::String || !seen.insert(label.string).second)
      throw bad("has no list of two or more distinct labels");
    if (const std::string problem = label_problem(label.string); !problem.empty())
      throw bad("has a label that breaks the label rule: " + quoted(label.string) + " " + problem);
    m.labels.push_back(label.string);
  }
  const Json* rate = doc.find("sample_rate");
  if (!whole_in(rate, kMinRate, kMaxRate))
    throw bad("has a sample_rate outside " + std::to_string(kMinRate) + "-" +
              std::to_string(kMaxRate) + " Hz: " + shown(rate));
  m.sample_rate = static_cast<int32_t>(rate->number);
  const Json* need = doc.find("min_samples");
  if (!whole_in(need, 1, m.sample_rate))
    throw bad("has a min_samples that is not 1 to " + std::to_string(m.sample_rate) + ": " +
              shown(need));
  m.min_samples = static_cast<int32_t>(need->number);
  if (const Json* layout = doc.find("input_layout"); layout != nullptr) {
    if (layout->type != Json::Type::String ||
        (layout->string != "clips" && layout->string != "padded" &&
         layout->string != "concatenated"))
      throw bad("names an input layout this runtime does not know: " + shown(layout));
    m.layout = layout->string;
  }
  if (const Json* longest = doc.find("max_samples");
      longest != nullptr && longest->type != Json::Type::Null) {
    if (!whole_in(longest, m.min_samples, 9007199254740992.0))  // 2^53: exact in a double
      throw bad("has a max_samples below min_samples or not a whole number: " + shown(longest));
    m.max_samples = static_cast<int64_t>(longest->number);
  }
  if (const Json* precision = doc.find("precision");
      precision != nullptr && precision->type == Json::Type::String)
    m.precision = precision->string;
  if (const Json* untrained = doc.find("untrained_extractor");
      untrained != nullptr && untrained->type == Json::Type::Bool)
    m.untrained = untrained->boolean;
  if (const Json* durations = doc.find(EMO_METADATA_TRAINING_DURATIONS);
      durations != nullptr && durations->type != Json::Type::Null) {
    // toolkit/runtime/windows.py ClipDurations.from_json's rule
    const auto number = [&](const char* name) {
      const Json* field = durations->type == Json::Type::Object ? durations->find(name)
                                                                : nullptr;
      if (field == nullptr || field->type != Json::Type::Number || !std::isfinite(field->number))
        throw bad(std::string("training_durations lacks a number '") + name + "'");
      return field->number;
    };
    const double count = number("count"), low = number("min"), median = number("median"),
                 p90 = number("p90"), high = number("max");
    if (count < 1 || !(0 < low && low <= median && median <= p90 && p90 <= high))
      throw bad("training_durations needs a count >= 1 and durations 0 < min <= median <= "
                "p90 <= max");
    m.default_window_s = std::max(EMO_WINDOWS_MIN_WINDOW_S, p90);
  }
  return m;
}

}  // namespace emo
