// Bundle signatures: ECDSA P-256 over SHA-256 (mbedTLS), verified on the
// device with a trusted public key. Signing lives in the host stage
// (quantizer/bundle/signing.h); the device only verifies.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/digest.h"
#include "core/status.h"

namespace famq {

// The only algorithm bundles use (the Signature.algorithm string).
inline constexpr char kSignatureAlgorithm[] = "ecdsa-p256-sha256";
// An ASN.1 DER ECDSA P-256 signature is at most 72 bytes.
inline constexpr size_t kMaxSignatureDerBytes = 72;

// A trusted ECDSA P-256 public key. Move-only.
class PublicKey {
 public:
  PublicKey();
  ~PublicKey();
  PublicKey(PublicKey&&) noexcept;
  PublicKey& operator=(PublicKey&&) noexcept;

  // Parses a PEM ("-----BEGIN PUBLIC KEY-----") or DER SubjectPublicKeyInfo.
  // `origin` names the source in errors. Fails with kInvalidFormat on
  // anything else, and with kUnsupported on a key that is not EC P-256.
  static Result<PublicKey> Parse(std::string_view pem_or_der, const std::string& origin);
  // Reads and parses a key file (at most 64 KiB).
  static Result<PublicKey> Load(const std::string& path);

  // Lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo: the key id
  // recorded in signatures.
  const std::string& key_id() const { return key_id_; }

  // OK when `der` is this key's valid signature of `digest`; kInvalidFormat
  // ("signature does not verify") otherwise.
  Status Verify(const Sha256Digest& digest, std::span<const uint8_t> der) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::string key_id_;
};

}  // namespace famq
