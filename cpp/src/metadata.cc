// The artifact metadata every backend reads: labels, sample rate, length limits, layout.
#include <algorithm>

#include "backend.h"
#include "json.h"

namespace emo {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

Metadata parse_metadata(const std::string& path, const std::string& text) {
  Metadata m;
  m.json = text;
  Json doc;
  try {
    doc = parse_json(text);
  } catch (const JsonError& e) {
    throw Failure(path + ": the artifact's metadata is not valid JSON (" + e.what() + ")");
  }
  const Json* labels = doc.find("labels");
  const Json* rate = doc.find("sample_rate");
  const Json* min_samples = doc.find("min_samples");
  if (labels == nullptr || labels->type != Json::Type::Array || labels->array.size() < 2)
    throw Failure(path + ": the artifact's metadata has no list of labels");
  for (const auto& label : labels->array) {
    if (label.type != Json::Type::String)
      throw Failure(path + ": the artifact's labels are not all strings");
    m.labels.push_back(label.string);
  }
  if (rate == nullptr || rate->type != Json::Type::Number || rate->number < 1)
    throw Failure(path + ": the artifact's metadata has no sample_rate");
  m.sample_rate = static_cast<int32_t>(rate->number);
  if (min_samples != nullptr && min_samples->type == Json::Type::Number)
    m.min_samples = std::max<int32_t>(1, static_cast<int32_t>(min_samples->number));
  if (const Json* longest = doc.find("max_samples");
      longest != nullptr && longest->type == Json::Type::Number)
    m.max_samples = std::max<int64_t>(m.min_samples, static_cast<int64_t>(longest->number));
  if (const Json* layout = doc.find("input_layout"); layout != nullptr) {
    if (layout->type != Json::Type::String ||
        (layout->string != "clips" && layout->string != "padded" &&
         layout->string != "concatenated"))
      throw Failure(path + ": the artifact's metadata names an input layout this library "
                           "does not know");
    m.layout = layout->string;
  }
  return m;
}

}  // namespace emo
