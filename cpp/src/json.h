// A small JSON reader for artifact metadata: objects, arrays, strings (with escapes),
// numbers, true/false/null. Enough for labels and sample rates; throws JsonError with
// the byte offset on malformed input.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace emo {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  bool integer = false;  // a number written without fraction or exponent
  std::string string;
  std::vector<Json> array;
  std::map<std::string, Json> object;

  // The member `key` of an object, or nullptr when absent or not an object.
  const Json* find(const std::string& key) const;
};

Json parse_json(const std::string& text);

}  // namespace emo
