# Third-party dependencies: all from Debian bookworm packages (scripts/install-deps.sh).
# Cross builds find them in the sysroot named by the toolchain file.
find_package(Threads REQUIRED)

function(famq_find_lib target header lib)
  find_path(${target}_INCLUDE_DIR ${header} REQUIRED)
  find_library(${target}_LIBRARY ${lib} REQUIRED)
  add_library(famq::${target} UNKNOWN IMPORTED)
  set_target_properties(famq::${target} PROPERTIES
    IMPORTED_LOCATION ${${target}_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${${target}_INCLUDE_DIR})
endfunction()

famq_find_lib(pthreadpool pthreadpool.h pthreadpool)
famq_find_lib(cpuinfo cpuinfo.h cpuinfo)
famq_find_lib(xnnpack xnnpack.h XNNPACK)
famq_find_lib(mbedcrypto mbedtls/sha256.h mbedcrypto)
set_property(TARGET famq::xnnpack APPEND PROPERTY INTERFACE_LINK_LIBRARIES
  famq::pthreadpool famq::cpuinfo Threads::Threads)

find_package(nlohmann_json 3.10 REQUIRED)
