// The libtorch backend: TorchScript (.torchscript.pt) and AOTInductor (.aoti.pt2) artifacts.
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <dlfcn.h>

#include "backend.h"

namespace emo {
namespace {

// Where emo-export puts the metadata inside each archive (see export/torch_formats.py).
constexpr const char* kTorchScriptMeta = "extra/metadata.json";
constexpr const char* kAotiMeta = "extra/emo_toolkit.json";

std::string read_record(caffe2::serialize::PyTorchStreamReader& reader, const char* name) {
  auto [data, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(data.get()), size);
}

class TorchBackend : public Backend {
 public:
  TorchBackend(const std::string& path, const std::string& device_name, std::string* kind) {
    try {
      device_ = c10::Device(device_name);
    } catch (const c10::Error&) {
      throw Failure("unknown device '" + device_name + "': use cpu, cuda or cuda:N");
    }
#ifndef EMO_TORCH_CUDA
    if (device_.is_cuda())
      throw Failure("device '" + device_name + "': CUDA is not available in this build (its "
                    "libtorch backend is CPU-only; configure with -DEMO_WITH_CUDA=ON)");
#endif
    if (device_.is_cuda() && !torch::cuda::is_available())
      throw Failure("device '" + device_name + "': CUDA is not available here");
    std::string meta_text;
    try {
      caffe2::serialize::PyTorchStreamReader reader(path);
      if (reader.hasRecord(kTorchScriptMeta)) {
        *kind = "torchscript";
        meta_text = read_record(reader, kTorchScriptMeta);
      } else if (reader.hasRecord(kAotiMeta)) {
        *kind = "aoti";
        meta_text = read_record(reader, kAotiMeta);
      }
    } catch (const c10::Error& e) {
      throw Failure(path + ": not a TorchScript or AOTInductor archive (" +
                    first_line(e.what_without_backtrace()) + ")");
    }
    if (kind->empty())
      throw Failure(path + ": no emo-toolkit metadata inside; make artifacts with emo-export "
                           "--format torchscript or --format pt2");
    meta_ = parse_metadata(path, meta_text);
    try {
      if (*kind == "torchscript") {
        module_ = std::make_unique<torch::jit::Module>(torch::jit::load(path, device_));
        module_->eval();
      } else {
#ifndef EMO_TORCH_CUDA
        // The package's compiled model needs libtorch.so, which a CPU-only build does not
        // link: load it for the package (from the CUDA wheel it brings CUDA libraries),
        // through this plugin's RUNPATH (the wheel's folder, or $ORIGIN once installed).
        if (dlopen("libtorch.so", RTLD_NOW | RTLD_GLOBAL) == nullptr)
          throw Failure(path + ": AOTInductor packages need libtorch.so (" + dlerror() + ")");
#endif
        aoti_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
            path, "model", false, 1, device_.is_cuda() ? device_.index() : -1);
      }
    } catch (const c10::Error& e) {
      throw Failure(path + ": libtorch could not load the " + *kind + " artifact (" +
                    first_line(e.what_without_backtrace()) + ")");
    }
  }

  const Metadata& metadata() const override { return meta_; }

  std::vector<float> logits(const float* samples, int64_t count) override {
    try {
      c10::InferenceMode guard;
      std::vector<at::Tensor> inputs{
          torch::from_blob(const_cast<float*>(samples), {1, count}, torch::kFloat32)
              .to(device_, /*non_blocking=*/false, /*copy=*/true)};
      if (meta_.layout == "padded")  // one row, all of it valid
        inputs.push_back(torch::full({1}, count, torch::dtype(torch::kInt64).device(device_)));
      else if (meta_.layout != "clips")
        throw Failure("the " + meta_.layout + " input layout is for ONNX (Triton) models");
      at::Tensor out;
      if (aoti_) {
        out = aoti_->run(inputs).at(0);
      } else {
        out = module_->forward({inputs.begin(), inputs.end()})
                  .toTuple()->elements()[0].toTensor();
      }
      at::Tensor cpu = out.to(torch::kCPU, torch::kFloat32).contiguous();
      return std::vector<float>(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
    } catch (const c10::Error& e) {
      throw Failure(first_line(e.what_without_backtrace()));
    }
  }

 private:
  Metadata meta_;
  c10::Device device_{c10::kCPU};
  std::unique_ptr<torch::jit::Module> module_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti_;
};

std::unique_ptr<Backend> open_torch(const std::string& path, const Options& options,
                                    std::string* kind) {
  require_exported_precision(options, "libtorch");
  if (options.threads > 0) at::set_num_threads(options.threads);  // the process's pool
  return std::make_unique<TorchBackend>(path, options.device, kind);
}

}  // namespace

const BackendEntry kTorchBackend{"torch", {".torchscript.pt", ".pt2", ".pt"}, open_torch};

}  // namespace emo

EMO_BACKEND_PLUGIN(emo::kTorchBackend)
