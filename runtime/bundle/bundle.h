// Calibration bundles on the device: read, verify (container, signature,
// payload), then use. Format: schema/bundle.fbs and schema/bundle_payload.fbs;
// meaning: docs/DESIGN.md §1.1 and §4.
//
// Nothing in a bundle is touched before it is verified, in this order:
//   1. size bounds and the file identifier "FQBN";
//   2. the FlatBuffers verifier on the container, its format version, and
//      canonical form (the container re-serializes to the same bytes, so no
//      byte outside the signed payload can change unnoticed);
//   3. the signature: ECDSA P-256 over SHA-256(payload) by the trusted key
//      (or, opted in, no signature at all);
//   4. the payload's identifier "FQBP", the FlatBuffers verifier on it, its
//      format version, and its invariants (token masks as long as the
//      tokens, finite non-negative weights summing to 1, family identity).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bundle/signature.h"
#include "core/status.h"
#include "schema/bundle_generated.h"

namespace famq {

// The format version written into Bundle and Payload; readers refuse others.
inline constexpr uint32_t kBundleFormatVersion = 1;
// Bundles above this size are refused as absurd before reading.
inline constexpr size_t kMaxBundleBytes = size_t{1} << 31;

struct BundleVerifyOptions {
  // The key the bundle must be signed with. Required for signed bundles
  // unless check_signature is false.
  const PublicKey* trusted_key = nullptr;
  // Accept a bundle that carries no signature at all.
  bool allow_unsigned = false;
  // false: do not check the signature (inspection only; never for finalize).
  bool check_signature = true;
};

// What verification established.
struct BundleVerification {
  bool is_signed = false;         // the bundle carries a signature
  bool signature_checked = false; // ... and it was verified against the trusted key
  std::string key_id;             // the signature's key id ("" if unsigned)
  std::string payload_sha256;     // hex SHA-256 of the payload bytes
};

// Builds the canonical container bytes around a serialized payload. The host
// writes bundles with it and the reader compares against it. `signature_der`
// empty: an unsigned bundle (key_id ignored).
std::vector<uint8_t> BuildBundleContainer(std::span<const uint8_t> payload, const std::string& key_id,
                                          std::span<const uint8_t> signature_der);

// A verified bundle. Move-only; the payload accessor points into owned bytes.
class Bundle {
 public:
  // Reads `path` and verifies it (see above). Errors name the file and what
  // failed: "bundle.famqb: signature does not verify (...)".
  static Result<Bundle> Open(const std::string& path, const BundleVerifyOptions& options);
  // The same on bytes in memory; `origin` names them in errors.
  static Result<Bundle> FromBytes(std::vector<uint8_t> bytes, const std::string& origin,
                                  const BundleVerifyOptions& options);

  const fb::Payload& payload() const { return *payload_; }
  std::span<const uint8_t> payload_bytes() const { return payload_bytes_; }
  const BundleVerification& verification() const { return verification_; }
  size_t file_size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
  std::span<const uint8_t> payload_bytes_;
  const fb::Payload* payload_ = nullptr;
  BundleVerification verification_;
};

}  // namespace famq
