// The backends: each runtime is a plugin library next to libemo_toolkit.so
// (libemo_toolkit_<name>.so), opened on demand the first time a file it runs is opened. An
// app that opens only .onnx files loads OpenVINO and never libtorch; a build or install
// holds the plugins of the runtimes it was made with.
#include <dlfcn.h>

#include <map>
#include <mutex>
#include <sys/stat.h>

#include "backend.h"

namespace emo {
namespace {

struct Plugin {
  const char* name;                   // as BackendEntry::name
  std::vector<std::string> suffixes;  // the artifact name endings it runs
  const char* runtime;                // for messages
};

const std::vector<Plugin>& plugins() {
  static const std::vector<Plugin> known{
      {"openvino", {".onnx"}, "OpenVINO"},
      {"torch", {".torchscript.pt", ".pt2", ".pt"}, "libtorch"},
      {"executorch", {".pte"}, "ExecuTorch"},
  };
  return known;
}

bool ends_with(const std::string& text, const std::string& end) {
  return text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0;
}

// The folder this library was loaded from: its plugins lie beside it.
std::string own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&own_folder), &info) == 0 || info.dli_fname == nullptr)
    return ".";
  const std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string plugin_path(const Plugin& plugin) {
  return own_folder() + "/libemo_toolkit_" + plugin.name + ".so";
}

bool installed(const Plugin& plugin) {
  struct stat st {};
  return stat(plugin_path(plugin).c_str(), &st) == 0;
}

// The plugins this build or install has, for messages.
std::string built_backends() {
  std::string built;
  for (const auto& plugin : plugins()) {
    if (!installed(plugin)) continue;
    built += std::string(built.empty() ? "" : ", ") + plugin.runtime + " (";
    for (size_t i = 0; i < plugin.suffixes.size(); ++i)
      built += (i ? " " : "") + plugin.suffixes[i];
    built += ")";
  }
  return built.empty() ? "none" : built;
}

}  // namespace

const BackendEntry& backend_for(const std::string& path) {
  const Plugin* best = nullptr;
  size_t best_length = 0;
  for (const auto& plugin : plugins())
    for (const auto& suffix : plugin.suffixes)
      if (ends_with(path, suffix) && suffix.size() > best_length) {
        best = &plugin;
        best_length = suffix.size();
      }
  if (best == nullptr || !installed(*best))
    throw Failure(path + ": no backend of this build runs it; this build has " +
                  built_backends() + ". .onnx needs the OpenVINO backend, .torchscript.pt "
                  "and .pt2 libtorch, .pte ExecuTorch: rebuild with them installed");
  static std::mutex mutex;
  static std::map<std::string, const BackendEntry*> opened;  // plugins stay loaded
  std::lock_guard<std::mutex> lock(mutex);
  if (const auto found = opened.find(best->name); found != opened.end()) return *found->second;
  const std::string file = plugin_path(*best);
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr)
    throw Failure(path + ": the " + best->runtime + " backend (" + file + ") does not load (" +
                  first_line(dlerror()) + ")");
  using EntryFunction = const BackendEntry* (*)();
  auto entry = reinterpret_cast<EntryFunction>(dlsym(handle, "emo_toolkit_backend_v1"));
  if (entry == nullptr)
    throw Failure(file + ": not an emo-toolkit backend (no emo_toolkit_backend_v1)");
  return *(opened[best->name] = entry());
}

}  // namespace emo
