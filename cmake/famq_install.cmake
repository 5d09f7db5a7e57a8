# `cmake --install`: what an app or another CMake project consumes.
#
#   include/famq/famq.h                    the C API
#   lib/libfamq_runtime.so(.N)             shared runtime; exports famq_* only (SONAME .N = FAMQ_API_VERSION)
#   lib/libfamq_runtime.a                  static runtime (needs XNNPACK, cpuinfo, pthreadpool, mbedcrypto, libstdc++)
#   lib/cmake/famq/famqConfig.cmake (+ Version)   targets famq::famq (shared) and famq::famq_static
#   lib/pkgconfig/famq.pc                  `pkg-config --cflags --libs famq` (add --static for the .a)
#   bin/famq-rt                            the device CLI
#
# The package files are written by hand (cmake/famqConfig.cmake.in, famq.pc.in)
# rather than exported: the runtime is one object library with build-tree-only
# include paths, and a consumer needs just the two libraries and the header.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The SONAME follows FAMQ_API_VERSION in famq.h (one number, bumped on every
# incompatible change: docs/C_API.md). Android packages load unversioned .so
# files only, so there the library keeps its plain name.
file(STRINGS ${PROJECT_SOURCE_DIR}/runtime/include/famq/famq.h _famq_api_line
     REGEX "^#define FAMQ_API_VERSION [0-9]+")
string(REGEX REPLACE "^#define FAMQ_API_VERSION ([0-9]+).*" "\\1" FAMQ_API_VERSION "${_famq_api_line}")
if(NOT FAMQ_API_VERSION MATCHES "^[0-9]+$")
  message(FATAL_ERROR "famq: no '#define FAMQ_API_VERSION N' in runtime/include/famq/famq.h")
endif()
if(ANDROID)
  set(FAMQ_SHARED_FILE libfamq_runtime.so)
else()
  set_target_properties(famq_runtime_shared PROPERTIES VERSION ${FAMQ_API_VERSION} SOVERSION ${FAMQ_API_VERSION})
  set(FAMQ_SHARED_FILE libfamq_runtime.so.${FAMQ_API_VERSION})
endif()

install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/famq/famq.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/famq)
install(TARGETS famq_runtime_shared
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS famq_runtime ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(TARGET famq-rt)
  install(TARGETS famq-rt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

set(FAMQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/famq)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/famqConfig.cmake.in
  ${PROJECT_BINARY_DIR}/famqConfig.cmake
  INSTALL_DESTINATION ${FAMQ_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_LIBDIR)
# 0.x: a new minor version may change the API (docs/C_API.md, ABI policy).
write_basic_package_version_file(${PROJECT_BINARY_DIR}/famqConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/famqConfig.cmake ${PROJECT_BINARY_DIR}/famqConfigVersion.cmake
        DESTINATION ${FAMQ_CMAKE_DIR})

# famq.pc: paths relative to the .pc file's prefix, so a relocated prefix works.
configure_file(${PROJECT_SOURCE_DIR}/cmake/famq.pc.in ${PROJECT_BINARY_DIR}/famq.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/famq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
