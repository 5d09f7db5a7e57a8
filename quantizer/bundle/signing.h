// Bundle signing on the host: ECDSA P-256 key pairs and deterministic
// (RFC 6979) signatures, so the same payload and key give the same bytes.
// Verification is the device's: runtime/bundle/signature.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/digest.h"
#include "core/status.h"

namespace famq {

struct KeyPairPem {
  std::string private_pem;  // SEC1 "EC PRIVATE KEY"
  std::string public_pem;   // SubjectPublicKeyInfo "PUBLIC KEY"
  std::string key_id;       // hex SHA-256 of the public key's DER
};

// A fresh P-256 key pair from the system's entropy (mbedTLS CTR-DRBG).
Result<KeyPairPem> GenerateKeyPair();

// Writes a key pair: the private key with mode 0600 (temp file, fsync, rename).
Status WriteKeyPair(const KeyPairPem& keys, const std::string& private_path, const std::string& public_path);

// An ECDSA P-256 private key. Move-only.
class PrivateKey {
 public:
  PrivateKey();
  ~PrivateKey();
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;

  // Reads a PEM private key (unencrypted). Errors name the file.
  static Result<PrivateKey> Load(const std::string& path);
  static Result<PrivateKey> Parse(const std::string& pem, const std::string& origin);

  // Key id of the matching public key.
  const std::string& key_id() const { return key_id_; }
  // The matching public key as PEM.
  const std::string& public_pem() const { return public_pem_; }

  // Deterministic ECDSA signature (DER) of a SHA-256 digest.
  Result<std::vector<uint8_t>> Sign(const Sha256Digest& digest) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::string key_id_, public_pem_;
};

}  // namespace famq
