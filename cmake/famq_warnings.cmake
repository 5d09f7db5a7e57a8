# Compiler warnings and sanitizers, applied to famq's own targets only.
add_library(famq_compile_options INTERFACE)
target_compile_options(famq_compile_options INTERFACE
  -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual
  -Wimplicit-fallthrough $<$<BOOL:${FAMQ_WERROR}>:-Werror>)
if(FAMQ_SANITIZE)
  target_compile_options(famq_compile_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(famq_compile_options INTERFACE -fsanitize=address,undefined)
endif()
if(FAMQ_FUZZ)
  # libFuzzer targets (tests/fuzz): famq's own code carries the coverage
  # instrumentation; only the fuzzer executables link libFuzzer itself.
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "FAMQ_FUZZ needs clang (e.g. cmake --preset host-asan)")
  endif()
  target_compile_options(famq_compile_options INTERFACE -fsanitize=fuzzer-no-link)
  target_link_options(famq_compile_options INTERFACE -fsanitize=fuzzer-no-link)
endif()
