# Shared part of the Debian cross toolchain files (aarch64-linux-gnu.cmake,
# arm-linux-gnueabihf.cmake); not a toolchain file by itself. Expects
# FAMQ_TARGET_TRIPLET and CMAKE_<LANG>_COMPILER to be set.
#
# famq_debian_cross(<sysroot-name> <sysroot-env-var> <qemu-binary>)
#   FAMQ_SYSROOT (cache variable) is the first of: -DFAMQ_SYSROOT=...,
#   $ENV{<sysroot-env-var>}, $ENV{FAMQ_SYSROOT_DIR}/<sysroot-name> (the parent
#   directory that scripts/install-deps.sh fills), /opt/famq-sysroot/<sysroot-name>.
macro(famq_debian_cross sysroot_name sysroot_env qemu)
  if(NOT FAMQ_SYSROOT)
    if(NOT "$ENV{${sysroot_env}}" STREQUAL "")
      set(FAMQ_SYSROOT "$ENV{${sysroot_env}}")
    elseif(NOT "$ENV{FAMQ_SYSROOT_DIR}" STREQUAL "")
      set(FAMQ_SYSROOT "$ENV{FAMQ_SYSROOT_DIR}/${sysroot_name}")
    else()
      set(FAMQ_SYSROOT "/opt/famq-sysroot/${sysroot_name}")
    endif()
  endif()
  set(FAMQ_SYSROOT "${FAMQ_SYSROOT}" CACHE PATH "Debian ${sysroot_name} libraries for the cross build")
  # try_compile projects re-read this file; hand them the same sysroot.
  list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FAMQ_SYSROOT)
  if(NOT EXISTS "${FAMQ_SYSROOT}/usr/lib/${FAMQ_TARGET_TRIPLET}")
    message(FATAL_ERROR "famq: no ${sysroot_name} sysroot at ${FAMQ_SYSROOT} "
      "(run scripts/install-deps.sh as root, or set FAMQ_SYSROOT)")
  endif()

  set(FAMQ_CROSS_LIBC_ROOT "/usr/${FAMQ_TARGET_TRIPLET}")
  set(CMAKE_LIBRARY_ARCHITECTURE ${FAMQ_TARGET_TRIPLET})
  set(CMAKE_FIND_ROOT_PATH "${FAMQ_SYSROOT}" "${FAMQ_CROSS_LIBC_ROOT}")
  # Host programs (flatc, python3, qemu) come from the host; libraries, headers
  # and CMake packages only from the target roots.
  set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
  set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

  # The sysroot's .so files need each other (libXNNPACK -> libcpuinfo,
  # libpthreadpool); the linker must find those transitive deps in the sysroot.
  set(_famq_libdir "${FAMQ_SYSROOT}/usr/lib/${FAMQ_TARGET_TRIPLET}")
  foreach(_kind EXE SHARED MODULE)
    set(CMAKE_${_kind}_LINKER_FLAGS_INIT "-Wl,-rpath-link,${_famq_libdir}")
  endforeach()

  # qemu-user: -L gives the dynamic loader and libc of the cross gcc; the
  # sysroot's libraries are found through LD_LIBRARY_PATH set for the guest only.
  find_program(FAMQ_QEMU ${qemu})
  if(NOT FAMQ_QEMU)
    set(FAMQ_QEMU ${qemu})  # not installed here: tests fail to start, builds still work
  endif()
  set(CMAKE_CROSSCOMPILING_EMULATOR
    "${FAMQ_QEMU};-L;${FAMQ_CROSS_LIBC_ROOT};-E;LD_LIBRARY_PATH=${_famq_libdir}")

  # pkg-config (if a dependency is ever found through it) reads the sysroot's .pc files.
  set(ENV{PKG_CONFIG_DIR} "")
  set(ENV{PKG_CONFIG_LIBDIR} "${_famq_libdir}/pkgconfig:${FAMQ_SYSROOT}/usr/share/pkgconfig")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "${FAMQ_SYSROOT}")
endmacro()
