// The backend layer of libemo_toolkit: one C API (c_api.cc) over several runtimes.
//
// A backend loads an artifact, reads the emo-toolkit metadata embedded in it and runs one
// clip to its logits; everything else (argument checks, softmax, results, errors) is the
// C API's. Each runtime is a plugin library (libemo_toolkit_<name>.so: one file defining a
// `BackendEntry` and EMO_BACKEND_PLUGIN, one line in backends.cc and in CMakeLists.txt);
// which plugins exist is decided at build time (CMake: EMO_WITH_TORCH, EMO_WITH_OPENVINO,
// EMO_WITH_EXECUTORCH) and they are loaded when a file they run is first opened.
#ifndef EMO_TOOLKIT_BACKEND_H_
#define EMO_TOOLKIT_BACKEND_H_

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "emo_rules.h"  // toolkit/runtime/rules.json, shared with Python

// What the plugins (one library per runtime, backends.cc) use from libemo_toolkit.so.
#define EMO_SHARED __attribute__((visibility("default")))

namespace emo {

// An error whose message is shown to the caller as it is, with the reason code
// EmoLastErrorReason gives (emo-predict's codes; "artifact" for loading).
class EMO_SHARED Failure : public std::runtime_error {
 public:
  explicit Failure(const std::string& message, const char* reason = EMO_REASON_ARTIFACT)
      : std::runtime_error(message), reason_(reason) {}
  const char* reason() const { return reason_; }

 private:
  const char* reason_;
};

EMO_SHARED std::string first_line(const std::string& text);

// `text` for a one-line message: bytes that are not UTF-8 as \xNN, control characters and
// line breaks as \uNNNN (a runtime's error may quote a damaged file's bytes).
EMO_SHARED std::string printable(const std::string& text);

// The input rates the runtime takes and the largest |sample| (far larger values overflow
// inside the model): rules.json's, as Python's.
constexpr int32_t kMinRate = EMO_AUDIO_MIN_RATE, kMaxRate = EMO_AUDIO_MAX_RATE;
constexpr float kMaxAbsSample = static_cast<float>(EMO_AUDIO_MAX_ABS_SAMPLE);

// What the runtime needs from an artifact's embedded metadata (export/exporter.py).
struct Metadata {
  std::string json;
  std::vector<std::string> labels;
  int32_t sample_rate = 0;
  int32_t min_samples = 1;
  int64_t max_samples = 0;  // longest input (ExecuTorch programs plan memory for it); 0: any
  std::string precision = "fp32";  // what the export computes in ("fp32", "fp16", "int8", ...)
  bool untrained = false;          // the extractor had UNTRAINED (random) weights
  // How the graph takes a batch (toolkit/runtime/predictions.py INPUT_LAYOUTS): "clips" (waveform
  // [1, n]), "padded" (+ lengths int64 [1]) or "concatenated" (waveform [n], lengths int32).
  std::string layout = "clips";
  // The window of recordings and streams unless told (toolkit/runtime/windows.py): the
  // training clips' 90th percentile duration, at least 1 s; 10 s when none are recorded.
  double default_window_s = EMO_WINDOWS_UNKNOWN_WINDOW_S;
};

// Parses and checks the metadata JSON; Failure names `path` and the problem.
EMO_SHARED Metadata parse_metadata(const std::string& path, const std::string& text);

// What the caller asks of a backend (EmoRecognizerConfig, after the C API's checks).
struct Options {
  std::string device = "cpu";
  // "" computes in the artifact's own precision; "bf16" or "fp16": OpenVINO computes an fp32
  // artifact so (asked for explicitly)
  std::string precision;
  int threads = 0;  // the runtime's threads; 0: its default (every core it sees)
};

// Refuses a run-time precision in a backend that runs artifacts as they were exported.
EMO_SHARED void require_exported_precision(const Options& options,
                                           const std::string& backend);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const Metadata& metadata() const = 0;
  // The precision the model computes in: the export's, or what the runtime was told and
  // reports back (OpenVINO).
  virtual std::string precision() const { return metadata().precision; }
  // Logits of one mono clip at metadata().sample_rate, count >= metadata().min_samples.
  // Called under the recognizer's lock. Throws on failure.
  virtual std::vector<float> logits(const float* samples, int64_t count) = 0;
  // Logits of `rows.size()` clips of `count` samples each, one vector per clip: a backend
  // whose runtime takes a batch runs them in one call (several streams decoded together);
  // this default runs them one by one. Called under the recognizer's lock. Throws.
  virtual std::vector<std::vector<float>> logits_batch(const std::vector<const float*>& rows,
                                                       int64_t count) {
    std::vector<std::vector<float>> out;
    out.reserve(rows.size());
    for (const float* row : rows) out.push_back(logits(row, count));
    return out;
  }
};

// One runtime: the artifact name endings it takes and how it opens them.
struct BackendEntry {
  const char* name;                                   // "torchscript", "openvino", ...
  std::vector<std::string> suffixes;                  // ".torchscript.pt", ".onnx", ...
  std::unique_ptr<Backend> (*open)(const std::string& path, const Options& options,
                                   std::string* kind);  // kind: the backend's name to report
};

// The backend that runs `path` (by its name's ending), its plugin loaded on first use;
// Failure when none does or its plugin does not load (backends.cc).
const BackendEntry& backend_for(const std::string& path);

// Each plugin library defines this, returning its entry:
//   extern "C" EMO_SHARED const emo::BackendEntry* emo_toolkit_backend_v1();
#define EMO_BACKEND_PLUGIN(entry)                                                   \
  extern "C" EMO_SHARED const emo::BackendEntry* emo_toolkit_backend_v1() { return &entry; }

}  // namespace emo

#endif  // EMO_TOOLKIT_BACKEND_H_
