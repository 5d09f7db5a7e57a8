# Android arm64-v8a through the NDK's own toolchain file. UNTESTED in famq's CI:
# Debian ships no NDK, so nothing here is built or run by scripts/test-all.sh.
#
#   export ANDROID_NDK=/path/to/android-ndk-r26d      # or ANDROID_NDK_HOME
#   cmake -G Ninja -B build/android-arm64 \
#     -DCMAKE_TOOLCHAIN_FILE=toolchains/android-arm64.cmake \
#     -DFAMQ_SYSROOT=/opt/famq-sysroot/android-arm64
#   ninja -C build/android-arm64 famq_runtime_shared   # -> runtime/libfamq_runtime.so
#
# Defaults: ABI arm64-v8a, platform android-26 (Android 8.0), libc++ (static:
# libfamq_runtime.so exposes only the C API of famq.h, so no C++ type crosses
# the library boundary), FAMQ_DEVICE_ONLY=ON and FAMQ_BUILD_TESTS=OFF (the
# device runtime alone; the host stage never runs on a phone). Override any
# of them with -DANDROID_ABI=..., -DANDROID_PLATFORM=..., -DANDROID_STL=...,
# -DFAMQ_DEVICE_ONLY=OFF. An app that builds famq from source with Gradle
# uses the NDK toolchain directly instead: examples/android/README.md.
# XNNPACK, cpuinfo and pthreadpool are not in the NDK: build them for Android
# and point FAMQ_SYSROOT (or CMAKE_FIND_ROOT_PATH) at their install prefix.
if(NOT ANDROID_NDK)
  if(DEFINED ENV{ANDROID_NDK} AND NOT "$ENV{ANDROID_NDK}" STREQUAL "")
    set(ANDROID_NDK "$ENV{ANDROID_NDK}")
  elseif(DEFINED ENV{ANDROID_NDK_HOME} AND NOT "$ENV{ANDROID_NDK_HOME}" STREQUAL "")
    set(ANDROID_NDK "$ENV{ANDROID_NDK_HOME}")
  endif()
endif()
if(NOT ANDROID_NDK)
  message(FATAL_ERROR
    "famq: ANDROID_NDK is not set. Install the Android NDK (r23 or newer) and run\n"
    "  export ANDROID_NDK=/path/to/android-ndk\n"
    "or pass -DANDROID_NDK=/path/to/android-ndk.")
endif()
set(_famq_ndk_toolchain "${ANDROID_NDK}/build/cmake/android.toolchain.cmake")
if(NOT EXISTS "${_famq_ndk_toolchain}")
  message(FATAL_ERROR "famq: ${_famq_ndk_toolchain} not found; is ANDROID_NDK=${ANDROID_NDK} an NDK?")
endif()
set(ANDROID_NDK "${ANDROID_NDK}" CACHE PATH "Android NDK root")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ANDROID_NDK FAMQ_SYSROOT)

if(NOT ANDROID_ABI)
  set(ANDROID_ABI arm64-v8a)
endif()
if(NOT ANDROID_PLATFORM)
  set(ANDROID_PLATFORM android-26)
endif()
if(NOT ANDROID_STL)
  set(ANDROID_STL c++_static)
endif()

include("${_famq_ndk_toolchain}")

# The device build: runtime, arm kernels and schema only (an explicit
# -DFAMQ_DEVICE_ONLY=OFF / -DFAMQ_BUILD_TESTS=ON on the command line wins).
set(FAMQ_DEVICE_ONLY ON CACHE BOOL "Build only the device runtime (runtime, arm, x86, schema)")
set(FAMQ_BUILD_TESTS OFF CACHE BOOL "Build the test suites")

if(FAMQ_SYSROOT)
  list(APPEND CMAKE_FIND_ROOT_PATH "${FAMQ_SYSROOT}")
endif()
