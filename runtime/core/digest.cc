#include "core/digest.h"

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

namespace famq {

Sha256Digest Sha256(const void* data, size_t size) {
  Sha256Digest d{};
  const auto* p = static_cast<const unsigned char*>(data);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
  mbedtls_sha256(p, size, d.data(), 0);
#else
  mbedtls_sha256_ret(p, size, d.data(), 0);
#endif
  return d;
}

std::string HexEncode(const uint8_t* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    s.push_back(kDigits[data[i] >> 4]);
    s.push_back(kDigits[data[i] & 15]);
  }
  return s;
}

}  // namespace famq
