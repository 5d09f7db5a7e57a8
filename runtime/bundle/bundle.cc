#include "bundle/bundle.h"

#include <cmath>
#include <cstring>

#include "core/file.h"

namespace famq {
namespace {

std::string IdentifierAt(const std::vector<uint8_t>& b) {
  std::string id;
  for (size_t i = 4; i < 8 && i < b.size(); ++i) {
    const char c = static_cast<char>(b[i]);
    id += (c >= 32 && c < 127) ? std::string(1, c) : "\\x" + HexEncode(&b[i], 1);
  }
  return id;
}

bool IsHexDigest(const flatbuffers::String* s) {
  if (s == nullptr || s->size() != 64) return false;
  for (char c : s->string_view()) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status CheckPayloadInvariants(const fb::Payload& p) {
  if (p.format_version() != kBundleFormatVersion) {
    return Unsupported("payload format version " + std::to_string(p.format_version()) + " (this famq reads " +
                       std::to_string(kBundleFormatVersion) + ")");
  }
  if (p.family() == nullptr || !IsHexDigest(p.family()->tokenizer_sha256())) {
    return InvalidFormat("payload has no family identity (tokenizer SHA-256)");
  }
  if (p.recipe() == nullptr || p.recipe()->seq_len() == 0) return InvalidFormat("payload has no recipe");
  if (p.samples() == nullptr || p.samples()->size() == 0) return InvalidFormat("payload holds no samples");
  double weight_sum = 0.0;
  uint64_t tokens = 0;
  for (flatbuffers::uoffset_t i = 0; i < p.samples()->size(); ++i) {
    const fb::Sample* s = p.samples()->Get(i);
    const std::string where = "sample " + std::to_string(i) + ": ";
    if (s == nullptr || s->tokens() == nullptr || s->tokens()->size() == 0) {
      return InvalidFormat(where + "no tokens");
    }
    if (s->token_mask() == nullptr || s->token_mask()->size() != s->tokens()->size()) {
      return InvalidFormat(where + "token mask length differs from the token count");
    }
    for (uint8_t m : *s->token_mask()) {
      if (m > 1) return InvalidFormat(where + "token mask values must be 0 or 1");
    }
    for (int32_t t : *s->tokens()) {
      if (t < 0) return InvalidFormat(where + "negative token id " + std::to_string(t));
    }
    if (!std::isfinite(s->weight()) || s->weight() < 0.0f) {
      return InvalidFormat(where + "weight " + std::to_string(s->weight()) + " is not a finite non-negative number");
    }
    if (p.num_originals() > 0 && s->group() >= p.num_originals()) {
      return InvalidFormat(where + "group " + std::to_string(s->group()) + " beyond the " +
                           std::to_string(p.num_originals()) + " originals");
    }
    weight_sum += s->weight();
    tokens += s->tokens()->size();
  }
  if (std::fabs(weight_sum - 1.0) > 1e-3) {
    return InvalidFormat("sample weights sum to " + std::to_string(weight_sum) + ", not 1");
  }
  if (p.total_tokens() != tokens) {
    return InvalidFormat("total_tokens " + std::to_string(p.total_tokens()) + " but the samples hold " +
                         std::to_string(tokens));
  }
  return Status::Ok();
}

}  // namespace

std::vector<uint8_t> BuildBundleContainer(std::span<const uint8_t> payload, const std::string& key_id,
                                          std::span<const uint8_t> signature_der) {
  flatbuffers::FlatBufferBuilder fbb(payload.size() + 1024);
  fbb.ForceDefaults(true);  // every field present: no byte of the container is optional
  flatbuffers::Offset<fb::Signature> sig;
  if (!signature_der.empty()) {
    // Named, in this order: the container must serialize to the same bytes
    // with every compiler (the reader compares against this canonical form),
    // and C++ leaves the order of function arguments unspecified. This is the
    // order gcc used when the first bundles were written, so they stay valid.
    const auto der = fbb.CreateVector(signature_der.data(), signature_der.size());
    const auto kid = fbb.CreateString(key_id);
    const auto alg = fbb.CreateString(kSignatureAlgorithm);
    sig = fb::CreateSignature(fbb, alg, kid, der);
  }
  // The payload is a FlatBuffer of its own: keep it 16-byte aligned in the file.
  fbb.ForceVectorAlignment(payload.size(), sizeof(uint8_t), 16);
  auto payload_vec = fbb.CreateVector(payload.data(), payload.size());
  fb::BundleBuilder b(fbb);
  b.add_format_version(kBundleFormatVersion);
  b.add_payload(payload_vec);
  if (!signature_der.empty()) b.add_signature(sig);
  fb::FinishBundleBuffer(fbb, b.Finish());
  return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

Result<Bundle> Bundle::Open(const std::string& path, const BundleVerifyOptions& options) {
  auto bytes = ReadFile(path, kMaxBundleBytes);  // absurd sizes refused before reading
  if (!bytes.ok()) return bytes.status();
  return FromBytes(std::vector<uint8_t>(bytes->begin(), bytes->end()), path, options);
}

Result<Bundle> Bundle::FromBytes(std::vector<uint8_t> bytes, const std::string& origin,
                                 const BundleVerifyOptions& options) {
  auto fail = [&](Status s) { return Status(s.code(), origin + ": " + s.message()); };
  // 1. bounds and identifier
  if (bytes.size() > kMaxBundleBytes) return fail(OutOfMemory("bundle beyond the size limit"));
  if (bytes.size() < 16) {
    return fail(InvalidFormat("truncated: " + std::to_string(bytes.size()) + " bytes is not a famq bundle"));
  }
  if (!fb::BundleBufferHasIdentifier(bytes.data())) {
    return fail(InvalidFormat("not a famq bundle (file identifier '" + IdentifierAt(bytes) + "', expected '" +
                              fb::BundleIdentifier() + "')"));
  }
  // 2. container
  {
    flatbuffers::Verifier v(bytes.data(), bytes.size(), /*max_depth=*/8, /*max_tables=*/16);
    if (!fb::VerifyBundleBuffer(v)) {
      return fail(InvalidFormat("bundle container fails the FlatBuffers verifier (truncated or corrupt)"));
    }
  }
  const fb::Bundle* root = fb::GetBundle(bytes.data());
  if (root->format_version() != kBundleFormatVersion) {
    return fail(Unsupported("bundle format version " + std::to_string(root->format_version()) +
                            " (this famq reads " + std::to_string(kBundleFormatVersion) + ")"));
  }
  if (root->payload() == nullptr || root->payload()->size() < 16) return fail(InvalidFormat("bundle has no payload"));
  std::span<const uint8_t> payload(root->payload()->data(), root->payload()->size());
  const fb::Signature* sig = root->signature();
  std::span<const uint8_t> der;
  std::string key_id;
  if (sig != nullptr) {
    if (sig->algorithm() == nullptr || sig->algorithm()->string_view() != kSignatureAlgorithm) {
      return fail(Unsupported(std::string("unknown signature algorithm (famq signs with ") + kSignatureAlgorithm +
                              ")"));
    }
    if (sig->der() == nullptr || sig->der()->size() == 0 || sig->der()->size() > kMaxSignatureDerBytes ||
        !IsHexDigest(sig->key_id())) {
      return fail(InvalidFormat("malformed signature block"));
    }
    der = std::span<const uint8_t>(sig->der()->data(), sig->der()->size());
    key_id = sig->key_id()->str();
  }
  if (BuildBundleContainer(payload, key_id, der) != bytes) {
    return fail(InvalidFormat("bundle container is not in canonical form (bytes outside the signed payload "
                              "were modified)"));
  }
  // 3. signature
  Bundle b;
  b.verification_.payload_sha256 = HexEncode(Sha256(payload.data(), payload.size()));
  b.verification_.is_signed = sig != nullptr;
  b.verification_.key_id = key_id;
  if (sig == nullptr) {
    if (!options.allow_unsigned) {
      return fail(InvalidArgument("bundle is unsigned; refused (pass --allow-unsigned to accept unsigned bundles)"));
    }
  } else if (options.check_signature) {
    if (options.trusted_key == nullptr) {
      return fail(InvalidArgument("bundle is signed by key " + key_id.substr(0, 16) +
                                  "...; give the signer's public key (--trust PUB.pem) to verify it"));
    }
    if (options.trusted_key->key_id() != key_id) {
      return fail(InvalidFormat("bundle is signed by key " + key_id + ", not by the trusted key " +
                                options.trusted_key->key_id()));
    }
    Status s = options.trusted_key->Verify(Sha256(payload.data(), payload.size()), der);
    if (!s.ok()) {
      return fail(InvalidFormat("signature does not verify: the payload (SHA-256 " +
                                b.verification_.payload_sha256.substr(0, 16) +
                                "...) or the signature was modified after signing"));
    }
    b.verification_.signature_checked = true;
  }
  // 4. payload
  if (!fb::PayloadBufferHasIdentifier(payload.data())) {
    return fail(InvalidFormat("payload is not a famq bundle payload (identifier, expected '" +
                              std::string(fb::PayloadIdentifier()) + "')"));
  }
  {
    const auto max_tables = static_cast<flatbuffers::uoffset_t>(std::max<size_t>(1024, payload.size() / 4));
    flatbuffers::Verifier v(payload.data(), payload.size(), /*max_depth=*/16, max_tables);
    if (!fb::VerifyPayloadBuffer(v)) return fail(InvalidFormat("payload fails the FlatBuffers verifier"));
  }
  const fb::Payload* p = fb::GetPayload(payload.data());
  Status inv = CheckPayloadInvariants(*p);
  if (!inv.ok()) return fail(inv);
  // The spans point into the vector's heap block, which moves with it.
  b.bytes_ = std::move(bytes);
  b.payload_bytes_ = payload;
  b.payload_ = p;
  return b;
}

}  // namespace famq
