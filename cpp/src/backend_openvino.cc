// The OpenVINO backend: ONNX artifacts (model.onnx) through OpenVINO's ONNX front end.
//
// The model is read and compiled once, with the dynamic batch and length axes the export
// gives it, and one infer request serves every call: a new clip length needs no new
// compilation. emo-export's ONNX metadata (metadata_props "emo_toolkit") is in the
// model's runtime info under "framework".
#include <algorithm>
#include <cctype>
#include <openvino/openvino.hpp>

#include "backend.h"

namespace emo {
namespace {

constexpr const char* kMetaKey = "emo_toolkit";

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
  OpenVinoBackend(const std::string& path, const std::string& device) {
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
    try {
      compiled_ = core_.compile_model(model, target);
      request_ = compiled_.create_infer_request();
    } catch (const std::exception& e) {
      throw Failure(path + ": OpenVINO could not compile the model for device '" + device +
                    "' (" + first_line(e.what()) + ")");
    }
  }

  const Metadata& metadata() const override { return meta_; }

  std::vector<float> logits(const float* samples, int64_t count) override {
    try {
      const size_t n = static_cast<size_t>(count);
      const bool flat = meta_.layout == "concatenated";
      ov::Tensor input(ov::element::f32, flat ? ov::Shape{n} : ov::Shape{1, n},
                       const_cast<float*>(samples));
      request_.set_input_tensor(0, input);
      if (meta_.layout == "padded") {  // one row, all of it valid
        ov::Tensor lengths(ov::element::i64, ov::Shape{1});
        lengths.data<int64_t>()[0] = count;
        request_.set_input_tensor(1, lengths);
      } else if (flat) {
        ov::Tensor lengths(ov::element::i32, ov::Shape{1});
        lengths.data<int32_t>()[0] = static_cast<int32_t>(count);
        request_.set_input_tensor(1, lengths);
      }
      request_.infer();
      const ov::Tensor out = request_.get_tensor("logits");
      const float* data = out.data<const float>();
      return std::vector<float>(data, data + out.get_size());
    } catch (const std::exception& e) {
      throw Failure(first_line(e.what()));
    }
  }

 private:
  ov::Core core_;
  Metadata meta_;
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
};

std::unique_ptr<Backend> open_openvino(const std::string& path, const std::string& device,
                                       std::string* kind) {
  *kind = "openvino";
  return std::make_unique<OpenVinoBackend>(path, device);
}

}  // namespace

extern const BackendEntry kOpenVinoBackend{"openvino", {".onnx"}, open_openvino};

}  // namespace emo
