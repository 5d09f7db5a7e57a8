// SHA-256 (mbedTLS) and hex encoding: the identities famq compares (tokenizer,
// config, bundle payload) and the digest that bundle signatures cover.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace famq {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(const void* data, size_t size);
inline Sha256Digest Sha256(std::string_view s) { return Sha256(s.data(), s.size()); }

// Lowercase hex of `size` bytes.
std::string HexEncode(const uint8_t* data, size_t size);
inline std::string HexEncode(const Sha256Digest& d) { return HexEncode(d.data(), d.size()); }

// Lowercase hex SHA-256 of `s`.
inline std::string Sha256Hex(std::string_view s) { return HexEncode(Sha256(s)); }

}  // namespace famq
