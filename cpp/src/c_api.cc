// The C API: argument checks, results and errors, over the backends of backend.h.
#include "emo_toolkit/c_api.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backend.h"

#ifndef EMO_TOOLKIT_VERSION
#define EMO_TOOLKIT_VERSION "0.0.0"
#endif

namespace {

void set_error(char** error, const std::string& message) {
  if (error == nullptr) return;
  *error = static_cast<char*>(std::malloc(message.size() + 1));
  if (*error != nullptr) std::memcpy(*error, message.c_str(), message.size() + 1);
}

bool ends_with(const std::string& text, const std::string& end) {
  return text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0;
}

// The backend whose longest suffix matches the file name.
const emo::BackendEntry& backend_for(const std::string& path) {
  const emo::BackendEntry* best = nullptr;
  size_t best_length = 0;
  std::string built;
  for (const auto& entry : emo::available_backends()) {
    built += std::string(built.empty() ? "" : ", ") + entry.name + " (";
    for (size_t i = 0; i < entry.suffixes.size(); ++i) {
      const std::string& suffix = entry.suffixes[i];
      built += (i ? " " : "") + suffix;
      if (ends_with(path, suffix) && suffix.size() > best_length) {
        best = &entry;
        best_length = suffix.size();
      }
    }
    built += ")";
  }
  if (best == nullptr)
    throw emo::Failure(path + ": no backend of this build runs it; this build has " + built +
                       ". .onnx needs the OpenVINO backend, .torchscript.pt and .pt2 libtorch: "
                       "rebuild with them installed");
  return *best;
}

}  // namespace

struct EmoRecognizer {
  std::string backend;  // "torchscript", "aoti" or "openvino"
  std::unique_ptr<emo::Backend> impl;
  std::mutex mutex;
};

extern "C" {

const char* EmoVersion(void) { return EMO_TOOLKIT_VERSION; }

EmoRecognizer* EmoRecognizerCreate(const char* artifact_path, const char* device,
                                   char** error) {
  if (artifact_path == nullptr) {
    set_error(error, "artifact path is NULL");
    return nullptr;
  }
  const std::string path(artifact_path);
  try {
    if (!std::ifstream(path, std::ios::binary).good())
      throw emo::Failure(path + ": no such file, or it cannot be read");
    const emo::BackendEntry& entry = backend_for(path);
    auto recognizer = std::make_unique<EmoRecognizer>();
    recognizer->impl = entry.open(path, device ? device : "cpu", &recognizer->backend);
    return recognizer.release();
  } catch (const emo::Failure& e) {
    set_error(error, e.what());
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

const char* EmoRecognizerBackend(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->backend.c_str() : nullptr;
}

const char* EmoRecognizerMetadataJson(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->impl->metadata().json.c_str() : nullptr;
}

EmoResult* EmoClassify(EmoRecognizer* recognizer, const float* samples, int64_t count,
                       int32_t sample_rate, char** error) {
  if (recognizer == nullptr) {
    set_error(error, "recognizer is NULL");
    return nullptr;
  }
  const emo::Metadata& meta = recognizer->impl->metadata();
  if (sample_rate != meta.sample_rate) {
    set_error(error, "the clip is at " + std::to_string(sample_rate) + " Hz; this artifact takes " +
                         std::to_string(meta.sample_rate) +
                         " Hz (export one with --input-sample-rate " +
                         std::to_string(sample_rate) + " to take this rate)");
    return nullptr;
  }
  if (count <= 0 || samples == nullptr) {
    set_error(error, "the clip is empty");
    return nullptr;
  }
  if (count < meta.min_samples) {
    set_error(error, "the clip has " + std::to_string(count) + " samples; the model needs at "
                     "least " + std::to_string(meta.min_samples) + " at " +
                     std::to_string(meta.sample_rate) + " Hz");
    return nullptr;
  }
  if (meta.max_samples > 0 && count > meta.max_samples) {
    set_error(error, "the clip has " + std::to_string(count) + " samples; this artifact takes "
                     "at most " + std::to_string(meta.max_samples) + " (cut longer audio into "
                     "segments)");
    return nullptr;
  }
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(samples[i])) {
      set_error(error, "sample " + std::to_string(i) + " is NaN or infinite");
      return nullptr;
    }
  }
  try {
    std::vector<float> logits;
    {
      std::lock_guard<std::mutex> lock(recognizer->mutex);
      logits = recognizer->impl->logits(samples, count);
    }
    const size_t n = meta.labels.size();
    if (logits.size() != n)
      throw emo::Failure("the artifact returned " + std::to_string(logits.size()) +
                         " scores for " + std::to_string(n) + " labels");
    for (float z : logits)
      if (!std::isfinite(z)) throw emo::Failure("the model's outputs are NaN or infinite");
    auto* result = static_cast<EmoResult*>(std::calloc(1, sizeof(EmoResult)));
    auto* values = static_cast<float*>(std::malloc(2 * n * sizeof(float)));
    if (result == nullptr || values == nullptr) {
      std::free(result);
      std::free(values);
      throw emo::Failure("out of memory");
    }
    // softmax in double, from the logits: the same probabilities whichever backend ran
    const float top = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (size_t k = 0; k < n; ++k) sum += std::exp(static_cast<double>(logits[k]) - top);
    for (size_t k = 0; k < n; ++k) {
      values[k] = static_cast<float>(std::exp(static_cast<double>(logits[k]) - top) / sum);
      values[n + k] = logits[k];
    }
    result->num_labels = static_cast<int32_t>(n);
    result->probabilities = values;
    result->logits = values + n;
    result->label = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) -
                                         logits.begin());
    return result;
  } catch (const std::exception& e) {
    set_error(error, std::string("inference failed: ") + emo::first_line(e.what()));
  }
  return nullptr;
}

void EmoResultDestroy(EmoResult* result) {
  if (result == nullptr) return;
  std::free(const_cast<float*>(result->probabilities));  // logits share this allocation
  std::free(result);
}

void EmoFreeString(char* s) { std::free(s); }

}  // extern "C"
