// The C API over libtorch: TorchScript and AOTInductor artifacts made by emo-export.
#include "emo_toolkit/c_api.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "json.h"

#ifndef EMO_TOOLKIT_VERSION
#define EMO_TOOLKIT_VERSION "0.0.0"
#endif

namespace {

// Where emo-export puts the metadata inside each archive (see export/formats.py).
constexpr const char* kTorchScriptMeta = "extra/metadata.json";
constexpr const char* kAotiMeta = "extra/emo_toolkit.json";

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void set_error(char** error, const std::string& message) {
  if (error == nullptr) return;
  *error = static_cast<char*>(std::malloc(message.size() + 1));
  if (*error != nullptr) std::memcpy(*error, message.c_str(), message.size() + 1);
}

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

struct Metadata {
  std::string json;
  std::vector<std::string> labels;
  int32_t sample_rate = 0;
  int32_t min_samples = 1;
};

Metadata parse_metadata(const std::string& path, const std::string& text) {
  Metadata m;
  m.json = text;
  emo::Json doc;
  try {
    doc = emo::parse_json(text);
  } catch (const emo::JsonError& e) {
    throw Failure(path + ": the artifact's metadata is not valid JSON (" + e.what() + ")");
  }
  const emo::Json* labels = doc.find("labels");
  const emo::Json* rate = doc.find("sample_rate");
  const emo::Json* min_samples = doc.find("min_samples");
  if (labels == nullptr || labels->type != emo::Json::Type::Array || labels->array.size() < 2)
    throw Failure(path + ": the artifact's metadata has no list of labels");
  for (const auto& label : labels->array) {
    if (label.type != emo::Json::Type::String)
      throw Failure(path + ": the artifact's labels are not all strings");
    m.labels.push_back(label.string);
  }
  if (rate == nullptr || rate->type != emo::Json::Type::Number || rate->number < 1)
    throw Failure(path + ": the artifact's metadata has no sample_rate");
  m.sample_rate = static_cast<int32_t>(rate->number);
  if (min_samples != nullptr && min_samples->type == emo::Json::Type::Number)
    m.min_samples = std::max<int32_t>(1, static_cast<int32_t>(min_samples->number));
  return m;
}

std::string read_record(caffe2::serialize::PyTorchStreamReader& reader, const char* name) {
  auto [data, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

}  // namespace

struct EmoRecognizer {
  std::string backend;  // "torchscript" or "aoti"
  Metadata meta;
  c10::Device device{c10::kCPU};
  std::unique_ptr<torch::jit::Module> module;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti;
  std::mutex mutex;

  std::vector<at::Tensor> run(const at::Tensor& waveform) {
    std::lock_guard<std::mutex> lock(mutex);
    c10::InferenceMode guard;
    if (aoti) return aoti->run({waveform});
    auto out = module->forward({waveform}).toTuple();
    return {out->elements()[0].toTensor(), out->elements()[1].toTensor()};
  }
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
      throw Failure(path + ": no such file, or it cannot be read");
    auto recognizer = std::make_unique<EmoRecognizer>();
    try {
      recognizer->device = c10::Device(device ? device : "cpu");
    } catch (const c10::Error& e) {
      throw Failure(std::string("unknown device '") + device + "': use cpu, cuda or cuda:N");
    }
    if (recognizer->device.is_cuda() && !torch::cuda::is_available())
      throw Failure(std::string("device '") + device + "': CUDA is not available here");
    std::string meta_text;
    try {
      caffe2::serialize::PyTorchStreamReader reader(path);
      if (reader.hasRecord(kTorchScriptMeta)) {
        recognizer->backend = "torchscript";
        meta_text = read_record(reader, kTorchScriptMeta);
      } else if (reader.hasRecord(kAotiMeta)) {
        recognizer->backend = "aoti";
        meta_text = read_record(reader, kAotiMeta);
      }
    } catch (const c10::Error& e) {
      throw Failure(path + ": not a TorchScript or AOTInductor archive (" +
                    first_line(e.what_without_backtrace()) + ")");
    }
    if (recognizer->backend.empty())
      throw Failure(path + ": no emo-toolkit metadata inside; make artifacts with emo-export "
                           "--format torchscript or --format pt2");
    recognizer->meta = parse_metadata(path, meta_text);
    try {
      if (recognizer->backend == "torchscript") {
        recognizer->module =
            std::make_unique<torch::jit::Module>(torch::jit::load(path, recognizer->device));
        recognizer->module->eval();
      } else {
        recognizer->aoti = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
            path, "model", false, 1, recognizer->device.is_cuda() ? recognizer->device.index()
                                                                   : -1);
      }
    } catch (const c10::Error& e) {
      throw Failure(path + ": libtorch could not load the " + recognizer->backend +
                    " artifact (" + first_line(e.what_without_backtrace()) + ")");
    }
    return recognizer.release();
  } catch (const Failure& e) {
    set_error(error, e.what());
  } catch (const std::exception& e) {
    set_error(error, path + ": " + first_line(e.what()));
  }
  return nullptr;
}

void EmoRecognizerDestroy(EmoRecognizer* recognizer) { delete recognizer; }

int32_t EmoRecognizerNumLabels(const EmoRecognizer* recognizer) {
  return recognizer ? static_cast<int32_t>(recognizer->meta.labels.size()) : -1;
}

const char* EmoRecognizerLabel(const EmoRecognizer* recognizer, int32_t index) {
  if (recognizer == nullptr || index < 0 ||
      index >= static_cast<int32_t>(recognizer->meta.labels.size()))
    return nullptr;
  return recognizer->meta.labels[static_cast<size_t>(index)].c_str();
}

int32_t EmoRecognizerSampleRate(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->meta.sample_rate : -1;
}

int32_t EmoRecognizerMinSamples(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->meta.min_samples : -1;
}

const char* EmoRecognizerBackend(const EmoRecognizer* recognizer) {
  if (recognizer == nullptr) return nullptr;
  return recognizer->backend == "aoti" ? "aoti" : "torchscript";
}

const char* EmoRecognizerMetadataJson(const EmoRecognizer* recognizer) {
  return recognizer ? recognizer->meta.json.c_str() : nullptr;
}

EmoResult* EmoClassify(EmoRecognizer* recognizer, const float* samples, int64_t count,
                       int32_t sample_rate, char** error) {
  if (recognizer == nullptr) {
    set_error(error, "recognizer is NULL");
    return nullptr;
  }
  const Metadata& meta = recognizer->meta;
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
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(samples[i])) {
      set_error(error, "sample " + std::to_string(i) + " is NaN or infinite");
      return nullptr;
    }
  }
  try {
    at::Tensor waveform = torch::from_blob(const_cast<float*>(samples), {1, count},
                                           torch::kFloat32)
                              .to(recognizer->device, /*non_blocking=*/false, /*copy=*/true);
    std::vector<at::Tensor> outputs = recognizer->run(waveform);
    if (outputs.size() < 2) throw Failure("the artifact returned fewer than 2 outputs");
    at::Tensor logits = outputs[0].to(torch::kCPU, torch::kFloat32).contiguous();
    at::Tensor probs = outputs[1].to(torch::kCPU, torch::kFloat32).contiguous();
    const int64_t n = static_cast<int64_t>(meta.labels.size());
    if (logits.numel() != n || probs.numel() != n)
      throw Failure("the artifact returned " + std::to_string(logits.numel()) +
                    " scores for " + std::to_string(n) + " labels");
    auto* result = static_cast<EmoResult*>(std::calloc(1, sizeof(EmoResult)));
    auto* values = static_cast<float*>(std::malloc(2 * static_cast<size_t>(n) * sizeof(float)));
    if (result == nullptr || values == nullptr) {
      std::free(result);
      std::free(values);
      throw Failure("out of memory");
    }
    std::memcpy(values, probs.data_ptr<float>(), static_cast<size_t>(n) * sizeof(float));
    std::memcpy(values + n, logits.data_ptr<float>(), static_cast<size_t>(n) * sizeof(float));
    result->num_labels = static_cast<int32_t>(n);
    result->probabilities = values;
    result->logits = values + n;
    result->label = static_cast<int32_t>(probs.argmax().item<int64_t>());
    return result;
  } catch (const c10::Error& e) {
    set_error(error, "inference failed: " + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    set_error(error, std::string("inference failed: ") + first_line(e.what()));
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
