// The backends this build has (CMake defines EMO_WITH_<NAME> for each one compiled in).
#include "backend.h"

namespace emo {

#ifdef EMO_WITH_TORCH
extern const BackendEntry kTorchBackend;
#endif
#ifdef EMO_WITH_OPENVINO
extern const BackendEntry kOpenVinoBackend;
#endif
#ifdef EMO_WITH_EXECUTORCH
extern const BackendEntry kExecuTorchBackend;
#endif

const std::vector<BackendEntry>& available_backends() {
  static const std::vector<BackendEntry> entries{
#ifdef EMO_WITH_OPENVINO
      kOpenVinoBackend,
#endif
#ifdef EMO_WITH_TORCH
      kTorchBackend,
#endif
#ifdef EMO_WITH_EXECUTORCH
      kExecuTorchBackend,
#endif
  };
  return entries;
}

}  // namespace emo
