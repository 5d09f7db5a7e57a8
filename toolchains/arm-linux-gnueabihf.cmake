# Cross toolchain: 32-bit ARM Linux, hard-float (armhf), ARMv7-A with NEON.
# Same layout as aarch64-linux-gnu.cmake: the cross gcc's libc in
# /usr/arm-linux-gnueabihf, Debian armhf libraries in FAMQ_SYSROOT (default
# /opt/famq-sysroot/armhf), tests (optional) through qemu-arm.
#
#   cmake --preset armhf
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7-a)
set(FAMQ_TARGET_TRIPLET arm-linux-gnueabihf)

set(CMAKE_C_COMPILER ${FAMQ_TARGET_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${FAMQ_TARGET_TRIPLET}-g++)

# Debian armhf's baseline is ARMv7-A + VFPv3-D16 (no NEON); famq's 32-bit
# target is ARMv7-A with NEON, as on every phone/board of the last decade.
# -Wno-psabi: GCC notes that std::pair<uint64,uint64> is passed differently
# than by GCC < 7.1; famq never mixes such objects across compilers.
set(CMAKE_C_FLAGS_INIT "-march=armv7-a -mfpu=neon -mfloat-abi=hard -Wno-psabi")
set(CMAKE_CXX_FLAGS_INIT "-march=armv7-a -mfpu=neon -mfloat-abi=hard -Wno-psabi")

include(${CMAKE_CURRENT_LIST_DIR}/famq-debian-cross.cmake)
famq_debian_cross(armhf FAMQ_SYSROOT_ARMHF qemu-arm)
