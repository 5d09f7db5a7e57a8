#include "bundle/signature.h"

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>

#include <vector>

#include "core/file.h"

namespace famq {

struct PublicKey::Impl {
  mbedtls_pk_context pk;
  Impl() { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

PublicKey::PublicKey() = default;
PublicKey::~PublicKey() = default;
PublicKey::PublicKey(PublicKey&&) noexcept = default;
PublicKey& PublicKey::operator=(PublicKey&&) noexcept = default;

Result<PublicKey> PublicKey::Parse(std::string_view pem_or_der, const std::string& origin) {
  if (pem_or_der.empty()) return InvalidFormat(origin + ": empty public key");
  if (pem_or_der.size() > 65536) return InvalidFormat(origin + ": not a public key (over 64 KiB)");
  // PEM input must include its terminating NUL in the length (mbedTLS rule).
  std::vector<unsigned char> buf(pem_or_der.begin(), pem_or_der.end());
  const bool pem = pem_or_der.find("-----BEGIN") != std::string_view::npos;
  if (pem) buf.push_back('\0');
  PublicKey key;
  key.impl_ = std::make_unique<Impl>();
  if (mbedtls_pk_parse_public_key(&key.impl_->pk, buf.data(), buf.size()) != 0) {
    if (pem_or_der.find("PRIVATE KEY") != std::string_view::npos) {
      return InvalidFormat(origin + ": this is a private key; give the public key (famq keygen --pub)");
    }
    return InvalidFormat(origin + ": not a PEM or DER public key");
  }
  if (!mbedtls_pk_can_do(&key.impl_->pk, MBEDTLS_PK_ECDSA) ||
      mbedtls_pk_ec(key.impl_->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1) {
    return Unsupported(origin + ": not an EC P-256 key (bundles are signed with ECDSA P-256)");
  }
  unsigned char der[512];
  const int n = mbedtls_pk_write_pubkey_der(&key.impl_->pk, der, sizeof(der));
  if (n <= 0) return Internal(origin + ": cannot re-encode the public key");
  // mbedtls writes at the end of the buffer.
  key.key_id_ = HexEncode(Sha256(der + sizeof(der) - n, static_cast<size_t>(n)));
  return key;
}

Result<PublicKey> PublicKey::Load(const std::string& path) {
  auto text = ReadFile(path, 65536);
  if (!text.ok()) return text.status();
  return Parse(*text, path);
}

Status PublicKey::Verify(const Sha256Digest& digest, std::span<const uint8_t> der) const {
  if (!impl_) return InvalidArgument("no public key");
  if (der.empty() || der.size() > kMaxSignatureDerBytes) {
    return InvalidFormat("signature does not verify (" + std::to_string(der.size()) + "-byte signature)");
  }
  if (mbedtls_pk_verify(&impl_->pk, MBEDTLS_MD_SHA256, digest.data(), digest.size(), der.data(), der.size()) != 0) {
    return InvalidFormat("signature does not verify");
  }
  return Status::Ok();
}

}  // namespace famq
