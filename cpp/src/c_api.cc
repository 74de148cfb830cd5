// The C API: argument checks, results and errors, over the backends of backend.h.
#include "emo_toolkit/c_api.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "backend.h"
#include "json.h"
#include "resample.h"
#include "segment.h"

#ifndef EMO_TOOLKIT_VERSION
#define EMO_TOOLKIT_VERSION "0.0.0"
#endif

namespace {

constexpr double kMaxClipSeconds = EMO_AUDIO_MAX_CLIP_SECONDS;

thread_local const char* last_reason = "";

// A number as %g writes it: "60", "0.5".
std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

void set_error(char** error, const std::string& text, const char* reason = EMO_REASON_ARTIFACT) {
  last_reason = reason;
  if (error == nullptr) return;
  const std::string message = emo::printable(text);
  *error = static_cast<char*>(std::malloc(message.size() + 1));
  if (*error != nullptr) std::memcpy(*error, message.c_str(), message.size() + 1);
}

// Only a regular file is opened: a FIFO would block and /dev/zero never end.
void require_regular_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    throw emo::Failure(path + ": no such file, or it cannot be read");
  if (!S_ISREG(st.st_mode)) throw emo::Failure(path + ": not a regular file");
  if (st.st_size == 0) throw emo::Failure(path + ": the file is empty (0 bytes)");
  if (!std::ifstream(path, std::ios::binary).good())
    throw emo::Failure(path + ": the file cannot be read (permissions)");
}

// A precision asked for: "" (the artifact's own) for fp32, bf16 or fp16; others refused.
std::string run_precision(const std::string& precision) {
  if (precision == "bf16" || precision == "fp16") return precision;
  if (precision != "fp32")
    throw emo::Failure("precision '" + precision + "': use fp32 (the default), bf16 or fp16");
  return "";
}

// The config's device, precision and threads over `options` (a choice file's, or the
// defaults), checked.
emo::Options checked_options(const EmoRecognizerConfig& given, emo::Options options) {
  if (given.device != nullptr) options.device = given.device;
  if (given.precision != nullptr) options.precision = run_precision(given.precision);
  if (given.threads < 0 || given.threads > 1024)
    throw emo::Failure("threads " + std::to_string(given.threads) +
                       ": use 1 to 1024, or 0 for the runtime's default");
  if (given.threads != 0) options.threads = given.threads;
  return options;
}

// Whether `path` names emo-bench's choice file rather than an artifact (as Python's
// is_choice_file: a .json file).
bool is_choice_file(const std::string& path) {
  return path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0;
}

using emo::Failure;

// emo-bench's choice file (toolkit/runtime/choice.py): the model (relative to the file's
// folder unless absolute), device, precision and threads. The runtime it names is the
// Python one; here the backend follows the file (an .onnx runs on OpenVINO).
void read_choice(const std::string& path, std::string* model, std::string* device,
                 std::string* precision, int32_t* threads) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure(path + ": no such choice file, or it cannot be read");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  emo::Json doc;
  try {
    doc = emo::parse_json(text);
  } catch (const emo::JsonError& e) {
    throw Failure(path + ": not JSON (" + emo::first_line(e.what()) + ")");
  }
  const emo::Json* kind = doc.find("kind");
  if (kind == nullptr || kind->type != emo::Json::Type::String ||
      kind->string != "emo-bench choice")
    throw Failure(path + ": not an emo-bench choice file (no \"kind\": \"emo-bench choice\")");
  const emo::Json* schema = doc.find("schema");
  if (schema == nullptr || schema->type != emo::Json::Type::Number || schema->number != 1)
    throw Failure(path + ": choice schema is not 1");
  const auto text_field = [&](const char* name, bool required) -> std::string {
    const emo::Json* field = doc.find(name);
    if (field != nullptr && field->type == emo::Json::Type::String) return field->string;
    if (field == nullptr || field->type == emo::Json::Type::Null) {
      if (!required) return "";
    }
    throw Failure(path + ": field '" + name + "' is missing or not a string");
  };
  *model = text_field("model", true);
  if (!model->empty() && (*model)[0] != '/') {
    const size_t slash = path.rfind('/');
    *model = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/" +
             *model;
  }
  *device = text_field("device", true);
  *precision = text_field("precision", false);
  const emo::Json* count = doc.find("threads");
  if (count != nullptr && count->type == emo::Json::Type::Number && count->integer &&
      count->number >= 1 && count->number <= 1024)
    *threads = static_cast<int32_t>(count->number);
  else if (count != nullptr && count->type != emo::Json::Type::Null)
    throw Failure(path + ": field 'threads' is not a whole number from 1 to 1024");
}

// The Python runtime's sample rule (toolkit/runtime/audio.py check_samples), with its
// messages: `offset` numbers the frames of a block within its recording.
void check_samples(const float* samples, int64_t count, int64_t offset) {
  int64_t bad = 0, first_bad = -1, first_loud = -1;
  float peak = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    const float x = samples[i];
    if (!std::isfinite(x)) {
      if (bad++ == 0) first_bad = i;
    } else if (std::fabs(x) > peak) {
      peak = std::fabs(x);
    }
    if (first_loud < 0 && std::isfinite(x) && std::fabs(x) > emo::kMaxAbsSample) first_loud = i;
  }
  if (bad)
    throw Failure(std::to_string(bad) + " sample(s) are NaN or infinite (first at frame " +
                  std::to_string(offset + first_bad) + ")", EMO_REASON_NON_FINITE);
  if (first_loud >= 0) {
    char text[160];
    std::snprintf(text, sizeof text, "sample magnitude %.3g at frame %lld is beyond the "
                  "accepted %g (full scale is 1.0)", static_cast<double>(peak),
                  static_cast<long long>(offset + first_loud),
                  static_cast<double>(emo::kMaxAbsSample));
    throw Failure(text, EMO_REASON_OUT_OF_RANGE);
  }
}

void check_rate(int32_t sample_rate) {
  if (sample_rate < emo::kMinRate || sample_rate > emo::kMaxRate)
    throw Failure("sample rate " + std::to_string(sample_rate) + " Hz is outside the "
                  "supported " + std::to_string(emo::kMinRate) + "-" +
                  std::to_string(emo::kMaxRate) + " Hz", EMO_REASON_UNSUPPORTED_RATE);
}

void check_min_samples(const emo::Metadata& meta, int64_t count) {
  if (count == 0) throw Failure("no audio samples", EMO_REASON_ZERO_LENGTH);
  if (count < meta.min_samples) {
    char text[200];
    std::snprintf(text, sizeof text, "%lld samples at %d Hz (%.1f ms); the extractor needs "
                  "at least %d (%.0f ms)", static_cast<long long>(count), meta.sample_rate,
                  1000.0 * static_cast<double>(count) / meta.sample_rate, meta.min_samples,
                  1000.0 * meta.min_samples / meta.sample_rate);
    throw Failure(text, EMO_REASON_TOO_SHORT);
  }
}

// "S s is longer than the L s", S with the digits that show it (toolkit/runtime/audio.py).
std::string too_long(double seconds, double limit) {
  int digits = 1;
  const auto rounded = [&](int d) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", d, seconds);
    return std::strtod(text, nullptr);
  };
  while (rounded(digits) <= limit && digits < 6) ++digits;
  char text[160];
  std::snprintf(text, sizeof text, "%.*f s is longer than the %g s", digits, seconds, limit);
  return text;
}

std::vector<double> softmax(const std::vector<float>& logits) {
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t k = 0; k < p.size(); ++k) sum += (p[k] = std::exp(logits[k] - top));
  for (double& x : p) x /= sum;
  return p;
}

int32_t argmax(const std::vector<double>& values) {
  return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

// Runs `body` for a C function: a Failure, or any other exception (then "inference
// failed"), becomes *error with its reason and `failed` is returned, so no exception
// crosses the C boundary.
template <typename T, typename Body>
T guarded(char** error, T failed, Body body) {
  try {
    return body();
  } catch (const Failure& e) {
    set_error(error, e.what(), e.reason());
  } catch (const std::exception& e) {
    set_error(error, std::string("inference failed: ") + emo::first_line(e.what()),
              EMO_REASON_INFERENCE_FAILED);
  }
  return failed;
}

// `guarded` for a Create function: its argument checks' exceptions are bad arguments.
template <typename T, typename Body>
T* created(char** error, Body body) {
  try {
    return body();
  } catch (const Failure& e) {
    set_error(error, e.what(), e.reason());
  } catch (const std::exception& e) {
    set_error(error, emo::first_line(e.what()), EMO_REASON_BAD_ARGUMENT);
  }
  return nullptr;
}

}  // namespace

struct EmoRecognizer {
  std::string backend;  // "torchscript", "aoti", "openvino" or "executorch"
  std::unique_ptr<emo::Backend> impl;
  std::string precision;  // what computes: read back once, when created
  std::mutex mutex;
};

namespace {

// The length rule every clip meets before the backend sees it.
void check_clip_length(const emo::Metadata& meta, int64_t count) {
  check_min_samples(meta, count);
  if (meta.max_samples > 0 && count > meta.max_samples)
    throw Failure("the clip has " + std::to_string(count) + " samples; this artifact takes "
                  "at most " + std::to_string(meta.max_samples) + " (classify it as a "
                  "recording, which cuts it into segments)", EMO_REASON_TOO_LONG);
}

// What every clip's logits are checked for after the backend.
std::vector<float> checked_logits(const emo::Metadata& meta, std::vector<float> logits) {
  if (logits.size() != meta.labels.size())
    throw Failure("the artifact returned " + std::to_string(logits.size()) + " scores for " +
                  std::to_string(meta.labels.size()) + " labels", EMO_REASON_INFERENCE_FAILED);
  for (float z : logits)
    if (!std::isfinite(z))
      throw Failure("the model's outputs for this clip are NaN or infinite",
                    EMO_REASON_NON_FINITE_OUTPUT);
  return logits;
}

// One clip at the model's rate, through the backend: the logits, checked.
std::vector<float> logits_of(EmoRecognizer& recognizer, const float* samples, int64_t count) {
  const emo::Metadata& meta = recognizer.impl->metadata();
  check_clip_length(meta, count);
  std::vector<float> logits;
  try {
    std::lock_guard<std::mutex> lock(recognizer.mutex);
    logits = recognizer.impl->logits(samples, count);
  } catch (const std::exception& e) {
    throw Failure(std::string("inference failed: ") + emo::first_line(e.what()),
                  EMO_REASON_INFERENCE_FAILED);
  }
  return checked_logits(meta, std::move(logits));
}

// Clips of one length in one backend call, each row's logits checked; after a failed call
// each clip alone, so one bad clip fails only itself: `on_failure(row, error)` hears it
// (toolkit/runtime/recognizer.py logits_or_failures).
template <typename OnFailure>
std::vector<std::vector<float>> logits_of_rows(EmoRecognizer& recognizer,
                                               const std::vector<const float*>& rows,
                                               int64_t count, OnFailure on_failure) {
  const emo::Metadata& meta = recognizer.impl->metadata();
  check_clip_length(meta, count);
  if (rows.size() > 1) {
    try {
      std::vector<std::vector<float>> out;
      {
        std::lock_guard<std::mutex> lock(recognizer.mutex);
        out = recognizer.impl->logits_batch(rows, count);
      }
      if (out.size() != rows.size()) throw Failure("a batch lost rows", EMO_REASON_INFERENCE_FAILED);
      for (auto& row : out) row = checked_logits(meta, std::move(row));
      return out;
    } catch (const std::exception&) {  // retried row by row below
    }
  }
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    try {
      out.push_back(logits_of(recognizer, rows[i], count));
    } catch (const Failure& e) {
      on_failure(i, e);
    }
  }
  return out;
}

// A window in seconds (0: the artifact's default) as samples at the model's rate, at most
// what the artifact takes (toolkit/runtime/recognizer.py window_samples).
int64_t window_samples(const EmoRecognizer& recognizer, double window_s) {
  const emo::Metadata& meta = recognizer.impl->metadata();
  if (window_s == 0.0) {
    window_s = meta.default_window_s;
  } else if (!(window_s > 0.0 && window_s <= kMaxClipSeconds)) {
    throw Failure("window must be more than 0 and at most " + number(kMaxClipSeconds) +
                  " seconds (0: the default)",
                  EMO_REASON_BAD_ARGUMENT);
  }
  int64_t window = std::llround(std::nearbyint(window_s * meta.sample_rate));
  if (meta.max_samples > 0) window = std::min(window, meta.max_samples);
  return window;
}

// A clip given at any supported rate, checked and resampled as Recognizer.predict does.
std::vector<float> clip_at_model_rate(EmoRecognizer& recognizer, const float* samples,
                                      int64_t count, int32_t sample_rate) {
  if (samples == nullptr && count != 0) throw Failure("samples is NULL", EMO_REASON_BAD_ARGUMENT);
  if (count < 0) throw Failure("count is negative", EMO_REASON_BAD_ARGUMENT);
  check_rate(sample_rate);
  if (static_cast<double>(count) > kMaxClipSeconds * sample_rate)
    throw Failure(too_long(static_cast<double>(count) / sample_rate, kMaxClipSeconds) +
                  " one clip may be; classify it as a recording, which cuts it into "
                  "segments", EMO_REASON_TOO_LONG);
  check_samples(samples, count, 0);
  std::vector<float> clip;
  emo::StreamResampler resampler(sample_rate, recognizer.impl->metadata().sample_rate);
  resampler.push(samples, count, &clip);
  resampler.flush(&clip);
  return clip;
}

}  // namespace

// A recording being fed: resampled to the model's rate, cut at pauses, each segment
// classified as it is completed (toolkit/runtime/recognizer.py predict_recording).
struct EmoRecordingJob {
  struct Part {
    int64_t start, end;               // samples at the model's rate
    std::vector<double> probabilities;
  };

  EmoRecordingJob(EmoRecognizer& r, int32_t rate, int64_t window)
      : recognizer(r), resampler(rate, r.impl->metadata().sample_rate),
        segmenter(r.impl->metadata().sample_rate, window, r.impl->metadata().min_samples) {}

  // The segments that the samples in `resampled` complete, classified.
  void segment_resampled() {
    classify(segmenter.push(resampled.data(), static_cast<int64_t>(resampled.size())));
  }

  void classify(const std::vector<emo::Segment>& segments) {
    for (const auto& segment : segments) {
      const int64_t length = segment.end - segment.start;
      const std::vector<float> logits = logits_of(recognizer, segment.samples.data(), length);
      parts.push_back({segment.start, segment.end, softmax(logits)});
    }
  }

  EmoRecognizer& recognizer;
  emo::StreamResampler resampler;
  emo::Segmenter segmenter;
  std::vector<float> resampled;  // reused between pushes
  int64_t received = 0;          // input samples so far, for frame numbers in errors
  std::vector<Part> parts;
  bool failed = false, finished = false;
};

// A window of a stream ready to classify: [start, end) samples at the model's rate; `last`:
// the window after the input finished.
struct PendingWindow {
  int64_t start, end;
  bool last;
};

constexpr size_t kDecodeBatch = EMO_WINDOWS_DECODE_BATCH;  // windows in one backend call

// A live stream: resampled to the model's rate, classified in fixed windows of `window`
// samples every `hop` (toolkit/runtime/stream.py Stream, the same windows and numbers).
struct EmoStream {
  EmoStream(EmoRecognizer& r, int32_t rate, int64_t window_samples, int64_t hop_samples,
            double smoothing)
      : recognizer(r), resampler(rate, r.impl->metadata().sample_rate),
        window(window_samples), hop(hop_samples), alpha(smoothing) {}

  // Grid windows complete and not yet classified or skipped.
  int64_t grid_ready() const {
    const int64_t complete = received >= window ? (received - window) / hop + 1 : 0;
    return std::max<int64_t>(0, complete - next_window);
  }

  // After the input ended: the last `window` samples, when samples after the last window
  // remain (Stream.flush).
  bool tail_ready() const {
    return finished && !tail_done && grid_ready() == 0 && received > last_end &&
           received >= recognizer.impl->metadata().min_samples;
  }

  const float* clip(const PendingWindow& w) const {
    return buffer.data() + (w.start - buffer_start);
  }

  void append(const std::vector<float>& samples) {
    buffer.insert(buffer.end(), samples.begin(), samples.end());
    received += static_cast<int64_t>(samples.size());
  }

  // Samples before `position` are no longer needed, but the last window's always are.
  void drop_before(int64_t position) {
    position = std::min(position, received - window);
    if (position <= buffer_start) return;
    const int64_t cut = std::min<int64_t>(position - buffer_start,
                                          static_cast<int64_t>(buffer.size()));
    buffer.erase(buffer.begin(), buffer.begin() + cut);
    buffer_start += cut;
  }

  EmoRecognizer& recognizer;
  emo::StreamResampler resampler;
  int64_t window, hop;
  double alpha;                  // smoothing weight of the newest window; 0: none
  std::vector<float> buffer;     // model-rate samples from buffer_start on
  std::vector<float> resampled;  // reused between pushes
  std::vector<double> smoothed;
  int64_t buffer_start = 0, received = 0, next_window = 0, last_end = 0, frames = 0;
  int64_t skipped = 0;
  bool finished = false, tail_done = false;
};

namespace {

// The segments' results as the C struct: the duration-weighted mean and its top label,
// as toolkit/runtime/predictions.py RecordingPrediction.from_segments computes them.
EmoRecording* recording_result(const EmoRecordingJob& job) {
  const double rate = job.recognizer.impl->metadata().sample_rate;
  const size_t n = job.recognizer.impl->metadata().labels.size(), count = job.parts.size();
  auto* result = static_cast<EmoRecording*>(std::calloc(1, sizeof(EmoRecording)));
  auto* segments = static_cast<EmoSegment*>(std::calloc(count, sizeof(EmoSegment)));
  auto* values = static_cast<double*>(std::calloc((count + 1) * n, sizeof(double)));
  if (result == nullptr || segments == nullptr || values == nullptr) {
    std::free(result);
    std::free(segments);
    std::free(values);
    throw Failure("out of memory", EMO_REASON_INFERENCE_FAILED);
  }
  std::vector<double> mean(n, 0.0);
  double total = 0.0;
  for (size_t s = 0; s < count; ++s) {
    const auto& part = job.parts[s];
    EmoSegment& out = segments[s];
    out.start = static_cast<double>(part.start) / rate;
    out.end = static_cast<double>(part.end) / rate;
    double* p = values + (s + 1) * n;
    std::copy(part.probabilities.begin(), part.probabilities.end(), p);
    out.probabilities = p;
    out.label = argmax(part.probabilities);
    const double weight = out.end - out.start;
    total += weight;
    for (size_t k = 0; k < n; ++k) mean[k] += weight * part.probabilities[k];
  }
  for (size_t k = 0; k < n; ++k) values[k] = mean[k] / total;
  result->label = argmax(std::vector<double>(values, values + n));
  result->num_labels = static_cast<int32_t>(n);
  result->probabilities = values;
  result->duration = segments[count - 1].end;
  result->num_segments = static_cast<int32_t>(count);
  result->segments = segments;
  result->precision = job.recognizer.precision.c_str();
  return result;
}


// The oldest ready window of a stream, not yet taken; end < 0 when none is ready.
PendingWindow pending_window(const EmoStream& stream) {
  if (stream.grid_ready() > 0) {
    const int64_t start = stream.next_window * stream.hop;
    return {start, start + stream.window, false};
  }
  if (stream.tail_ready())
    return {std::max<int64_t>(0, stream.received - stream.window), stream.received, true};
  return {0, -1, false};
}

// A window result's memory, allocated before any stream changes; released unless taken.
struct WindowResult {
  explicit WindowResult(size_t n)
      : result(static_cast<EmoWindowResult*>(std::calloc(1, sizeof(EmoWindowResult)))),
        values(static_cast<double*>(std::calloc(2 * n, sizeof(double)))),
        raw(static_cast<float*>(std::calloc(n, sizeof(float)))) {
    if (result == nullptr || values == nullptr || raw == nullptr) {
      release();
      throw Failure("out of memory", EMO_REASON_INFERENCE_FAILED);
    }
  }
  WindowResult(WindowResult&& other) noexcept
      : result(other.result), values(other.values), raw(other.raw) {
    other.result = nullptr;
    other.values = nullptr;
    other.raw = nullptr;
  }
  WindowResult(const WindowResult&) = delete;
  ~WindowResult() { release(); }
  void release() {
    std::free(result);
    std::free(values);
    std::free(raw);
    result = nullptr;
    values = nullptr;
    raw = nullptr;
  }
  EmoWindowResult* result;
  double* values;
  float* raw;
};

// Takes a stream's oldest pending window with its logits (Stream.finish in Python): the
// smoothing, the result, and the samples no later window needs dropped.
EmoWindowResult* finish_window(EmoStream& stream, const PendingWindow& w,
                               const std::vector<float>& logits, WindowResult& memory) {
  const std::vector<double> probabilities = softmax(logits);
  const size_t n = logits.size();
  const bool smooth = stream.alpha > 0.0;
  if (smooth) {
    if (stream.smoothed.empty()) stream.smoothed = probabilities;
    else
      for (size_t k = 0; k < n; ++k)
        stream.smoothed[k] = stream.alpha * probabilities[k] +
                             (1 - stream.alpha) * stream.smoothed[k];
  }
  EmoWindowResult* result = memory.result;
  std::copy(probabilities.begin(), probabilities.end(), memory.values);
  std::copy(logits.begin(), logits.end(), memory.raw);
  const double rate = stream.recognizer.impl->metadata().sample_rate;
  result->index = stream.next_window++;
  result->start = static_cast<double>(w.start) / rate;
  result->end = static_cast<double>(w.end) / rate;
  result->label = argmax(probabilities);
  result->num_labels = static_cast<int32_t>(n);
  result->probabilities = memory.values;
  result->logits = memory.raw;
  result->smoothed_label = -1;
  if (smooth) {
    std::copy(stream.smoothed.begin(), stream.smoothed.end(), memory.values + n);
    result->smoothed = memory.values + n;
    result->smoothed_label = argmax(stream.smoothed);
  }
  result->precision = stream.recognizer.precision.c_str();
  stream.last_end = w.end;
  if (w.last) stream.tail_done = true;
  stream.drop_before(stream.next_window * stream.hop);
  memory.result = nullptr;  // the caller's now
  memory.values = nullptr;
  memory.raw = nullptr;
  return result;
}

}  // namespace

extern "C" {

const char* EmoVersion(void) { return EMO_TOOLKIT_VERSION; }

EmoRecognizer* EmoRecognizerCreate(const EmoRecognizerConfig* config, char** error) {
  if (config == nullptr || config->model == nullptr) {
    set_error(error, "config or config->model is NULL", EMO_REASON_BAD_ARGUMENT);
    return nullptr;
  }
  std::string path(config->model);
  try {
    emo::Options options;
    if (is_choice_file(path)) {  // its model, device, precision and threads; config overrides
      std::string precision;
      read_choice(config->model, &path, &options.device, &precision, &options.threads);
      if (!precision.empty()) options.precision = run_precision(precision);
    }
    options = checked_options(*config, options);
    require_regular_file(path);
    const emo::BackendEntry& entry = emo::backend_for(path);
    auto recognizer = std::make_unique<EmoRecognizer>();
    recognizer->impl = entry.open(path, options, &recognizer->backend);
    recognizer->precision = recognizer->impl->precision();
    return recognizer.release();
  } catch (const emo::Failure& e) {
    set_error(error, e.what(), e.reason());
  } catch (const std::exception& e) {
    set_error(error, path + ": " + emo::first_line(e.what()));
  }
  return nullptr;
}

void EmoRecognizerDestroy(EmoRecognizer* recognizer) { delete recognizer; }

int32_t EmoRecognizerNumLabels(const EmoRecognizer* recognizer) {
  return recognizer ? static_cast<int32_t>(recognizer->impl->metadata().labels.size()) : -1;
}

const char* EmoRecognizerLabel(const EmoRecognizer* recognizer, int32_t index) {
  if (recognizer == nullptr) return nullptr;
  const auto& labels = recognizer->impl->metadata().labels;
  if (index < 0 || index >= static_cast<int32_t>(labels.size())) return nullptr;
  return labels[static_cast<size_t>(index)].c_str();
}

int32_t EmoRecognizerSampleRate(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->impl->metadata().sample_rate : -1;
}

int32_t EmoRecognizerMinSamples(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->impl->metadata().min_samples : -1;
}

int64_t EmoRecognizerMaxSamples(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->impl->metadata().max_samples : -1;
}

const char* EmoRecognizerPrecision(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->precision.c_str() : nullptr;
}

const char* EmoRecognizerExportedPrecision(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->impl->metadata().precision.c_str() : nullptr;
}

int32_t EmoRecognizerUntrained(const EmoRecognizer* recognizer) {
  return recognizer ? (recognizer->impl->metadata().untrained ? 1 : 0) : -1;
}

const char* EmoRecognizerBackend(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->backend.c_str() : nullptr;
}

const char* EmoRecognizerMetadataJson(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->impl->metadata().json.c_str() : nullptr;
}

EmoResult* EmoClassify(EmoRecognizer* recognizer, const float* samples, int64_t count,
                       int32_t sample_rate, char** error) {
  return guarded(error, static_cast<EmoResult*>(nullptr), [&] {
    if (recognizer == nullptr) throw emo::Failure("recognizer is NULL", EMO_REASON_BAD_ARGUMENT);
    const std::vector<float> clip = clip_at_model_rate(*recognizer, samples, count, sample_rate);
    const std::vector<float> logits = logits_of(*recognizer, clip.data(),
                                                static_cast<int64_t>(clip.size()));
    const std::vector<double> probabilities = softmax(logits);
    const size_t n = logits.size();
    auto* result = static_cast<EmoResult*>(std::calloc(1, sizeof(EmoResult)));
    auto* values = static_cast<double*>(std::malloc(n * sizeof(double)));
    auto* raw = static_cast<float*>(std::malloc(n * sizeof(float)));
    if (result == nullptr || values == nullptr || raw == nullptr) {
      std::free(result);
      std::free(values);
      std::free(raw);
      throw emo::Failure("out of memory", EMO_REASON_INFERENCE_FAILED);
    }
    std::copy(probabilities.begin(), probabilities.end(), values);
    std::copy(logits.begin(), logits.end(), raw);
    result->num_labels = static_cast<int32_t>(n);
    result->precision = recognizer->precision.c_str();
    result->probabilities = values;
    result->logits = raw;
    result->label = argmax(probabilities);
    return result;
  });
}

EmoRecordingJob* EmoRecordingJobCreate(EmoRecognizer* recognizer, int32_t sample_rate,
                                       double window_s, char** error) {
  return created<EmoRecordingJob>(error, [&] {
    if (recognizer == nullptr) throw Failure("recognizer is NULL", EMO_REASON_BAD_ARGUMENT);
    check_rate(sample_rate);
    const int64_t window = window_samples(*recognizer, window_s);
    const emo::Metadata& meta = recognizer->impl->metadata();
    if (window < 4 * static_cast<int64_t>(meta.min_samples))
      throw Failure("a window of " + std::to_string(window) + " samples is too short for "
                    "segments of at least " + std::to_string(meta.min_samples), EMO_REASON_BAD_ARGUMENT);
    return new EmoRecordingJob(*recognizer, sample_rate, window);
  });
}

int32_t EmoRecordingJobAcceptWaveform(EmoRecordingJob* job, const float* samples,
                                      int64_t count, char** error) {
  return guarded(error, int32_t{-1}, [&] {
    if (job == nullptr) throw Failure("job is NULL", EMO_REASON_BAD_ARGUMENT);
    if (job->failed) throw Failure("this recording already failed", EMO_REASON_BAD_ARGUMENT);
    if (job->finished)
      throw Failure("the recording's input has finished", EMO_REASON_BAD_ARGUMENT);
    if (count < 0 || (samples == nullptr && count != 0))
      throw Failure("samples is NULL or count negative", EMO_REASON_BAD_ARGUMENT);
    try {
      check_samples(samples, count, job->received);
      job->received += count;
      job->resampled.clear();
      job->resampler.push(samples, count, &job->resampled);
      job->segment_resampled();
    } catch (...) {
      job->failed = true;
      throw;
    }
    return int32_t{0};
  });
}

int32_t EmoRecordingJobInputFinished(EmoRecordingJob* job, char** error) {
  return guarded(error, int32_t{-1}, [&] {
    if (job == nullptr) throw Failure("job is NULL", EMO_REASON_BAD_ARGUMENT);
    if (job->failed) throw Failure("this recording already failed", EMO_REASON_BAD_ARGUMENT);
    if (job->finished) return int32_t{0};
    try {
      job->resampled.clear();
      job->resampler.flush(&job->resampled);
      job->segment_resampled();
      job->classify(job->segmenter.finish());
    } catch (...) {
      job->failed = true;
      throw;
    }
    job->finished = true;
    return int32_t{0};
  });
}

EmoRecording* EmoRecordingJobResult(const EmoRecordingJob* job, char** error) {
  return guarded(error, static_cast<EmoRecording*>(nullptr), [&] {
    if (job == nullptr) throw Failure("job is NULL", EMO_REASON_BAD_ARGUMENT);
    if (job->failed) throw Failure("this recording already failed", EMO_REASON_BAD_ARGUMENT);
    if (!job->finished)
      throw Failure("the recording's input has not finished (EmoRecordingJobInputFinished)",
                    EMO_REASON_BAD_ARGUMENT);
    if (job->parts.empty()) throw Failure("no audio samples", EMO_REASON_ZERO_LENGTH);
    return recording_result(*job);
  });
}

void EmoRecordingJobDestroy(EmoRecordingJob* job) { delete job; }

EmoRecording* EmoClassifyRecording(EmoRecognizer* recognizer, const float* samples,
                                   int64_t count, int32_t sample_rate, double window_s,
                                   char** error) {
  std::unique_ptr<EmoRecordingJob> job(
      EmoRecordingJobCreate(recognizer, sample_rate, window_s, error));
  if (job == nullptr || EmoRecordingJobAcceptWaveform(job.get(), samples, count, error) != 0 ||
      EmoRecordingJobInputFinished(job.get(), error) != 0)
    return nullptr;
  return EmoRecordingJobResult(job.get(), error);
}

void EmoRecordingDestroy(EmoRecording* recording) {
  if (recording == nullptr) return;
  std::free(const_cast<double*>(recording->probabilities));  // the segments' share it
  std::free(const_cast<EmoSegment*>(recording->segments));
  std::free(recording);
}

EmoStream* EmoStreamCreate(EmoRecognizer* recognizer, int32_t sample_rate,
                           const EmoStreamOptions* options, char** error) {
  return created<EmoStream>(error, [&] {
    if (recognizer == nullptr) throw Failure("recognizer is NULL", EMO_REASON_BAD_ARGUMENT);
    check_rate(sample_rate);
    const EmoStreamOptions given = options ? *options : EmoStreamOptions{};
    const int64_t window = window_samples(*recognizer, given.window_s);
    const double rate = recognizer->impl->metadata().sample_rate;
    if (window < recognizer->impl->metadata().min_samples)
      throw Failure("a window of " + std::to_string(window) + " samples is shorter than the "
                    "model's shortest input", EMO_REASON_BAD_ARGUMENT);
    int64_t hop = std::max<int64_t>(
        1, std::llround(std::nearbyint(window * EMO_WINDOWS_HOP_FRACTION)));
    if (given.hop_s != 0.0) {
      if (!(given.hop_s > 0.0 && given.hop_s <= window / rate))
        throw Failure("hop must be more than 0 and at most the window (0: half the window)",
                      EMO_REASON_BAD_ARGUMENT);
      hop = std::max<int64_t>(1, std::llround(std::nearbyint(given.hop_s * rate)));
    }
    if (!(given.smoothing >= 0.0 && given.smoothing <= 1.0))
      throw Failure("smoothing must be from 0 (none) to 1", EMO_REASON_BAD_ARGUMENT);
    return new EmoStream(*recognizer, sample_rate, window, hop, given.smoothing);
  });
}

int32_t EmoStreamAcceptWaveform(EmoStream* stream, const float* samples, int64_t count,
                                char** error) {
  return guarded(error, int32_t{-1}, [&] {
    if (stream == nullptr) throw Failure("stream is NULL", EMO_REASON_BAD_ARGUMENT);
    if (stream->finished) throw Failure("the stream's input has finished", EMO_REASON_BAD_ARGUMENT);
    if (count < 0 || (samples == nullptr && count != 0))
      throw Failure("samples is NULL or count negative", EMO_REASON_BAD_ARGUMENT);
    check_samples(samples, count, stream->frames);  // a bad block is not taken
    stream->frames += count;
    stream->resampled.clear();
    stream->resampler.push(samples, count, &stream->resampled);
    stream->append(stream->resampled);
    return int32_t{0};
  });
}

void EmoStreamInputFinished(EmoStream* stream) {
  if (stream == nullptr || stream->finished) return;
  stream->resampled.clear();
  stream->resampler.flush(&stream->resampled);
  stream->append(stream->resampled);
  stream->finished = true;
}

int32_t EmoStreamNumReady(const EmoStream* stream) {
  if (stream == nullptr) return -1;
  return static_cast<int32_t>(std::min<int64_t>(INT32_MAX, stream->grid_ready() +
                                                               (stream->tail_ready() ? 1 : 0)));
}

EmoWindowResult* EmoStreamDecode(EmoStream* stream, char** error) {
  return guarded(error, static_cast<EmoWindowResult*>(nullptr), [&] {
    if (stream == nullptr) throw Failure("stream is NULL", EMO_REASON_BAD_ARGUMENT);
    const PendingWindow w = pending_window(*stream);
    if (w.end < 0) throw Failure("no window is ready (EmoStreamNumReady is 0)", EMO_REASON_BAD_ARGUMENT);
    const std::vector<float> logits = logits_of(stream->recognizer, stream->clip(w), w.end - w.start);
    WindowResult result(logits.size());
    return finish_window(*stream, w, logits, result);
  });
}

int32_t EmoRecognizerDecodeStreams(EmoRecognizer* recognizer, EmoStream* const* streams,
                                   int32_t count, EmoWindowResult** results, char** error) {
  if (results != nullptr)
    for (int32_t i = 0; i < count; ++i) results[i] = nullptr;
  return guarded(error, int32_t{-1}, [&] {
    if (recognizer == nullptr || count < 0 || (count > 0 && (streams == nullptr ||
                                                             results == nullptr)))
      throw Failure("recognizer, streams or results is NULL, or count is negative",
                    EMO_REASON_BAD_ARGUMENT);
    std::vector<PendingWindow> pending;
    std::vector<int32_t> owner;
    for (int32_t i = 0; i < count; ++i) {
      const EmoStream* s = streams[i];
      if (s == nullptr) throw Failure("stream " + std::to_string(i) + " is NULL", EMO_REASON_BAD_ARGUMENT);
      if (&s->recognizer != recognizer)
        throw Failure("stream " + std::to_string(i) + " belongs to another recognizer",
                      EMO_REASON_BAD_ARGUMENT);
      for (int32_t j = 0; j < i; ++j)
        if (streams[j] == s)
          throw Failure("stream " + std::to_string(i) + " is given twice", EMO_REASON_BAD_ARGUMENT);
      const PendingWindow w = pending_window(*s);
      if (w.end >= 0) {
        pending.push_back(w);
        owner.push_back(i);
      }
    }
    // windows of one length share calls of up to kDecodeBatch; nothing changes until all ran
    std::vector<std::vector<float>> logits(pending.size());
    std::vector<size_t> order(pending.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return pending[a].end - pending[a].start > pending[b].end - pending[b].start;
    });
    for (size_t first = 0; first < order.size();) {
      const int64_t length = pending[order[first]].end - pending[order[first]].start;
      size_t last = first;
      while (last < order.size() && last - first < kDecodeBatch &&
             pending[order[last]].end - pending[order[last]].start == length)
        ++last;
      std::vector<const float*> rows;
      for (size_t k = first; k < last; ++k)
        rows.push_back(streams[owner[order[k]]]->clip(pending[order[k]]));
      auto out = logits_of_rows(*recognizer, rows, length, [&](size_t row, const Failure& e) {
        throw Failure("stream " + std::to_string(owner[order[first + row]]) + ": " + e.what(),
                      e.reason());
      });
      for (size_t k = first; k < last; ++k) logits[order[k]] = std::move(out[k - first]);
      first = last;
    }
    std::vector<WindowResult> made;  // every allocation before any stream changes
    for (const auto& z : logits) made.emplace_back(z.size());
    for (size_t k = 0; k < pending.size(); ++k)
      results[owner[k]] = finish_window(*streams[owner[k]], pending[k], logits[k], made[k]);
    return static_cast<int32_t>(pending.size());
  });
}

int64_t EmoStreamSkip(EmoStream* stream, int32_t keep) {
  if (stream == nullptr || keep < 0) return -1;
  const int64_t drop = std::max<int64_t>(0, stream->grid_ready() - keep);
  stream->next_window += drop;
  stream->skipped += drop;
  stream->drop_before(stream->next_window * stream->hop);
  return drop;
}

double EmoStreamWindow(const EmoStream* stream) {
  return stream ? static_cast<double>(stream->window) /
                      stream->recognizer.impl->metadata().sample_rate : -1.0;
}

double EmoStreamHop(const EmoStream* stream) {
  return stream ? static_cast<double>(stream->hop) /
                      stream->recognizer.impl->metadata().sample_rate : -1.0;
}

void EmoStreamDestroy(EmoStream* stream) { delete stream; }

void EmoWindowResultDestroy(EmoWindowResult* result) {
  if (result == nullptr) return;
  std::free(const_cast<double*>(result->probabilities));  // smoothed shares it
  std::free(const_cast<float*>(result->logits));
  std::free(result);
}

double EmoRecognizerDefaultWindow(const EmoRecognizer* recognizer) {
  if (recognizer == nullptr) return -1.0;
  const emo::Metadata& meta = recognizer->impl->metadata();
  return static_cast<double>(window_samples(*recognizer, 0.0)) / meta.sample_rate;
}

const char* EmoLastErrorReason(void) { return last_reason; }

void EmoResultDestroy(EmoResult* result) {
  if (result == nullptr) return;
  std::free(const_cast<double*>(result->probabilities));
  std::free(const_cast<float*>(result->logits));
  std::free(result);
}

void EmoFreeString(char* s) { std::free(s); }

}  // extern "C"
