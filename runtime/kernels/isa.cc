#include "kernels/isa.h"

#include <cpuinfo.h>

#include <atomic>
#include <cstdlib>
#include <string>

namespace famq {
namespace {

// FAMQ_HAVE_X86_KERNELS / FAMQ_HAVE_ARM_KERNELS come from x86/CMakeLists.txt
// and arm/CMakeLists.txt: a level counts only when its kernels were compiled.
bool CompiledIn(Isa isa) {
  switch (isa) {
    case Isa::kRef: return true;
    case Isa::kAvx2:
    case Isa::kAvx512Vnni:
#if defined(FAMQ_HAVE_X86_KERNELS)
      return true;
#else
      return false;
#endif
    case Isa::kNeon:
    case Isa::kNeonDot:
#if defined(FAMQ_HAVE_ARM_KERNELS)
      return true;
#else
      return false;
#endif
  }
  return false;
}

bool CpuSupports(Isa isa) {
  if (isa == Isa::kRef) return true;
  // cpuinfo_initialize is idempotent and thread-safe (pthread_once inside).
  if (!cpuinfo_initialize()) return false;
  switch (isa) {
    case Isa::kRef: return true;
#if defined(FAMQ_HAVE_X86_KERNELS)
    case Isa::kAvx2: return cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c();
    case Isa::kAvx512Vnni:
      // The AVX-512 file also uses AVX2/FMA encodings for its 256-bit helpers.
      return cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c() && cpuinfo_has_x86_avx512f() &&
             cpuinfo_has_x86_avx512bw() && cpuinfo_has_x86_avx512vl() && cpuinfo_has_x86_avx512vnni();
#endif
#if defined(FAMQ_HAVE_ARM_KERNELS)
    case Isa::kNeon: return cpuinfo_has_arm_neon();
    case Isa::kNeonDot: return cpuinfo_has_arm_neon() && cpuinfo_has_arm_neon_dot();
#endif
    default: return false;
  }
}

std::string AvailableList() {
  std::string out;
  for (Isa isa : kAllIsas) {
    if (!IsaAvailable(isa)) continue;
    if (!out.empty()) out += ", ";
    out += IsaName(isa);
  }
  return out;
}

Status Unavailable(Isa isa, const std::string& who) {
  // Built by appending: GCC 12's -Wrestrict misfires on "literal" + std::string.
  std::string message = who;
  message += " asks for ISA '";
  message += IsaName(isa);
  message +=
      CompiledIn(isa) ? "', but this CPU lacks it" : "', but this build has no kernels for it (other architecture)";
  message += "; available here: ";
  message += AvailableList();
  return Unsupported(message);
}

// -1: no pin; otherwise static_cast<int>(Isa).
std::atomic<int> g_forced_isa{-1};

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kRef: return "ref";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512Vnni: return "avx512";
    case Isa::kNeon: return "neon";
    case Isa::kNeonDot: return "neondot";
  }
  return "unknown";
}

Result<Isa> ParseIsa(std::string_view name) {
  for (Isa isa : kAllIsas) {
    if (name == IsaName(isa)) return isa;
  }
  std::string message = "'";
  message += name;
  message += "' is not an ISA name; expected one of ref, avx2, avx512, neon, neondot";
  return InvalidArgument(message);
}

bool IsaAvailable(Isa isa) { return CompiledIn(isa) && CpuSupports(isa); }

Isa DetectIsa() {
  // Best first.
  for (Isa isa : {Isa::kAvx512Vnni, Isa::kAvx2, Isa::kNeonDot, Isa::kNeon}) {
    if (IsaAvailable(isa)) return isa;
  }
  return Isa::kRef;
}

Status ForceIsa(std::optional<Isa> isa) {
  if (!isa) {
    g_forced_isa.store(-1);
    return Status::Ok();
  }
  if (!IsaAvailable(*isa)) return Unavailable(*isa, "ForceIsa");
  g_forced_isa.store(static_cast<int>(*isa));
  return Status::Ok();
}

Result<Isa> ResolveForcedIsa(const char* forced_name) {
  if (forced_name == nullptr || forced_name[0] == '\0') return DetectIsa();
  Result<Isa> parsed = ParseIsa(forced_name);
  if (!parsed.ok()) return InvalidArgument("FAMQ_FORCE_ISA: " + parsed.status().message());
  if (!IsaAvailable(*parsed)) return Unavailable(*parsed, "FAMQ_FORCE_ISA");
  return *parsed;
}

Result<Isa> ActiveIsa() {
  const int forced = g_forced_isa.load();
  if (forced >= 0) return static_cast<Isa>(forced);
  return ResolveForcedIsa(std::getenv("FAMQ_FORCE_ISA"));
}

}  // namespace famq
