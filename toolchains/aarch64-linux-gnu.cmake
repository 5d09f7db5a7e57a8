# Cross toolchain: 64-bit ARM Linux (aarch64, glibc), Debian's cross gcc.
# Modelled on XNNPACK's cmake/aarch64.toolchain.
#
#   cmake -G Ninja -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#   (or: cmake --preset aarch64)
#
# Two roots, no CMAKE_SYSROOT:
#   /usr/aarch64-linux-gnu  the cross gcc's own libc/libstdc++ (g++-aarch64-linux-gnu);
#                           gcc finds it by itself.
#   FAMQ_SYSROOT            Debian arm64 libraries famq links (XNNPACK, cpuinfo,
#                           pthreadpool, GoogleTest, flatbuffers, mbedTLS, nlohmann-json,
#                           CLI11), unpacked by scripts/install-deps.sh. Default
#                           /opt/famq-sysroot/aarch64; override with -DFAMQ_SYSROOT=...
#                           or the FAMQ_SYSROOT environment variable.
# Tests run through qemu-aarch64 (qemu-user) as CMAKE_CROSSCOMPILING_EMULATOR.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FAMQ_TARGET_TRIPLET aarch64-linux-gnu)

set(CMAKE_C_COMPILER ${FAMQ_TARGET_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${FAMQ_TARGET_TRIPLET}-g++)

include(${CMAKE_CURRENT_LIST_DIR}/famq-debian-cross.cmake)
famq_debian_cross(aarch64 FAMQ_SYSROOT qemu-aarch64)
