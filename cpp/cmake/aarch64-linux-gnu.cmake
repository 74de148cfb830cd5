# Cross-compiling the C library for 64-bit ARM Linux with Debian's cross toolchain
# (apt: g++-aarch64-linux-gnu; libsndfile1-dev:arm64 through multiarch for emo_classify's
# audio formats). Runtimes come from their aarch64 wheels (the executorch wheel ships
# headers, libraries and a CMake config): pass their cmake folders in CMAKE_PREFIX_PATH.
#   cmake -S cpp -B build/cpp-arm64 -DCMAKE_TOOLCHAIN_FILE=cpp/cmake/aarch64-linux-gnu.cmake \
#         -DCMAKE_PREFIX_PATH=<unpacked aarch64 executorch wheel>/executorch/lib/cmake/executorch
# Run the result with qemu-user: qemu-aarch64 -L /usr/aarch64-linux-gnu build/cpp-arm64/...
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # the wheels' CMake configs lie outside the sysroot
# pkg-config for the arm64 libsndfile that multiarch installs
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
