# find_package(Torch) for the libtorch inside a pip-installed torch wheel.
#
# A wheel built with CUDA makes its CMake config look for a complete CUDA toolkit (nvcc,
# headers, libraries) even to link CPU code, and stops when it finds none. The C API
# compiles no CUDA code, so we define the one CUDA target that config references,
# torch::cudart, as the wheel's own CUDA runtime library; the config then skips its
# toolkit lookup, and the build is the same with or without a toolkit installed.
# (libtorch_cuda finds the wheel's CUDA libraries by itself at run time.)
if(NOT TARGET torch::cudart)
  find_file(EMO_TORCH_CONFIG Torch/TorchConfig.cmake PATHS ${CMAKE_PREFIX_PATH} NO_DEFAULT_PATH)
  if(EMO_TORCH_CONFIG)
    # <site-packages>/torch/share/cmake/Torch/TorchConfig.cmake -> <site-packages>
    get_filename_component(EMO_SITE_PACKAGES "${EMO_TORCH_CONFIG}/../../../../.." ABSOLUTE)
    file(GLOB EMO_CUDART "${EMO_SITE_PACKAGES}/nvidia/*/lib/libcudart.so.*"
         "${EMO_SITE_PACKAGES}/nvidia/cuda_runtime/lib/libcudart.so.*")
    add_library(torch::cudart INTERFACE IMPORTED)
    if(EMO_CUDART)
      list(GET EMO_CUDART 0 EMO_CUDART_LIB)
      set_target_properties(torch::cudart PROPERTIES INTERFACE_LINK_LIBRARIES "${EMO_CUDART_LIB}")
    endif()
    message(STATUS "emo-toolkit: torch::cudart is the wheel's ${EMO_CUDART_LIB}")
  endif()
endif()
find_package(Torch REQUIRED)
