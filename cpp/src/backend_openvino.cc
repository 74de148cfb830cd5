// The OpenVINO backend: ONNX artifacts (model.onnx) through OpenVINO's ONNX front end.
//
// The model is read and compiled once, with the dynamic batch and length axes the export
// gives it, and one infer request serves every call: a new clip length needs no new
// compilation. emo-export's ONNX metadata (metadata_props "emo_toolkit") is in the
// model's runtime info under "framework".
//
// Precision: without a hint, OpenVINO's CPU plugin computes in bf16 on CPUs with
// AVX512-BF16 or AMX (its default "inference precision" follows the hardware), so an fp32
// artifact would silently give other numbers than Python. The hint is always set, f32
// unless bf16 or fp16 is asked for, and read back from the compiled model.
//
// Memory: the CPU plugin keeps compiled kernels per input shape, in its runtime cache
// (CPU_RUNTIME_CACHE_CAPACITY, 5000 shapes by default) and in oneDNN's primitive cache
// (ONEDNN_PRIMITIVE_CACHE_CAPACITY, 1024): about 1 to 3.5 MB per distinct clip length. Both
// are bounded to kShapeCache shapes, so memory stays flat however many lengths arrive
// (oneDNN reads its variable once per process, when its cache is first used; a value the
// application set is kept).
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>
#include <openvino/openvino.hpp>

#include "backend.h"

namespace emo {
namespace {

constexpr const char* kMetaKey = EMO_METADATA_KEY;
constexpr int kShapeCache = EMO_OPENVINO_SHAPE_CACHE;

std::string precision_name(const ov::element::Type& type) {
  if (type == ov::element::f32) return "fp32";
  if (type == ov::element::bf16) return "bf16";
  if (type == ov::element::f16) return "fp16";
  return type.get_type_name();
}

std::string openvino_device(const std::string& device) {
  if (device.rfind("cuda", 0) == 0)
    throw Failure("device '" + device + "': the OpenVINO backend runs on OpenVINO devices "
                  "(cpu, GPU, NPU, AUTO, ...); cuda is for libtorch artifacts");
  std::string name = device;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return name;
}

class OpenVinoBackend : public Backend {
 public:
  OpenVinoBackend(const std::string& path, const Options& options) {
    const std::string& device = options.device;
    const std::string target = openvino_device(device);
    std::shared_ptr<ov::Model> model;
    try {
      model = core_.read_model(path);
    } catch (const std::exception& e) {
      throw Failure(path + ": OpenVINO cannot read it as an ONNX model (" +
                    first_line(e.what()) + ")");
    }
    if (!model->has_rt_info("framework", kMetaKey))
      throw Failure(path + ": no emo-toolkit metadata inside; make artifacts with emo-export "
                           "--format onnx");
    meta_ = parse_metadata(path, model->get_rt_info<std::string>("framework", kMetaKey));
    const std::string& asked = options.precision;
    if (!asked.empty() && meta_.precision != "fp32")
      throw Failure(path + ": precision " + asked + " applies to fp32 artifacts; this one is " +
                    meta_.precision);
    const ov::element::Type wanted = asked == "bf16"   ? ov::element::bf16
                                     : asked == "fp16" ? ov::element::f16
                                                       : ov::element::f32;
    ov::AnyMap config{ov::hint::inference_precision(wanted)};
    if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
    if (target == "CPU") config.emplace("CPU_RUNTIME_CACHE_CAPACITY", kShapeCache);
    ov::element::Type got;
    try {
      compiled_ = core_.compile_model(model, target, config);
      got = compiled_.get_property(ov::hint::inference_precision);
      request_ = compiled_.create_infer_request();
    } catch (const std::exception& e) {
      throw Failure(path + ": OpenVINO could not compile the model for device '" + device +
                    "' (" + first_line(e.what()) + ")");
    }
    if (got != wanted)
      throw Failure(path + ": OpenVINO on device '" + device + "' computes in " +
                    precision_name(got) + ", not the " + precision_name(wanted) + " asked for" +
                    (asked == "bf16"   ? ": this CPU has no bf16 units (AVX512-BF16 or AMX-BF16)"
                     : asked == "fp16" ? ": this CPU has no fp16 units (AVX512-FP16 or AMX-FP16)"
                                       : ""));
    precision_ = asked.empty() ? meta_.precision : asked;
  }

  const Metadata& metadata() const override { return meta_; }
  std::string precision() const override { return precision_; }

  std::vector<float> logits(const float* samples, int64_t count) override {
    return std::move(logits_batch({samples}, count).front());
  }

  // One inference request for the batch: waveform [B, n] ("clips", "padded" with lengths
  // [B]) or the rows end to end ("concatenated", with lengths [B]).
  std::vector<std::vector<float>> logits_batch(const std::vector<const float*>& rows,
                                               int64_t count) override {
    try {
      const size_t batch = rows.size(), n = static_cast<size_t>(count);
      const bool flat = meta_.layout == "concatenated";
      ov::Tensor input;
      if (batch == 1) {  // the caller's samples, uncopied
        input = ov::Tensor(ov::element::f32, flat ? ov::Shape{n} : ov::Shape{1, n},
                           const_cast<float*>(rows.front()));
      } else {
        input = ov::Tensor(ov::element::f32, flat ? ov::Shape{batch * n} : ov::Shape{batch, n});
        for (size_t b = 0; b < batch; ++b)
          std::copy(rows[b], rows[b] + n, input.data<float>() + b * n);
      }
      request_.set_input_tensor(0, input);
      if (meta_.layout == "padded") {  // every row all valid
        ov::Tensor lengths(ov::element::i64, ov::Shape{batch});
        std::fill_n(lengths.data<int64_t>(), batch, count);
        request_.set_input_tensor(1, lengths);
      } else if (flat) {
        ov::Tensor lengths(ov::element::i32, ov::Shape{batch});
        std::fill_n(lengths.data<int32_t>(), batch, static_cast<int32_t>(count));
        request_.set_input_tensor(1, lengths);
      }
      request_.infer();
      const ov::Tensor out = request_.get_tensor("logits");
      const float* data = out.data<const float>();
      const size_t per_row = out.get_size() / batch;
      std::vector<std::vector<float>> logits(batch);
      for (size_t b = 0; b < batch; ++b)
        logits[b].assign(data + b * per_row, data + (b + 1) * per_row);
      return logits;
    } catch (const std::exception& e) {
      throw Failure(first_line(e.what()));
    }
  }

 private:
  ov::Core core_;
  Metadata meta_;
  std::string precision_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
};

std::unique_ptr<Backend> open_openvino(const std::string& path, const Options& options,
                                       std::string* kind) {
  *kind = "openvino";
  setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", std::to_string(kShapeCache).c_str(), 0);
  return std::make_unique<OpenVinoBackend>(path, options);
}

}  // namespace

const BackendEntry kOpenVinoBackend{"openvino", {".onnx"}, open_openvino};

}  // namespace emo

EMO_BACKEND_PLUGIN(emo::kOpenVinoBackend)
