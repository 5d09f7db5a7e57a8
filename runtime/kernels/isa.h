// Instruction-set levels of famq's own kernels, and the one place that picks
// the level for this process.
//
// The level is the best one that both the CPU (cpuinfo) and this build (the
// x86/ and arm/ kernel files are compiled only for their architecture) offer,
// unless a caller forces a lower one: the environment variable
// FAMQ_FORCE_ISA=<name>, or ForceIsa() (what the C API calls). Forcing exists
// so that tests, benchmarks and bug reports can pin a kernel; forcing a level
// the machine or the build lacks is refused, never silently downgraded.
#pragma once

#include <optional>
#include <string_view>

#include "core/status.h"

namespace famq {

enum class Isa : int {
  kRef,         // portable scalar C++: the specification, and armhf's kernels
  kAvx2,        // x86-64 AVX2 + FMA3 + F16C
  kAvx512Vnni,  // x86-64 AVX-512 F/BW/VL + VNNI (vpdpbusd)
  kNeon,        // AArch64 Advanced SIMD
  kNeonDot,     // AArch64 Advanced SIMD + dot product (sdot, armv8.2-a+dotprod)
};

// Every level, in the order above (for loops in tests and benchmarks).
inline constexpr Isa kAllIsas[] = {Isa::kRef, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kNeon, Isa::kNeonDot};

// "ref", "avx2", "avx512", "neon", "neondot": the names FAMQ_FORCE_ISA takes.
const char* IsaName(Isa isa);

// Parses a name printed by IsaName (exact, lower case).
// Returns: the level; InvalidArgument naming the input and the valid names.
Result<Isa> ParseIsa(std::string_view name);

// True when this build contains the level's kernels and this CPU (and OS)
// can run them. kRef is always available.
bool IsaAvailable(Isa isa);

// The best available level, from cpuinfo; kRef when cpuinfo cannot initialize.
Isa DetectIsa();

// Pins the level that ActiveIsa() returns for the rest of the process (it
// takes precedence over FAMQ_FORCE_ISA); std::nullopt removes the pin.
// Returns: Ok; Unsupported when the level is not available (nothing changes).
Status ForceIsa(std::optional<Isa> isa);

// The level new kernels should use: the ForceIsa() pin, else FAMQ_FORCE_ISA
// when set and non-empty, else DetectIsa(). Cheap; read at plan time.
// Returns: the level; InvalidArgument for an unknown FAMQ_FORCE_ISA name;
// Unsupported when FAMQ_FORCE_ISA names a level this CPU or build lacks.
Result<Isa> ActiveIsa();

// ActiveIsa()'s rule applied to an explicit FAMQ_FORCE_ISA value (nullptr or
// "" = not set), ignoring any ForceIsa() pin. Exposed for tests.
Result<Isa> ResolveForcedIsa(const char* forced_name);

}  // namespace famq
