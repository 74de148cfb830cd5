// The ExecuTorch backend: .pte programs (emo-export --format executorch) on the runtime
// libraries of the executorch wheel, with the XNNPACK delegate and the optimized CPU kernels.
//
// A program holds two methods and the metadata as a constant method (export/edge_graph.py):
// `features` turns one clip into the LSTM's per-frame inputs, and `lstm_steps` advances the
// LSTM K frames per call from the states it is given; this backend drives that loop, as
// export/executorch_format.py's EdgeRunner does in Python.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/platform/platform.h>

#include <algorithm>
#include <cstring>

#include "backend.h"

// The thread pool XNNPACK runs on (libexecutorch_threadpool, which the plugin links). The
// wheel ships the library but not its threadpool.h, so its two entry points are declared
// here as the library defines them (executorch/extension/threadpool/threadpool.h).
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool
namespace et_threadpool = executorch::extension::threadpool;

namespace emo {
namespace {

namespace et = executorch;
using et::extension::Module;
using et::extension::TensorPtr;

constexpr const char* kMetadataMethod = "emo_toolkit_metadata";
constexpr const char* kFeatures = "features";
constexpr const char* kSteps = "lstm_steps";

std::vector<et::aten::SizesType> sizes_of(const et::runtime::TensorInfo& info) {
  auto sizes = info.sizes();
  return {sizes.begin(), sizes.end()};
}

// The runtime's log goes nowhere but into the errors we raise: at its default level it
// writes informational lines to the application's stderr (the thread pool's CPU probe, on
// every load), and its error lines say what an error code alone does not.
thread_local std::string last_error;

void keep_errors(et_timestamp_t, et_pal_log_level_t level, const char*, const char*, size_t,
                 const char* message, size_t length) {
  if (level == et_pal_log_level_t::kError || level == et_pal_log_level_t::kFatal)
    last_error.assign(message, length);
}

// "ExecuTorch error N: <the runtime's last error line>", and forgets that line.
std::string error_name(et::runtime::Error error) {
  std::string text = "ExecuTorch error " + std::to_string(static_cast<int>(error));
  if (!last_error.empty()) text += ": " + last_error;
  last_error.clear();
  return text;
}

bool quiet_runtime() {
  static const bool registered =
      et::runtime::register_pal(et::runtime::PalImpl::create(keep_errors, __FILE__));
  return registered;
}

class ExecuTorchBackend : public Backend {
 public:
  ExecuTorchBackend(const std::string& path, const std::string& device)
      : quiet_(quiet_runtime()), module_(path, Module::LoadMode::Mmap) {
    if (device != "cpu")
      throw Failure("device '" + device + "': ExecuTorch programs run on the CPU (XNNPACK)");
    // Full verification: the flatbuffer's offsets are checked before anything follows them
    // (with the minimal check, a program with a damaged header crashed the host).
    if (const auto error = module_.load(et::runtime::Program::Verification::InternalConsistency);
        error != et::runtime::Error::Ok)
      throw Failure(path + ": ExecuTorch cannot load it as a program (" + error_name(error) +
                    ")");
    const auto names = module_.method_names();
    if (!names.ok() || !names->count(kMetadataMethod))
      throw Failure(path + ": no emo-toolkit metadata inside; make programs with emo-export "
                           "--format executorch");
    const auto meta = module_.execute(kMetadataMethod);
    if (!meta.ok() || meta->empty() || !(*meta)[0].isString())
      throw Failure(path + ": its metadata method returned no text");
    meta_ = parse_metadata(path, std::string((*meta)[0].toString()));
    if (!names->count(kFeatures) || !names->count(kSteps))
      throw Failure(path + ": not an emo-toolkit program (no features or lstm_steps method)");
    for (const char* method : {kFeatures, kSteps}) {
      if (const auto error = module_.load_method(method); error != et::runtime::Error::Ok)
        throw Failure(path + ": cannot load its method " + method + " (" + error_name(error) +
                      ")");
    }
    const auto steps = module_.method_meta(kSteps);
    if (!steps.ok() || steps->num_inputs() != 4)
      throw Failure(path + ": its lstm_steps method does not take (inputs, running, h, c)");
    step_shape_ = sizes_of(steps->input_tensor_meta(0).get());
    state_shape_ = sizes_of(steps->input_tensor_meta(2).get());
    if (step_shape_.size() != 2 || state_shape_.size() != 2)  // (K, 4H); (layers, H)
      throw Failure(path + ": its lstm_steps inputs have unexpected shapes");
  }

  const Metadata& metadata() const override { return meta_; }

  std::vector<float> logits(const float* samples, int64_t count) override {
    auto waveform = et::extension::from_blob(const_cast<float*>(samples),
                                             {1, static_cast<et::aten::SizesType>(count)});
    const auto features = module_.execute(kFeatures, waveform);
    if (!features.ok())
      throw Failure("the features method failed (" + error_name(features.error()) + ")");
    const auto& inputs = (*features)[0].toTensor();  // (1, frames, width)
    const int64_t frames = inputs.size(1), width = inputs.size(2);
    const int64_t k = step_shape_[0];
    if (width != step_shape_[1])
      throw Failure("the program's methods disagree on the LSTM input width");
    const size_t state_size = static_cast<size_t>(state_shape_[0] * state_shape_[1]);
    std::vector<float> h(state_size, 0.0f), c(state_size, 0.0f);
    std::vector<float> window(static_cast<size_t>(k * width)), running(static_cast<size_t>(k));
    std::vector<float> out;
    for (int64_t start = 0; start < frames; start += k) {
      const int64_t n = std::min(k, frames - start);
      std::fill(window.begin(), window.end(), 0.0f);
      std::memcpy(window.data(), inputs.const_data_ptr<float>() + start * width,
                  static_cast<size_t>(n * width) * sizeof(float));
      for (int64_t i = 0; i < k; ++i) running[static_cast<size_t>(i)] = i < n ? 1.0f : 0.0f;
      const auto result = module_.execute(
          kSteps, {et::extension::from_blob(window.data(), step_shape_),
                   et::extension::from_blob(running.data(), {static_cast<int>(k)}),
                   et::extension::from_blob(h.data(), state_shape_),
                   et::extension::from_blob(c.data(), state_shape_)});
      if (!result.ok())
        throw Failure("the lstm_steps method failed (" + error_name(result.error()) + ")");
      // outputs: h, c, logits, probs; the states are copied out before the next call,
      // whose inputs they become
      const auto& new_h = (*result)[0].toTensor();
      const auto& new_c = (*result)[1].toTensor();
      std::memcpy(h.data(), new_h.const_data_ptr<float>(), state_size * sizeof(float));
      std::memcpy(c.data(), new_c.const_data_ptr<float>(), state_size * sizeof(float));
      const auto& logits = (*result)[2].toTensor();
      out.assign(logits.const_data_ptr<float>(),
                 logits.const_data_ptr<float>() + logits.numel());
    }
    return out;
  }

 private:
  bool quiet_;
  Module module_;
  Metadata meta_;
  std::vector<et::aten::SizesType> step_shape_, state_shape_;
};

std::unique_ptr<Backend> open_executorch(const std::string& path, const Options& options,
                                         std::string* kind) {
  *kind = "executorch";
  require_exported_precision(options, "ExecuTorch");
  if (options.threads > 0)  // XNNPACK's pool, which every program in the process shares
    et_threadpool::get_threadpool()->_unsafe_reset_threadpool(
        static_cast<uint32_t>(options.threads));
  return std::make_unique<ExecuTorchBackend>(path, options.device);
}

}  // namespace

const BackendEntry kExecuTorchBackend{"executorch", {".pte"}, open_executorch};

}  // namespace emo

EMO_BACKEND_PLUGIN(emo::kExecuTorchBackend)
